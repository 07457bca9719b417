"""The retention planner: pure functions from a repository as the registry lists it (tags, manifests,
their attributes), the verifications in progress, the rules, the limits and the time, to one decision
per tag and per manifest, each with the rule or protection that decided it. No I/O but `subject_of`,
which the inventory answers by reading a candidate's manifest (bounded: only candidates, in turn).

Order of evaluation:

1. A tag: locked (its own writeEnabled or deleteEnabled false) → `protected`; younger than the minimum
   age → `protected`; else the keep rules in order (the first that selects it keeps it), then the delete
   rules in order (`tagsOlderThan`, then an acr purge's filter with its `--keep`); no rule → `keep`.
2. A manifest is a candidate when every tag on it is to be deleted, or when it has none and an
   untagged rule's age has passed. Never deleted, whatever the rules (`protected`, with the reason):
   locked (its own attributes or any of its tags': ACR refuses to delete it), younger than the minimum
   age, being verified, a digest a kept tag points to, a child of an index that stays, an OCI referrer
   of a manifest that exists (ACR deletes it with its subject). The doomed tags of a manifest that stays
   are only untagged (`untag`), unless the image is young or being verified (then nothing is touched).
3. The cap: at most `Limits.cap` deletions (a manifest deleted by digest, or a tag untagged) per
   repository, oldest first; the rest are `deferred`, and the plan says so.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import exact
from .grammar import human, parse_semver
from .rules import DeleteTags, KeepRule, Limits, Ruleset

UTC = dt.UTC

DELETE = "delete"  # a manifest deleted by digest (its tags with it); a tag that goes with its manifest
UNTAG = "untag"  # a tag removed, its manifest stays
DEFERRED = "deferred"  # over the cap: due in a later run
KEEP = "keep"  # a keep rule, or no rule deletes it
PROTECTED = "protected"  # never deleted, whatever the rules
DECISIONS = (DELETE, UNTAG, DEFERRED, KEEP, PROTECTED)
ACTIONS = (DELETE, UNTAG)  # the decisions that send a request (a tag that goes with its manifest sends none)

TAG = "tag"
MANIFEST = "manifest"
UNKNOWN = "unknown"  # what subject_of answers when a manifest could not be read

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
# Docker's schema 2 manifests and lists have no `subject`: never a referrer, nothing to read (as acr-cli).
NO_SUBJECT_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
VERIFICATION_LOCK = "(Dockmaster's verification lock or a person's)"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

SubjectOf = Callable[["Manifest"], str | None]


def _locks(write_enabled: bool, delete_enabled: bool) -> list[str]:
    return [
        f"{name}=false"
        for name, on in (("writeEnabled", write_enabled), ("deleteEnabled", delete_enabled))
        if not on
    ]


@dataclass(frozen=True)
class Tag:
    name: str
    digest: str
    updated: dt.datetime | None
    write_enabled: bool = True
    delete_enabled: bool = True

    @property
    def locked(self) -> list[str]:
        return _locks(self.write_enabled, self.delete_enabled)


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    updated: dt.datetime | None  # the youngest of ACR's createdTime and lastUpdateTime
    tags: tuple[str, ...] = ()
    write_enabled: bool = True
    delete_enabled: bool = True
    references: tuple[str, ...] = ()  # an index's children
    config_media_type: str | None = None  # as ACR's listing names it

    @property
    def locked(self) -> list[str]:
        return _locks(self.write_enabled, self.delete_enabled)

    @property
    def attached(self) -> bool:
        """An OCI artifact with the empty config: how signatures, SBOMs and verdicts are attached to an
        image (image-spec "Guidelines for Artifact Usage"); it goes with its subject, so it does not
        count in the size of its repository."""
        return self.config_media_type == EMPTY_CONFIG


@dataclass(frozen=True)
class Repository:
    registry: str
    name: str
    tags: Mapping[str, Tag]
    manifests: Mapping[str, Manifest]
    verifying: frozenset[str] = frozenset()  # digests with a verdict that is not final

    @functools.cached_property
    def size(self) -> int:
        """The manifests the cap's per cent is of: all but the artifacts attached to others (counted once:
        the planner asks for it at every pending deletion)."""
        return sum(1 for manifest in self.manifests.values() if not manifest.attached)


@dataclass(frozen=True)
class PlanItem:
    """One tag or manifest and what the plan does with it, and which rule or protection decided."""

    registry: str
    repository: str
    kind: str  # tag | manifest
    name: str  # the tag, or the digest
    digest: str
    decision: str
    rule: str
    reason: str
    updated: dt.datetime | None = None
    tags: tuple[str, ...] = ()  # a manifest's tags as listed: the re-read before its delete compares them
    media_type: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.registry.lower(), self.repository, self.kind, self.name

    @property
    def acts(self) -> bool:
        """Sends a request: a manifest deleted, or a tag untagged."""
        return (self.kind, self.decision) in ((MANIFEST, DELETE), (TAG, UNTAG))

    def public(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "kind": self.kind,
            "name": self.name,
            "digest": self.digest,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "updated": exact(self.updated),
            "tags": list(self.tags),
            "mediaType": self.media_type,
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> PlanItem:
        updated = data.get("updated")
        return cls(
            str(data["registry"]),
            str(data["repository"]),
            str(data["kind"]),
            str(data["name"]),
            str(data["digest"]),
            str(data["decision"]),
            str(data["rule"]),
            str(data["reason"]),
            dt.datetime.fromisoformat(str(updated)) if updated else None,
            tuple(str(t) for t in data.get("tags") or ()),
            str(data.get("mediaType") or ""),
        )


@dataclass
class _Mark:
    decision: str
    rule: str
    reason: str


def _age(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "of unknown age"
    hours = (now - moment).total_seconds() / 3600
    return f"{hours / 24:.1f} days old" if hours >= 48 else f"{hours:.1f} hours old"


def _older(moment: dt.datetime | None, now: dt.datetime, age: dt.timedelta) -> bool:
    """Strictly older than `age` (acr-cli: last update before now - ago); an unknown time is never old."""
    return moment is not None and moment < now - age


def _newest_first(tags: Iterable[Tag]) -> list[Tag]:
    floor = dt.datetime.min.replace(tzinfo=UTC)
    return sorted(tags, key=lambda t: (t.updated or floor, t.name), reverse=True)


def _selected(rule: KeepRule, tags: Sequence[Tag]) -> set[str]:
    chosen = [t for t in tags if rule.pattern is None or rule.pattern.search(t.name)]
    if rule.latest is None:
        return {t.name for t in chosen}
    if rule.by == "semver":
        versions = [(v, t) for t in _newest_first(chosen) if (v := parse_semver(t.name)) is not None]
        ranked = [
            t for _, t in sorted(versions, key=lambda pair: pair[0], reverse=True)
        ]  # stable: newest first
    else:
        ranked = _newest_first(chosen)
    return {t.name for t in ranked[: rule.latest]}


def _describe_keep(rule: KeepRule) -> str:
    if rule.latest is None:
        return f"matches {rule.pattern.pattern if rule.pattern else '(any)'}"
    order = "semantic version" if rule.by == "semver" else "push time"
    among = f" among tags matching {rule.pattern.pattern}" if rule.pattern else ""
    return f"one of the latest {rule.latest} by {order}{among}"


def _purge_kept(rule: DeleteTags, tags: Sequence[Tag], now: dt.datetime) -> set[str]:
    """acr purge's --keep: of the tags it would delete (matching, old enough, unlocked), the N most
    recently updated stay."""
    if not rule.keep_latest:
        return set()
    eligible = [t for t in tags if _deletes(rule, t, now) and not t.locked]
    return {t.name for t in _newest_first(eligible)[: rule.keep_latest]}


def _deletes(rule: DeleteTags, tag: Tag, now: dt.datetime) -> bool:
    return (rule.pattern is None or rule.pattern.search(tag.name) is not None) and _older(
        tag.updated, now, rule.older_than
    )


def decide_tags(repo: Repository, rules: Ruleset, limits: Limits, now: dt.datetime) -> dict[str, _Mark]:
    """Step 1: each tag's decision (keep, protected, or delete pending its manifest)."""
    tags = list(repo.tags.values())
    kept = [(rule, _selected(rule, tags)) for rule in rules.keep]
    purge_kept = [(rule, _purge_kept(rule, tags, now)) for rule in rules.delete_tags]
    marks: dict[str, _Mark] = {}
    for tag in tags:
        marks[tag.name] = _tag_mark(tag, repo, rules, limits, now, kept, purge_kept)
    return marks


def _tag_mark(
    tag: Tag,
    repo: Repository,
    rules: Ruleset,
    limits: Limits,
    now: dt.datetime,
    kept: list[tuple[KeepRule, set[str]]],
    purge_kept: list[tuple[DeleteTags, set[str]]],
) -> _Mark:
    if tag.locked:
        return _Mark(PROTECTED, "locked", f"locked: {', '.join(tag.locked)} on the tag {VERIFICATION_LOCK}")
    if tag.digest not in repo.manifests:
        return _Mark(
            PROTECTED, "unlisted", f"its manifest {tag.digest} was not in the listing (pushed meanwhile?)"
        )
    if not _older(tag.updated, now, limits.min_age):
        return _Mark(
            PROTECTED,
            "min-age",
            f"younger than the minimum age {human(limits.min_age)} ({_age(tag.updated, now)})",
        )
    for rule, names in kept:
        if tag.name in names:
            return _Mark(KEEP, rule.name, f"kept: {_describe_keep(rule)}")
    for doom, saved in purge_kept:
        if _deletes(doom, tag, now):
            if tag.name in saved:
                return _Mark(
                    KEEP,
                    doom.name,
                    f"kept: one of the {doom.keep_latest} most recently updated it would delete (--keep)",
                )
            return _Mark(DELETE, doom.name, f"older than {human(doom.older_than)} ({_age(tag.updated, now)})")
    return _Mark(KEEP, "none", "no rule deletes it")


@dataclass
class _Work:
    """Step 2 and 3's state for one repository."""

    repo: Repository
    limits: Limits
    subject_of: SubjectOf
    tags: dict[str, _Mark]
    manifests: dict[str, _Mark] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)
    pending: dict[tuple[str, str], None] = field(default_factory=dict)  # (kind, name) waiting for the cap
    chosen: set[str] = field(default_factory=set)  # digests deleted
    actions: int = 0

    on: dict[str, list[str]] = field(default_factory=dict)  # digest → the tags on it (either listing)

    @property
    def cap(self) -> int:
        return self.limits.cap(self.repo.size)

    def tags_on(self, manifest: Manifest) -> list[str]:
        return sorted({*manifest.tags, *self.on.get(manifest.digest, ())})


def _manifest_protection(work: _Work, manifest: Manifest, now: dt.datetime) -> tuple[str, str, bool] | None:
    """(rule, reason, whether its doomed tags may still be untagged) when nothing may delete it."""
    repo = work.repo
    locks = [
        *manifest.locked,
        *(lock for name in work.tags_on(manifest) if name in repo.tags for lock in repo.tags[name].locked),
    ]
    if not _older(manifest.updated, now, work.limits.min_age):
        return (
            "min-age",
            f"younger than the minimum age {human(work.limits.min_age)} ({_age(manifest.updated, now)})",
            False,
        )
    if manifest.digest in repo.verifying:
        return "verifying", "being verified: its verdict is not final", False
    if locks:
        return (
            "locked",
            f"locked: {', '.join(sorted(set(locks)))} {VERIFICATION_LOCK}; ACR refuses to delete it",
            True,
        )
    kept = [
        name for name in work.tags_on(manifest) if work.tags.get(name, _Mark(KEEP, "", "")).decision != DELETE
    ]
    if kept:
        return "kept-tag", f"a kept tag points to it: {', '.join(kept[:5])}", True
    return None


def plan_repository(
    repo: Repository, rules: Ruleset | None, limits: Limits, now: dt.datetime, subject_of: SubjectOf
) -> list[PlanItem]:
    """Every tag and manifest of `repo` with its decision. Without rules nothing goes."""
    if rules is None:
        rules = Ruleset("no retention rule applies")
    work = _Work(repo, limits, subject_of, decide_tags(repo, rules, limits, now))
    for tag in repo.tags.values():
        work.on.setdefault(tag.digest, []).append(tag.name)
    for manifest in repo.manifests.values():
        for child in manifest.references:
            work.parents.setdefault(child, []).append(manifest.digest)
    for manifest in repo.manifests.values():
        work.manifests[manifest.digest] = _manifest_mark(work, manifest, rules, now)
    _apply_cap(work, now)
    return _items(work)


def _manifest_mark(work: _Work, manifest: Manifest, rules: Ruleset, now: dt.datetime) -> _Mark:
    tags = work.tags_on(manifest)
    protection = _manifest_protection(work, manifest, now)
    if protection is not None:
        rule, reason, untag = protection
        for name in tags:
            mark = work.tags.get(name)
            if mark is not None and mark.decision == DELETE:
                if untag:
                    _untag(work, name, f"its manifest stays ({reason})")
                else:
                    work.tags[name] = _Mark(PROTECTED, rule, f"its image is {reason}")
        return _Mark(PROTECTED, rule, reason)
    if tags:
        rule = work.tags[tags[0]].rule
        work.pending[(MANIFEST, manifest.digest)] = None
        return _Mark(DELETE, rule, f"every tag on it is to be deleted ({', '.join(tags[:5])})")
    for untagged in rules.delete_untagged:
        if _older(manifest.updated, now, untagged.older_than):
            work.pending[(MANIFEST, manifest.digest)] = None
            return _Mark(
                DELETE,
                untagged.name,
                f"untagged, older than {human(untagged.older_than)} ({_age(manifest.updated, now)})",
            )
    return _Mark(KEEP, "none", "untagged; no rule deletes it" if not tags else "no rule deletes it")


def _untag(work: _Work, tag: str, why: str) -> None:
    mark = work.tags[tag]
    work.tags[tag] = _Mark(UNTAG, mark.rule, f"{mark.reason}; untagged only: {why}")
    work.pending[(TAG, tag)] = None


def _protect(work: _Work, digest: str, rule: str, reason: str) -> None:
    """A candidate found protected in step 3: it stays, its doomed tags are untagged."""
    work.manifests[digest] = _Mark(PROTECTED, rule, reason)
    for name in work.tags_on(work.repo.manifests[digest]):
        if work.tags.get(name) is not None and work.tags[name].decision == DELETE:
            _untag(work, name, f"its manifest stays ({reason})")


def _when(work: _Work, kind: str, name: str) -> tuple[dt.datetime, str, str]:
    floor = dt.datetime.min.replace(tzinfo=UTC)
    moment = work.repo.tags[name].updated if kind == TAG else work.repo.manifests[name].updated
    return moment or floor, kind, name


def _apply_cap(work: _Work, now: dt.datetime) -> None:
    """Step 3: take the pending deletions oldest first while the cap allows. A child waits for every
    index that references it to be deleted first; one whose index stays is protected. A manifest's
    subject is read only when its turn comes and the cap still allows it."""
    progress = True
    while progress and work.pending:
        progress = False
        for kind, name in sorted(work.pending, key=lambda p: _when(work, *p)):
            if (kind, name) not in work.pending:
                continue
            if kind == TAG:
                if work.actions < work.cap:
                    del work.pending[(kind, name)]
                    work.actions += 1
                    progress = True
                continue
            parents = work.parents.get(name, [])
            staying = [p for p in parents if p not in work.chosen and (MANIFEST, p) not in work.pending]
            if staying:
                del work.pending[(kind, name)]
                _protect(work, name, "index", f"referenced by the index {staying[0]}, which stays")
                progress = True
                continue
            if any(p not in work.chosen for p in parents) or work.actions >= work.cap:
                continue  # waits for its indexes, or for room under the cap
            del work.pending[(kind, name)]
            progress = True
            manifest = work.repo.manifests[name]
            subject = None if manifest.media_type in NO_SUBJECT_TYPES else work.subject_of(manifest)
            if subject == UNKNOWN:
                _protect(
                    work, name, "referrer", "its manifest could not be read to see whether it is a referrer"
                )
            elif subject is not None and subject in work.repo.manifests:
                _protect(
                    work,
                    name,
                    "referrer",
                    f"an OCI referrer of {subject}: it goes with its subject (ACR deletes it then)",
                )
            else:
                work.chosen.add(name)
                work.actions += 1
    over = work.limits.describe(work.repo.size)
    for kind, name in work.pending:
        marks = work.tags if kind == TAG else work.manifests
        mark = marks[name]
        marks[name] = _Mark(DEFERRED, mark.rule, f"{mark.reason}; over {over}: due in a later run")
    work.pending.clear()


def _items(work: _Work) -> list[PlanItem]:
    repo = work.repo
    items: list[PlanItem] = []
    for digest, mark in sorted(work.manifests.items()):
        items.append(
            PlanItem(
                repo.registry,
                repo.name,
                MANIFEST,
                digest,
                digest,
                mark.decision,
                mark.rule,
                mark.reason,
                repo.manifests[digest].updated,
                tuple(work.tags_on(repo.manifests[digest])),
                repo.manifests[digest].media_type,
            )
        )
    for name, mark in sorted(work.tags.items()):
        tag = repo.tags[name]
        decision, reason = mark.decision, mark.reason
        if decision == DELETE:
            manifest = work.manifests.get(tag.digest)
            if manifest is not None and manifest.decision == DEFERRED:
                decision, reason = DEFERRED, f"{reason}; its manifest is deferred (over the cap)"
            else:
                reason = f"{reason}; deleted with its manifest {tag.digest}"
        items.append(
            PlanItem(
                repo.registry, repo.name, TAG, name, tag.digest, decision, mark.rule, reason, tag.updated
            )
        )
    return items


def cap_of(items: Sequence[PlanItem]) -> int:
    return sum(1 for item in items if item.acts)


def with_decision(item: PlanItem, decision: str, reason: str) -> PlanItem:
    return replace(item, decision=decision, reason=reason)
