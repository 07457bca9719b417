"""The only part of retention that talks to the registry and the verdict store: list a repository
(tags and manifests, paged), read a candidate's manifest for its `subject`, re-read right before a
delete, and delete."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DockmasterError, InvalidInput, NotFound
from .planner import UNKNOWN, Manifest, PlanItem, Repository, Tag

if TYPE_CHECKING:
    from ..config import RegistryRef
    from ..registry import Page, RegistryClient
    from ..verdicts import Verdict

log = logging.getLogger("dockmaster.retention")

PAGE = 100  # ACR's page size when `n` is not given; a larger one is not documented


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _attributes(found: dict[str, Any]) -> tuple[bool, bool]:
    """(writeEnabled, deleteEnabled); a missing attribute counts as locked: never delete on a guess."""
    attrs = found.get("changeableAttributes") or {}
    return attrs.get("writeEnabled") is not False and "writeEnabled" in attrs, attrs.get(
        "deleteEnabled"
    ) is not False and "deleteEnabled" in attrs


def tag_of(found: dict[str, Any]) -> Tag:
    write, delete = _attributes(found)
    return Tag(
        str(found["name"]), str(found["digest"]), parse_time(found.get("lastUpdateTime")), write, delete
    )


def manifest_of(found: dict[str, Any]) -> Manifest:
    write, delete = _attributes(found)
    times = [t for t in (parse_time(found.get("createdTime")), parse_time(found.get("lastUpdateTime"))) if t]
    children = tuple(
        str(r["digest"]) for r in found.get("references") or [] if isinstance(r, dict) and r.get("digest")
    )
    return Manifest(
        str(found["digest"]),
        str(found.get("mediaType") or ""),
        max(times) if times else None,
        tuple(str(t) for t in found.get("tags") or []),
        write,
        delete,
        children,
        str(found["configMediaType"]) if found.get("configMediaType") else None,
    )


def _pages(read: Callable[[str | None], Page]) -> Iterator[Any]:
    last: str | None = None
    while True:
        page = read(last)
        yield from page.items
        if page.last is None or not page.items:
            return
        last = page.last


@dataclass
class RegistryInventory:
    registry_data: Callable[[RegistryRef], RegistryClient]
    verdicts: Callable[[RegistryRef, str], list[Verdict]]  # a repository's verdicts: one query

    def client(self, ref: RegistryRef) -> RegistryClient:
        return self.registry_data(ref)

    def requests(self, ref: RegistryRef) -> int:
        return self.client(ref).requests

    def repositories(self, ref: RegistryRef) -> list[str]:
        client = self.client(ref)
        return [str(name) for name in _pages(lambda last: client.list_repositories(PAGE, last))]

    def read(self, ref: RegistryRef, repository: str) -> Repository:
        """The repository as the two listings show it, and the digests being verified."""
        client = self.client(ref)
        tags = {t.name: t for t in map(tag_of, _pages(lambda last: client.list_tags(repository, PAGE, last)))}
        manifests = {
            m.digest: m
            for m in map(manifest_of, _pages(lambda last: client.list_manifests(repository, PAGE, last)))
        }
        verifying = frozenset(
            v.digest for v in self.verdicts(ref, repository) if not v.final or v.pending_actions
        )
        return Repository(ref.name, repository, tags, manifests, verifying)

    def subject_reader(self, ref: RegistryRef, repository: str) -> Callable[[Manifest], str | None]:
        """Reads a candidate's manifest for its `subject` (the manifest listing does not show it)."""
        client = self.client(ref)

        def subject_of(manifest: Manifest) -> str | None:
            try:
                document = client.get_manifest(repository, manifest.digest).document
            except NotFound:
                return None  # gone: the delete will find it gone
            except DockmasterError as exc:
                log.warning("retention: reading %s@%s: %s", repository, manifest.digest, exc.message)
                return UNKNOWN
            subject = document.get("subject")
            return str(subject.get("digest") or UNKNOWN) if isinstance(subject, dict) else None

        return subject_of

    # The last moment ----------------------------------------------------------------------------
    def recheck_manifest(self, ref: RegistryRef, item: PlanItem) -> str | None:
        """Why the manifest must not be deleted now (None: it is as the plan saw it). Raises NotFound
        when it is gone."""
        client = self.client(ref)
        found = client.manifest_properties(item.repository, item.digest)
        if found is None:
            raise NotFound(f"{item.repository}@{item.digest} is gone")
        manifest = manifest_of(found)
        if manifest.locked:
            return f"locked since the plan: {', '.join(manifest.locked)}"
        if set(manifest.tags) != set(item.tags):
            return f"its tags changed since the plan: now {sorted(manifest.tags)}, then {sorted(item.tags)}"
        if item.updated is None or manifest.updated is None or manifest.updated > item.updated:
            return "updated since the plan"
        for tag in manifest.tags:
            digest, attrs = client.tag_target(item.repository, tag)
            if digest != item.digest:
                return f"its tag {tag} moved since the plan"
            write, delete = _attributes({"changeableAttributes": attrs})
            if not (write and delete):
                return f"its tag {tag} is locked since the plan"
        return None

    def recheck_tag(self, ref: RegistryRef, item: PlanItem) -> str | None:
        digest, attrs = self.client(ref).tag_target(item.repository, item.name)
        if digest is None:
            raise NotFound(f"{item.repository}:{item.name} is gone")
        if digest != item.digest:
            return f"it points to {digest} now, not {item.digest}"
        write, delete = _attributes({"changeableAttributes": attrs})
        if not (write and delete):
            return "locked since the plan"
        return None

    def delete(self, ref: RegistryRef, item: PlanItem) -> None:
        client = self.client(ref)
        if item.kind == "manifest":
            client.delete_manifest(item.repository, item.digest)
        elif item.kind == "tag":
            client.delete_tag(item.repository, item.name)
        else:
            raise InvalidInput(f"nothing to delete for a {item.kind}")
