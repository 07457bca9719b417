"""Verdicts: one Table entity per (registry, repository, digest, policy version), and their events.

Inserting the entity is the idempotency gate: a redelivered event finds it and
stops. Every later change uses the entity's ETag, so two deliveries racing on
one image cannot both act.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from .clients import ensure_table, table_error
from .clock import exact
from .errors import Conflict, NotFound
from .publisher import Event

FINAL = {"passed", "failed", "superseded"}
# One verdict is one Table entity: at most 64 KiB (UTF-16) a property and 1 MiB in all. Reasons are
# bounded where checks are made (checks.MAX_REASON); what grows with the pushes is bounded here.
MAX_PROPERTY_BYTES = 64 * 1024
MAX_EXCERPT = 8 * 1024  # characters: up to 32 KiB in UTF-16 even where each takes a surrogate pair
MAX_EVENTS = 100  # event ids kept (the first ones); `event_count` counts them all
MAX_TAG_RESULTS = 100  # tags judged on their own (checks.check_tag) kept; the tag listing judges live
MAX_STORED_KEYS = 10_000  # verdict keys remembered as stored (about 2 MB)


def partition_key(registry: str, repository: str) -> str:
    # Table keys cannot hold '/'; '~' cannot appear in an OCI repository name.
    return f"{registry.lower()}|{repository.replace('/', '~')}"


def row_key(digest: str, policy_version: str) -> str:
    return f"{digest}|{policy_version}"


def _subject(stored: Any) -> tuple[str, int] | None:
    if not stored:
        return None
    media_type, size = json.loads(stored)
    return str(media_type), int(size)


@dataclass
class Verdict:
    registry: str
    repository: str
    digest: str
    policy_version: str
    tag: str | None
    status: str = "pending"  # pending | running | passed | failed | superseded
    checks: list[dict[str, str]] = field(default_factory=list)
    run_id: str | None = None
    log_excerpt: str = ""
    events: list[str] = field(default_factory=list)
    event_count: int = 0  # every event recorded, kept in `events` or not (0: as many as `events`)
    # tag → its own result ({"status", "reason", "action"}): tag rules belong to each tag pointing here
    tag_results: dict[str, dict[str, str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # an index's images: digest → passed | failed
    run_digest: str | None = None  # what the smoke run runs: the digest, or an index's runner image
    actions: list[str] = field(default_factory=list)
    pending_actions: list[str] = field(default_factory=list)
    published: bool = False
    deleted: bool = False
    # The image's (media type, size), kept once read: the subject of the verdict's referrer.
    subject: tuple[str, int] | None = None
    # The smoke run's end: {"status", "exitStatus", "logDigest"} ({} when there was no run).
    run_result: dict[str, Any] = field(default_factory=dict)
    final_events: int = 0  # how many of `events` were recorded when the verdict became final
    # The OCI referrer the verdict is attached as: its digest; "" when it was not attached (`actions`
    # says why); None while it is still to be attached.
    referrer: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    claimed_at: dt.datetime | None = None
    etag: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return partition_key(self.registry, self.repository), row_key(self.digest, self.policy_version)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def events_recorded(self) -> int:
        return max(self.event_count, len(self.events))

    def record_event(self, cause: str) -> bool:
        """Count a delivery's cause once; only the first MAX_EVENTS are kept by id (a redelivery of a
        later one is counted again: Event Grid delivers at least once)."""
        if cause in self.events:
            return False
        self.event_count = self.events_recorded + 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(cause)
        return True

    def record_tag(self, tag: str, result: dict[str, str]) -> bool:
        if self.tag_results.get(tag) == result:
            return False
        if tag not in self.tag_results and len(self.tag_results) >= MAX_TAG_RESULTS:
            return False
        self.tag_results[tag] = result
        return True

    def to_entity(self) -> dict[str, Any]:
        pk, rk = self.key
        entity: dict[str, Any] = {
            "PartitionKey": pk,
            "RowKey": rk,
            "Registry": self.registry,
            "Repository": self.repository,
            "Digest": self.digest,
            "PolicyVersion": self.policy_version,
            "Tag": self.tag or "",
            "Status": self.status,
            "Checks": json.dumps(self.checks),
            "RunId": self.run_id or "",
            "LogExcerpt": self.log_excerpt[-MAX_EXCERPT:],
            "Events": json.dumps(self.events),
            "EventCount": self.events_recorded,
            "TagResults": json.dumps(self.tag_results),
            "Images": json.dumps(self.images),
            "RunDigest": self.run_digest or "",
            "Actions": json.dumps(self.actions),
            "PendingActions": json.dumps(self.pending_actions),
            "Published": self.published,
            "Deleted": self.deleted,
            "Subject": json.dumps(list(self.subject)) if self.subject else "",
            "RunResult": json.dumps(self.run_result),
            "FinalEvents": self.final_events,
        }
        if self.referrer is not None:
            entity["Referrer"] = self.referrer
        for name, value in (
            ("CreatedAt", self.created_at),
            ("UpdatedAt", self.updated_at),
            ("CompletedAt", self.completed_at),
            ("ClaimedAt", self.claimed_at),
        ):
            if value is not None:
                entity[name] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Verdict:
        return cls(
            registry=entity["Registry"],
            repository=entity["Repository"],
            digest=entity["Digest"],
            policy_version=entity["PolicyVersion"],
            tag=entity.get("Tag") or None,
            status=entity["Status"],
            checks=json.loads(entity.get("Checks") or "[]"),
            run_id=entity.get("RunId") or None,
            log_excerpt=entity.get("LogExcerpt") or "",
            events=json.loads(entity.get("Events") or "[]"),
            event_count=int(entity.get("EventCount") or 0),
            tag_results=json.loads(entity.get("TagResults") or "{}"),
            images=json.loads(entity.get("Images") or "{}"),
            run_digest=entity.get("RunDigest") or None,
            actions=json.loads(entity.get("Actions") or "[]"),
            pending_actions=json.loads(entity.get("PendingActions") or "[]"),
            published=bool(entity.get("Published")),
            deleted=bool(entity.get("Deleted")),
            subject=_subject(entity.get("Subject")),
            run_result=json.loads(entity.get("RunResult") or "{}"),
            final_events=int(entity.get("FinalEvents") or 0),
            referrer=entity.get("Referrer"),
            created_at=entity.get("CreatedAt"),
            updated_at=entity.get("UpdatedAt"),
            completed_at=entity.get("CompletedAt"),
            claimed_at=entity.get("ClaimedAt"),
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
        )

    def public(self) -> dict[str, Any]:
        """The verdict as APIs and events show it."""
        return {
            "registry": self.registry,
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "policyVersion": self.policy_version,
            "status": self.status,
            "checks": self.checks,
            "runId": self.run_id,
            "actions": self.actions,
            "deleted": self.deleted,
            "events": self.events,
            "eventCount": self.events_recorded,
            "tagResults": self.tag_results,
            "images": self.images,
            "runDigest": self.run_digest,
            "referrer": self.referrer or None,
            "createdAt": exact(self.created_at),
            "completedAt": exact(self.completed_at),
        }


class StoredKeys:
    """Keys of verdicts this process knows to be stored (it inserted them, or found them there), the most
    recent MAX_STORED_KEYS. Verdicts are never deleted by the app: a redelivery of a known key reads the
    verdict at once instead of first failing to insert it (one Table request fewer per duplicate)."""

    def __init__(self, limit: int = MAX_STORED_KEYS) -> None:
        self._limit = limit
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)

    def discard(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._keys.pop(key, None)


class VerdictStore:
    def __init__(self, table: Any) -> None:
        self._table = table
        self._ready = False
        self._stored = StoredKeys()

    def _ensure(self) -> None:
        if not self._ready:
            ensure_table(self._table, "verdict")
            self._ready = True

    def insert(self, verdict: Verdict) -> Verdict | None:
        """Insert if absent; returns the stored verdict when one already existed."""
        self._ensure()
        key = verdict.key
        if key in self._stored:
            try:
                return self.get(*key)
            except NotFound:  # deleted by someone else meanwhile: insert it again
                self._stored.discard(key)
        try:
            # No entity in the answer (204): only its ETag is used, and the body cost a parse on both sides.
            metadata = self._table.create_entity(verdict.to_entity(), response_preference="return-no-content")
        except ResourceExistsError:
            existing = self.get(*key)
            self._stored.add(key)
            return existing
        except AzureError as exc:
            raise table_error(exc, "storing the verdict") from exc
        verdict.etag = metadata.get("etag")
        self._stored.add(key)
        return None

    def get(self, partition: str, row: str) -> Verdict:
        self._ensure()
        try:
            return Verdict.from_entity(self._table.get_entity(partition, row))
        except ResourceNotFoundError as exc:
            raise NotFound(f"no verdict {partition}/{row}") from exc
        except AzureError as exc:
            raise table_error(exc, "reading the verdict") from exc

    def replace(self, verdict: Verdict) -> Verdict:
        """Write back only if nobody changed the entity since it was read (ETag)."""
        try:
            metadata = self._table.update_entity(
                verdict.to_entity(),
                mode="replace",
                etag=verdict.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as exc:
            raise Conflict("the verdict changed concurrently") from exc
        except AzureError as exc:  # 412 is a Conflict in the table too; throttled or unreachable: retry
            raise table_error(exc, "updating the verdict") from exc
        verdict.etag = metadata.get("etag")
        return verdict

    def history(self, registry: str, repository: str) -> list[Verdict]:
        self._ensure()
        partition = partition_key(registry, repository).replace("'", "''")
        try:
            verdicts = [
                Verdict.from_entity(e) for e in self._table.query_entities(f"PartitionKey eq '{partition}'")
            ]
        except AzureError as exc:
            raise table_error(exc, "reading the verdicts") from exc
        return sorted(
            verdicts, key=lambda v: v.created_at or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True
        )

    def for_digest(self, registry: str, repository: str, digest: str) -> list[Verdict]:
        return [v for v in self.history(registry, repository) if v.digest == digest]

    def for_policy(self, registry: str, repository: str, policy_version: str) -> dict[str, Verdict]:
        """A repository's verdicts under one policy version, by digest: one partition query."""
        self._ensure()
        entities = self._table.query_entities(
            "PartitionKey eq @pk and PolicyVersion eq @version",
            parameters={"pk": partition_key(registry, repository), "version": policy_version},
        )
        try:
            return {verdict.digest: verdict for verdict in map(Verdict.from_entity, entities)}
        except AzureError as exc:
            raise table_error(exc, "reading the verdicts") from exc

    def ping(self, timeout: float) -> None:
        """One small read, no retry, short timeouts; a table not created yet still proves storage answers."""
        pages = self._table.query_entities(
            "PartitionKey eq 'health'",
            results_per_page=1,
            retry_total=0,
            connection_timeout=timeout,
            read_timeout=timeout,
        ).by_page()
        try:
            next(iter(next(pages)), None)
        except (ResourceNotFoundError, StopIteration):
            return


EVENT_TYPES = {
    "passed": "Dockmaster.Verification.Passed",
    "failed": "Dockmaster.Verification.Failed",
    "superseded": "Dockmaster.Verification.Superseded",
}


def verdict_event(verdict: Verdict, registry_id: str) -> Event:
    """A final verdict as the CloudEvent subscribers receive, from its registry's ARM id."""
    return Event(
        type=EVENT_TYPES[verdict.status],
        source=registry_id,
        subject=f"{verdict.repository}@{verdict.digest}",
        data=verdict.public(),
        id=f"{verdict.digest}|{verdict.policy_version}|{verdict.status}",
        doing="publishing the verdict",
    )
