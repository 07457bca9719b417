"""Cleanup filters, plans and run records, and their Table storage (table `cleanupruns`).

One entity per plan (PartitionKey `plan`) and per run (PartitionKey `run`), RowKey the id. Readable
summary properties (times, dry run, counts, what was deleted, blocked or failed) sit next to the whole
record as gzip-compressed JSON split over binary properties `Body0…`: a plan of 10,000 labs fits in one
entity, so a record is written in one request and is never half-stored.

Newest first: Table storage returns a partition's entities in RowKey order only, so each record has an
index entity in its partition, RowKey `newest-<inverted time>-<id>` with the summary properties alone
(the "log tail" pattern of Azure's Table design patterns: an inverted-timestamp RowKey puts the newest
first; the time is the plan's creation or the run's start, so a run saved again keeps its row). Record
and index go in one entity group transaction: both are stored or neither. A listing is a range query
over the index rows, a page at a time. Records stored before the index existed are not listed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from azure.core.exceptions import AzureError, ResourceNotFoundError

from ..clients import ensure_table, table_error
from ..errors import InvalidInput, NotFound
from .planner import BLOCKED, DECISIONS, DELETE, KEEP, KEPT, NOT_REVIEWED, PlanItem, iso, parse_time

RUNS_TABLE = "cleanupruns"
ID = re.compile(r"(plan|run)-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")  # fullmatch; ASCII digits only
NEWEST = "newest-"  # the index rows' RowKey prefix; "newest." bounds their range
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LAST_MICROSECOND = 10**18
MAX_CONTINUATION = 1024
CHUNK = 60_000  # bytes per binary property (the limit is 64 KiB)
MAX_CHUNKS = 15  # an entity holds at most 1 MiB

# Outcomes of an execution, per lab the plan would delete.
DELETED = "deleted"  # ARM accepted the delete (202); the group is Deleting
WOULD_DELETE = "would-delete"  # dry run
FAILED = "failed"
GONE = "gone"  # no longer exists
RESULTS = (DELETED, WOULD_DELETE, BLOCKED, FAILED, GONE, KEPT, NOT_REVIEWED)


def new_id(kind: str, now: dt.datetime) -> str:
    return f"{kind}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_id(kind: str, value: str, noun: str = "cleanup") -> str:
    if not isinstance(value, str) or not ID.fullmatch(value) or not value.startswith(f"{kind}-"):
        raise InvalidInput(f"'{value}' is not a {noun} {kind} id ({kind}-YYYYMMDDTHHMMSSZ-xxxxxxxx)")
    return value


def _strings(raw: Any, name: str, limit: int) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise InvalidInput(f"filters.{name} must be a list of non-empty strings")
    if any(len(v) > limit for v in raw):
        raise InvalidInput(f"filters.{name}: an entry is longer than {limit} characters")
    return tuple(v.strip() for v in raw)


@dataclass(frozen=True)
class Filters:
    """A caller's narrowing of the configured cleanup. Filters never widen it: patterns and the tag
    select among the configured labs, subscriptions among the configured ones, the cap can only drop."""

    subscriptions: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()
    lab_tag: str | None = None
    older_than_hours: float | None = None
    max_deletions: int | None = None

    KEYS: ClassVar[dict[str, str]] = {
        "subscriptions": "subscriptions",
        "namePatterns": "name_patterns",
        "name_patterns": "name_patterns",
        "labTag": "lab_tag",
        "lab_tag": "lab_tag",
        "olderThanHours": "older_than_hours",
        "older_than_hours": "older_than_hours",
        "maxDeletions": "max_deletions",
        "max_deletions": "max_deletions",
    }

    @classmethod
    def parse(cls, raw: Filters | Mapping[str, Any] | None) -> Filters:
        """From the API's JSON (camelCase) or keyword names; InvalidInput names the bad field."""
        if raw is None:
            return cls()
        if isinstance(raw, Filters):
            return raw
        if not isinstance(raw, Mapping):
            raise InvalidInput("filters must be an object")
        unknown = sorted(set(raw) - set(cls.KEYS))
        if unknown:
            raise InvalidInput(f"unknown filters: {', '.join(unknown)}")
        values = {cls.KEYS[k]: v for k, v in raw.items() if v is not None}
        lab_tag = values.get("lab_tag")
        if lab_tag is not None and (not isinstance(lab_tag, str) or not lab_tag.strip("= ")):
            raise InvalidInput("filters.labTag must be name=value or name")
        older = values.get("older_than_hours")
        if older is not None and (
            isinstance(older, bool) or not isinstance(older, int | float) or older <= 0
        ):
            raise InvalidInput("filters.olderThanHours must be a positive number")
        cap = values.get("max_deletions")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise InvalidInput("filters.maxDeletions must be a whole number, 0 or more")
        return cls(
            subscriptions=_strings(values.get("subscriptions"), "subscriptions", 64),
            name_patterns=_strings(values.get("name_patterns"), "namePatterns", 90),
            lab_tag=lab_tag.strip() if lab_tag else None,
            older_than_hours=float(older) if older is not None else None,
            max_deletions=cap,
        )

    def public(self) -> dict[str, Any]:
        return {
            "subscriptions": list(self.subscriptions),
            "namePatterns": list(self.name_patterns),
            "labTag": self.lab_tag,
            "olderThanHours": self.older_than_hours,
            "maxDeletions": self.max_deletions,
        }


@dataclass
class Plan:
    """Every lab with its decision, at one moment. `plan_id` lets a caller execute exactly this plan."""

    plan_id: str
    created_at: dt.datetime
    filters: Filters
    dry_run: bool  # CLEANUP_DRY_RUN when the plan was made
    max_deletions: int
    subscriptions: tuple[str, ...]
    items: list[PlanItem]
    scanned: int = 0  # groups listed
    pages: int = 0  # ARM list pages read

    def having(self, decision: str) -> list[PlanItem]:
        return [item for item in self.items if item.decision == decision]

    @property
    def deletions(self) -> list[PlanItem]:
        return self.having(DELETE)

    def counts(self) -> dict[str, int]:
        return {decision: n for decision in DECISIONS if (n := len(self.having(decision)))}

    def public(self, omit_kept: bool = False) -> dict[str, Any]:
        items = [i for i in self.items if not (omit_kept and i.decision == KEEP)]
        return {
            "planId": self.plan_id,
            "createdAt": iso(self.created_at),
            "dryRun": self.dry_run,
            "maxDeletions": self.max_deletions,
            "subscriptions": list(self.subscriptions),
            "filters": self.filters.public(),
            "scanned": self.scanned,
            "pages": self.pages,
            "counts": self.counts(),
            "groups": [item.public() for item in items],
            **({"omitted": len(self.items) - len(items)} if omit_kept else {}),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            plan_id=str(data["planId"]),
            created_at=_time(data["createdAt"]),
            filters=Filters.parse(data.get("filters")),
            dry_run=bool(data["dryRun"]),
            max_deletions=int(data["maxDeletions"]),
            subscriptions=tuple(data.get("subscriptions") or ()),
            items=[PlanItem.from_public(item) for item in data.get("groups") or ()],
            scanned=int(data.get("scanned") or 0),
            pages=int(data.get("pages") or 0),
        )


def _time(value: Any) -> dt.datetime:
    parsed = parse_time(str(value))
    if parsed is None:
        raise ValueError(f"not a time: {value!r}")
    return parsed


@dataclass(frozen=True)
class Held:
    """A resource a group held right before its delete."""

    type: str
    name: str
    id: str

    def public(self) -> dict[str, str]:
        return {"type": self.type, "name": self.name, "id": self.id}


MAX_HELD = 200  # resources kept per outcome (a run record is bounded); `heldCount` counts them all


@dataclass(frozen=True)
class Outcome:
    """What execution did with one lab, and what the lab held when it was read right before its delete:
    its resources, its locks, and what is known to block the delete or survive it."""

    subscription: str
    name: str
    result: str  # one of RESULTS
    reason: str
    expiry: dt.datetime | None = None
    transient: bool = False  # failed in a way worth retrying (the run is retried)
    held: tuple[Held, ...] = ()
    held_count: int = 0
    locks: tuple[str, ...] = ()  # described: "name (level[, on what])"
    residue: tuple[str, ...] = ()

    def summary(self) -> dict[str, int]:
        """What the group held, by resource type (of those kept in `held`)."""
        counts: dict[str, int] = {}
        for resource in self.held:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return dict(sorted(counts.items()))

    def public(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "name": self.name,
            "result": self.result,
            "reason": self.reason,
            "expiry": iso(self.expiry) if self.expiry else None,
            "transient": self.transient,
            "held": [resource.public() for resource in self.held],
            "heldCount": max(self.held_count, len(self.held)),
            "heldByType": self.summary(),
            "locks": list(self.locks),
            "residue": list(self.residue),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> Outcome:
        expiry = data.get("expiry")
        return cls(
            str(data["subscription"]),
            str(data["name"]),
            str(data["result"]),
            str(data["reason"]),
            parse_time(str(expiry)) if expiry else None,
            bool(data.get("transient")),
            tuple(Held(str(h["type"]), str(h["name"]), str(h["id"])) for h in data.get("held") or []),
            int(data.get("heldCount") or 0),
            tuple(str(lock) for lock in data.get("locks") or []),
            tuple(str(note) for note in data.get("residue") or []),
        )


@dataclass
class RunRecord:
    """One execution: the fresh plan it acted on, what it did with each lab, and when."""

    run_id: str
    trigger: str  # timer | api
    dry_run: bool
    started_at: dt.datetime
    plan: Plan
    finished_at: dt.datetime | None = None
    reviewed_plan_id: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why the run stopped before it could act (its plan is then empty)

    def having(self, result: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def deleted(self) -> list[str]:
        return [o.name for o in self.having(DELETED)]

    @property
    def blocked(self) -> list[str]:
        """Labs a lock kept: in the plan, or found at the last moment (ScopeLocked)."""
        return sorted({i.name for i in self.plan.having(BLOCKED)} | {o.name for o in self.having(BLOCKED)})

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.having(FAILED)]

    def counts(self) -> dict[str, int]:
        return {result: n for result in RESULTS if (n := len(self.having(result)))}

    def public(self, omit_kept: bool = False) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "trigger": self.trigger,
            "dryRun": self.dry_run,
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at) if self.finished_at else None,
            "planId": self.plan.plan_id,
            "reviewedPlanId": self.reviewed_plan_id,
            "counts": self.counts(),
            "deleted": self.deleted,
            "blocked": self.blocked,
            "failed": self.failed,
            "outcomes": [o.public() for o in self.outcomes],
            "notes": list(self.notes),
            "error": self.error,
            "plan": self.plan.public(omit_kept),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(
            run_id=str(data["runId"]),
            trigger=str(data["trigger"]),
            dry_run=bool(data["dryRun"]),
            started_at=_time(data["startedAt"]),
            finished_at=_time(data["finishedAt"]) if data.get("finishedAt") else None,
            plan=Plan.from_public(data["plan"]),
            reviewed_plan_id=data.get("reviewedPlanId"),
            outcomes=[Outcome.from_public(o) for o in data.get("outcomes") or ()],
            notes=list(data.get("notes") or ()),
            error=data.get("error"),
        )


def _pack(body: dict[str, Any]) -> list[bytes]:
    raw = gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0)
    return [raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)] or [b""]


def _unpack(entity: Mapping[str, Any]) -> dict[str, Any]:
    chunks = []
    index = 0
    while f"Body{index}" in entity:
        chunks.append(bytes(entity[f"Body{index}"]))
        index += 1
    return dict(json.loads(gzip.decompress(b"".join(chunks))))


def index_key(record_id: str, at: dt.datetime) -> str:
    """The index row of the record `record_id` made at `at` (a plan's creation, a run's start): later
    records sort first, to the microsecond (microseconds since 1970 subtracted from 10**18)."""
    if ID.fullmatch(record_id) is None:
        raise InvalidInput(f"'{record_id}' is not a record id")
    micros = (at.astimezone(dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
    return f"{NEWEST}{LAST_MICROSECOND - micros:018d}-{record_id}"


def encode_continuation(token: Mapping[str, Any] | None) -> str | None:
    """Table storage's continuation (next PartitionKey and RowKey) as an opaque URL-safe string."""
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(dict(token), separators=(",", ":")).encode()).decode()


def decode_continuation(value: str | None) -> dict[str, str | None] | None:
    if value is None:
        return None
    invalid = InvalidInput("continuation is not one this API handed out")
    if len(value) > MAX_CONTINUATION:
        raise invalid
    try:
        token = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (ValueError, binascii.Error):
        raise invalid from None
    # The SDK's own shape: the next PartitionKey and RowKey, either possibly null.
    if (
        not isinstance(token, dict)
        or set(token) != {"PartitionKey", "RowKey"}
        or not all(v is None or isinstance(v, str) for v in token.values())
        or not any(token.values())
    ):
        raise invalid
    return token


def _listed(entity: Mapping[str, Any], name: str) -> list[str]:
    return list(json.loads(entity.get(name) or "[]"))


def _when(value: Any) -> str | None:
    return iso(_time(value.isoformat() if isinstance(value, dt.datetime) else value)) if value else None


def plan_summary(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A listed plan (its index row) as the API shows it."""
    return {
        "planId": entity["Id"],
        "createdAt": _when(entity.get("CreatedAt")),
        "dryRun": bool(entity.get("DryRun")),
        "counts": json.loads(entity.get("Counts") or "{}"),
        "filters": json.loads(entity.get("Filters") or "{}"),
        "deletions": _listed(entity, "Deletions"),
    }


def run_summary(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A listed run (its index row) as the API shows it."""
    return {
        "runId": entity["Id"],
        "trigger": entity.get("Trigger") or "",
        "dryRun": bool(entity.get("DryRun")),
        "startedAt": _when(entity.get("StartedAt")),
        "finishedAt": _when(entity.get("FinishedAt")),
        "planId": entity.get("PlanId") or "",
        "reviewedPlanId": entity.get("ReviewedPlanId") or None,
        "counts": json.loads(entity.get("Counts") or "{}"),
        "deleted": _listed(entity, "Deleted"),
        "blocked": _listed(entity, "Blocked"),
        "failed": _listed(entity, "Failed"),
        "error": entity.get("Error") or None,
    }


def _short(names: list[str], limit: int = 30_000) -> str:
    text = json.dumps(names)
    return text if len(text) <= limit else json.dumps([*names[: limit // 100], "…"])


class RunStore:
    """Plans and run records in Azure Table storage (image retention's store is one too)."""

    NOUN: ClassVar[str] = "cleanup"  # what the records are of, in messages

    def __init__(self, table: Any) -> None:
        self._table = table
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        ensure_table(self._table, self.NOUN)
        self._ready = True

    def _write(self, kind: str, row: str, body: dict[str, Any], summary: dict[str, Any]) -> None:
        self._ensure()
        chunks = _pack(body)
        if len(chunks) > MAX_CHUNKS:
            raise OverflowError
        entity: dict[str, Any] = {"PartitionKey": kind, "RowKey": row, **summary}
        entity.update({f"Body{i}": chunk for i, chunk in enumerate(chunks)})
        at = summary["CreatedAt" if kind == "plan" else "StartedAt"]
        index = {"PartitionKey": kind, "RowKey": index_key(row, at), "Id": row, **summary}
        try:
            self._table.submit_transaction(
                [("upsert", entity, {"mode": "replace"}), ("upsert", index, {"mode": "replace"})]
            )
        except AzureError as exc:
            raise table_error(exc, f"storing the {self.NOUN} {kind} {row}") from exc

    def _read(self, kind: str, row: str) -> dict[str, Any]:
        self._ensure()
        try:
            return _unpack(self._table.get_entity(kind, check_id(kind, row, self.NOUN)))
        except ResourceNotFoundError as exc:
            raise NotFound(f"no {self.NOUN} {kind} '{row}'") from exc
        except AzureError as exc:
            raise table_error(exc, f"reading the {self.NOUN} {kind} '{row}'") from exc

    def newest(
        self, kind: str, top: int, continuation: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of `kind` ('plan' or 'run') summaries, newest first: (their properties, the continuation
        of the next page or None)."""
        self._ensure()
        query = f"PartitionKey eq '{kind}' and RowKey ge '{NEWEST}' and RowKey lt 'newest.'"
        try:
            pages = self._table.query_entities(query, results_per_page=top).by_page(
                continuation_token=decode_continuation(continuation)
            )
            found = [dict(entity) for entity in next(pages, [])]
            return found, encode_continuation(pages.continuation_token)
        except AzureError as exc:
            raise table_error(exc, f"listing the {self.NOUN} {kind}s") from exc

    def save_plan(self, plan: Plan) -> None:
        summary = {
            "CreatedAt": plan.created_at,
            "DryRun": plan.dry_run,
            "Counts": json.dumps(plan.counts()),
            "Filters": json.dumps(plan.filters.public()),
            "Deletions": _short([i.name for i in plan.deletions]),
        }
        try:
            self._write("plan", plan.plan_id, plan.public(), summary)
        except OverflowError:  # too many labs for one entity: the kept ones are counted, not listed
            self._write("plan", plan.plan_id, plan.public(omit_kept=True), summary)

    def get_plan(self, plan_id: str) -> Plan:
        return Plan.from_public(self._read("plan", plan_id))

    def save_run(self, run: RunRecord) -> None:
        summary: dict[str, Any] = {
            "StartedAt": run.started_at,
            "Trigger": run.trigger,
            "DryRun": run.dry_run,
            "PlanId": run.plan.plan_id,
            "ReviewedPlanId": run.reviewed_plan_id or "",
            "Counts": json.dumps(run.counts()),
            "Deleted": _short(run.deleted),
            "Blocked": _short(run.blocked),
            "Failed": _short(run.failed),
        }
        if run.finished_at is not None:  # absent while the run goes on, or if it was interrupted
            summary["FinishedAt"] = run.finished_at
        if run.error:
            summary["Error"] = run.error[:1000]
        try:
            self._write("run", run.run_id, run.public(), summary)
        except OverflowError:
            self._write("run", run.run_id, run.public(omit_kept=True), summary)

    def get_run(self, run_id: str) -> RunRecord:
        return RunRecord.from_public(self._read("run", run_id))
