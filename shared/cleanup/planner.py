"""The cleanup planner: pure functions from what ARM reports (groups, locks), the rules and the time to
one decision per lab, each with its reason. No I/O here: the executor lists, stamps, warns and deletes.

A group is deleted only when every rule says yes. The checks, in order:

1. not a lab (neither the marker tag nor a name pattern) → not in the plan at all;
2. already deleting → `deleting`; the app's own group, a protected name, a group holding a configured
   registry or a protection tag → `protected`; `managedBy` set → `managed`;
3. the expiry: the expiry tag (absolute, or relative such as `72h`, normalized to absolute on first
   sight), else a creation tag plus the TTL, else the first-seen tag plus the grace period (stamped on
   first sight). A tag that does not parse → `invalid-expiry`;
4. not expired → `keep`, or `warn` inside the warning window; a lab that would be deleted or warned
   about is checked for locks: any lock → `blocked`;
5. expired and unlocked → `delete`, up to the per-run cap (oldest expiry first); the rest → `deferred`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import stamp

UTC = dt.UTC

DELETE = "delete"
KEEP = "keep"
WARN = "warn"
BLOCKED = "blocked"
PROTECTED = "protected"
MANAGED = "managed"
DELETING = "deleting"
INVALID_EXPIRY = "invalid-expiry"
DEFERRED = "deferred"
DECISIONS = (DELETE, DEFERRED, WARN, KEEP, BLOCKED, PROTECTED, MANAGED, DELETING, INVALID_EXPIRY)

# What an execution of a reviewed plan says of a deletion it does not make (run outcomes, shared/records).
KEPT = "kept"  # the last-moment re-check (or the fresh plan) keeps it
NOT_REVIEWED = "not-reviewed"  # the fresh plan would delete it, the reviewed plan did not

FIRST_SEEN_TAG = "dockmaster-first-seen"
WARNED_TAG = "dockmaster-warned"

# fullmatch, ASCII: `\d` would take any Unicode digit (float() reads them too), IGNORECASE non-ASCII folds.
RELATIVE = re.compile(r"\s*\+?([0-9]+(?:\.[0-9]+)?)\s*([mhdw])\s*", re.IGNORECASE | re.ASCII)
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Key = tuple[str, str]  # (subscription, group name), both lower-case


iso = stamp  # every time cleanup writes (tags, expiries, records): UTC, whole seconds, Z


def key_of(subscription: str, name: str) -> Key:
    return subscription.lower(), name.lower()


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time; without an offset it is UTC. None when it does not parse."""
    value = text.strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_relative(text: str) -> dt.timedelta | None:
    """`90m`, `72h`, `3d`, `2w` (also `+72h`, `1.5d`); None when the text is not one of these."""
    found = RELATIVE.fullmatch(text)
    if not found:
        return None
    return dt.timedelta(**{UNITS[found.group(2).lower()]: float(found.group(1))})


def parse_lab_tag(text: str) -> tuple[str, str | None] | None:
    """`name=value` (that value), `name` (any value) or empty (no marker tag)."""
    text = text.strip()
    if not text:
        return None
    name, sep, value = text.partition("=")
    if not name.strip():
        raise ValueError(f"'{text}' is not a tag: write name=value or name")
    return name.strip(), value.strip() if sep else None


def split_list(text: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(r"[,\s]+", text) if item)


@dataclass(frozen=True)
class Lock:
    name: str
    level: str  # CanNotDelete | ReadOnly
    on: str = ""  # what it sits on when not the group itself: a resource in it, or the subscription

    def describe(self) -> str:
        return f"{self.name} ({self.level}, on {self.on})" if self.on else f"{self.name} ({self.level})"


@dataclass(frozen=True)
class Group:
    """A resource group as ARM lists it."""

    subscription: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    managed_by: str | None = None
    state: str = "Succeeded"

    @property
    def key(self) -> Key:
        return key_of(self.subscription, self.name)

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.name}"

    @functools.cached_property
    def _by_lower_name(self) -> dict[str, tuple[str, str]]:
        return {key.lower(): (key, value) for key, value in self.tags.items()}

    def tag(self, name: str) -> tuple[str, str] | None:
        """(the tag's own spelling, value) for a tag name in any case: ARM tag names ignore case."""
        return self._by_lower_name.get(name.lower())


def _globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = [p.lower() for p in patterns if p]
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True)
class Rules:
    """What makes a lab and when it goes: the settings, narrowed by a caller's filters."""

    lab_tag: tuple[str, str | None] | None
    name_patterns: tuple[str, ...] = ()
    expiry_tag: str = "expiresOn"
    creation_tags: tuple[str, ...] = ("createdAt", "creationTimestamp")
    protection_tags: tuple[str, ...] = ("do-not-delete",)
    protected_groups: tuple[str, ...] = ()  # names or globs
    app_group: str = ""
    # (subscription, group, registry) of each configured registry: its group is never a lab to delete.
    registry_groups: tuple[tuple[str, str, str], ...] = ()
    ttl: dt.timedelta = dt.timedelta(hours=72)
    grace: dt.timedelta = dt.timedelta(hours=24)
    warning: dt.timedelta = dt.timedelta(hours=12)
    max_deletions: int = 10
    # A caller's filters only narrow: they can never make a lab of a group the settings do not.
    only_patterns: tuple[str, ...] = ()
    only_tag: tuple[str, str | None] | None = None
    older_than: dt.timedelta | None = None

    def __post_init__(self) -> None:
        if self.lab_tag is None and not self.name_patterns:
            raise ValueError("no lab marker: set a lab tag or name patterns, or every group would be a lab")

    @functools.cached_property
    def _patterns(self) -> re.Pattern[str] | None:
        return _globs(self.name_patterns)

    @functools.cached_property
    def _only(self) -> re.Pattern[str] | None:
        return _globs(self.only_patterns)

    @functools.cached_property
    def _protected(self) -> re.Pattern[str] | None:
        return _globs((*self.protected_groups, self.app_group))

    @functools.cached_property
    def _registries(self) -> dict[Key, tuple[str, ...]]:
        # ARM compares subscription ids and group names without regard to case.
        held: dict[Key, tuple[str, ...]] = {}
        for subscription, group, registry in self.registry_groups:
            key = key_of(subscription, group)
            held[key] = (*held.get(key, ()), registry)
        return held

    @property
    def server_filter(self) -> str | None:
        """ARM's `$filter` when one tag selects every lab; otherwise None (list all, filter here)."""
        if self.lab_tag is None or self.name_patterns:
            return None
        name, value = (part.replace("'", "''") if part is not None else None for part in self.lab_tag)
        return f"tagName eq '{name}'" + (f" and tagValue eq '{value}'" if value is not None else "")

    def is_lab(self, group: Group) -> bool:
        by_tag = self.lab_tag is not None and _has_tag(group, self.lab_tag)
        by_name = self._patterns is not None and self._patterns.fullmatch(group.name.lower()) is not None
        if not (by_tag or by_name):
            return False
        if self._only is not None and self._only.fullmatch(group.name.lower()) is None:
            return False
        return self.only_tag is None or _has_tag(group, self.only_tag)

    def protection(self, group: Group) -> str | None:
        """Why a lab is protected, or None."""
        if self.app_group and group.name.lower() == self.app_group.lower():
            return "the app's own resource group (DOCKMASTER_APP_RESOURCE_GROUP)"
        if self._protected is not None and self._protected.fullmatch(group.name.lower()):
            return "listed in CLEANUP_PROTECTED_GROUPS"
        registries = self._registries.get(group.key)
        if registries:
            noun = "registry" if len(registries) == 1 else "registries"
            return f"holds the configured {noun} {', '.join(registries)} (DOCKMASTER_REGISTRIES)"
        for name in self.protection_tags:
            found = group.tag(name)
            if found is not None:
                return f"protection tag '{found[0]}={found[1]}'"
        return None


def _has_tag(group: Group, tag: tuple[str, str | None]) -> bool:
    found = group.tag(tag[0])
    return found is not None and (tag[1] is None or found[1] == tag[1])


@dataclass(frozen=True)
class Expiry:
    at: dt.datetime | None  # None: invalid
    source: str  # expiry-tag | relative | created | first-seen | first-sight
    detail: str
    writes: Mapping[str, str] = field(default_factory=dict)  # tags to stamp
    expected: Mapping[str, str | None] = field(default_factory=dict)  # their values as listed


def expiry_of(group: Group, rules: Rules, now: dt.datetime) -> Expiry:
    found = group.tag(rules.expiry_tag)
    if found is not None:
        name, value = found
        absolute = parse_time(value)
        if absolute is not None:
            return Expiry(absolute, "expiry-tag", f"tag {name}={value}")
        relative = parse_relative(value)
        if relative is not None:
            at = now.replace(microsecond=0) + relative
            return Expiry(
                at,
                "relative",
                f"tag {name}={value} from first sight, normalized to {iso(at)}",
                {name: iso(at)},
                {name: value},
            )
        return Expiry(None, "expiry-tag", f"tag {name}='{value}' is neither ISO 8601 nor like 72h/3d/90m")
    for creation in rules.creation_tags:
        found = group.tag(creation)
        if found is not None:
            name, value = found
            created = parse_time(value)
            if created is None:
                return Expiry(None, "created", f"tag {name}='{value}' is not an ISO 8601 time")
            return Expiry(created + rules.ttl, "created", f"tag {name}={value} plus TTL {_hours(rules.ttl)}")
    found = group.tag(FIRST_SEEN_TAG)
    if found is not None:
        name, value = found
        seen = parse_time(value)
        if seen is None:
            return Expiry(None, "first-seen", f"tag {name}='{value}' is not an ISO 8601 time")
        return Expiry(
            seen + rules.grace, "first-seen", f"first seen {value} plus grace {_hours(rules.grace)}"
        )
    return Expiry(
        now.replace(microsecond=0) + rules.grace,
        "first-sight",
        f"first seen now, {FIRST_SEEN_TAG} stamped; grace {_hours(rules.grace)}",
        {FIRST_SEEN_TAG: iso(now)},
        {FIRST_SEEN_TAG: None},
    )


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g}h"


def age_of(group: Group, rules: Rules, now: dt.datetime) -> dt.timedelta | None:
    """How long the lab has existed, from a creation tag or the first-seen tag; None if unknown."""
    for name in (*rules.creation_tags, FIRST_SEEN_TAG):
        found = group.tag(name)
        if found is not None:
            since = parse_time(found[1])
            return now - since if since is not None else None
    return None


@dataclass(frozen=True)
class PlanItem:
    """One lab and what the plan does with it, and why."""

    subscription: str
    name: str
    decision: str
    reason: str
    expiry: dt.datetime | None = None
    expiry_source: str | None = None
    tag_writes: Mapping[str, str] = field(default_factory=dict)  # stamps the executor applies
    expected_tags: Mapping[str, str | None] = field(default_factory=dict)
    warn: bool = False  # a warning for this expiry is due (not sent before)
    notes: tuple[str, ...] = ()  # what happened while the plan was applied

    @property
    def key(self) -> Key:
        return key_of(self.subscription, self.name)

    def noted(self, note: str, **changes: Any) -> PlanItem:
        return replace(self, notes=(*self.notes, note), **changes)

    def public(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "name": self.name,
            "decision": self.decision,
            "reason": self.reason,
            "expiry": iso(self.expiry) if self.expiry else None,
            "expirySource": self.expiry_source,
            "notes": list(self.notes),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> PlanItem:
        expiry = data.get("expiry")
        return cls(
            subscription=str(data["subscription"]),
            name=str(data["name"]),
            decision=str(data["decision"]),
            reason=str(data["reason"]),
            expiry=parse_time(str(expiry)) if expiry else None,
            expiry_source=data.get("expirySource"),
            notes=tuple(data.get("notes") or ()),
        )


def decide(group: Group, rules: Rules, now: dt.datetime, locks: Sequence[Lock] | None) -> PlanItem:
    """One lab's decision. `locks` None means not checked: a lab that would be deleted or warned
    about is then `blocked`, never deleted (the executor checks the locks of those first)."""
    item = functools.partial(PlanItem, group.subscription, group.name)
    if group.state.lower() == "deleting":
        return item(DELETING, "already being deleted (provisioningState Deleting)")
    protected = rules.protection(group)
    if protected is not None:
        return item(PROTECTED, protected)
    if group.managed_by:
        return item(MANAGED, f"managed by {group.managed_by}")
    expiry = expiry_of(group, rules, now)
    if expiry.at is None:
        return item(INVALID_EXPIRY, expiry.detail, expiry_source=expiry.source)
    at = expiry.at
    stamped = functools.partial(
        item, expiry=at, expiry_source=expiry.source, tag_writes=expiry.writes, expected_tags=expiry.expected
    )
    if at > now + rules.warning:
        return stamped(KEEP, f"expires {iso(at)} ({expiry.detail})")
    if locks is None:
        return stamped(BLOCKED, f"locks not checked; expires {iso(at)} ({expiry.detail})")
    if locks:
        held = ", ".join(lock.describe() for lock in locks)
        return stamped(BLOCKED, f"locked: {held}; expires {iso(at)} ({expiry.detail})")
    if at > now:
        warned = group.tag(WARNED_TAG)
        already = warned is not None and parse_time(warned[1]) == at.replace(microsecond=0)
        when = "warned before" if already else "warning due"
        reason = f"expires {iso(at)}, within the warning window; {when} ({expiry.detail})"
        return stamped(WARN, reason, warn=not already)
    if rules.older_than is not None:
        age = age_of(group, rules, now)
        if age is None or age < rules.older_than:
            known = f"age {_hours(age)}" if age is not None else "age unknown"
            return stamped(
                KEEP, f"expired {iso(at)}, but {known} is under the filter's {_hours(rules.older_than)}"
            )
    return stamped(DELETE, f"expired {iso(at)} ({expiry.detail})")


def needs_locks(group: Group, rules: Rules, now: dt.datetime) -> bool:
    """Whether the lab's decision depends on its locks (it would be deleted or warned about)."""
    decision = decide(group, rules, now, ())
    return decision.decision in (DELETE, WARN)


def select(groups: Iterable[Group], rules: Rules) -> list[Group]:
    return [group for group in groups if rules.is_lab(group)]


def cap(items: Sequence[PlanItem], limit: int) -> list[PlanItem]:
    """At most `limit` deletions, oldest expiry first; the others are deferred to a later run."""
    doomed = sorted(
        (item for item in items if item.decision == DELETE),
        key=lambda item: (item.expiry or dt.datetime.min.replace(tzinfo=UTC), item.subscription, item.name),
    )
    deferred = {item.key for item in doomed[limit:]}
    return [
        replace(
            item,
            decision=DEFERRED,
            reason=f"{item.reason}; over the per-run cap of {limit} deletions, due in a later run",
        )
        if item.key in deferred
        else item
        for item in items
    ]


def plan_labs(
    groups: Iterable[Group], rules: Rules, now: dt.datetime, locks: Mapping[Key, Sequence[Lock]]
) -> list[PlanItem]:
    """Every lab among `groups` with its decision, sorted by subscription and name; `locks` holds the
    locks of the labs (only those `needs_locks` names are looked at; one missing counts as not checked)."""
    labs = sorted(select(groups, rules), key=lambda g: g.key)
    return cap([decide(group, rules, now, locks.get(group.key)) for group in labs], rules.max_deletions)


@dataclass(frozen=True)
class Refusal:
    """A deletion of one plan that the other does not make: kept, blocked or not reviewed, and why."""

    subscription: str
    name: str
    result: str  # KEPT | BLOCKED | NOT_REVIEWED
    reason: str
    expiry: dt.datetime | None = None


def reconcile(
    reviewed_id: str, reviewed: Sequence[PlanItem], fresh: Sequence[PlanItem]
) -> tuple[list[PlanItem], list[Refusal]]:
    """Executing a reviewed plan deletes only what it and a fresh plan both delete: a lab the caller did
    not see deleted is not deleted, nor one the world has since kept (extended, tagged, locked, gone).
    Returns the fresh items to delete (as they stand now) and, for every other deletion of either plan,
    why it is not made."""
    approved = {item.key for item in reviewed if item.decision == DELETE}
    now = {item.key: item for item in fresh}
    refused = [
        Refusal(
            item.subscription,
            item.name,
            NOT_REVIEWED,
            f"not a deletion in the reviewed plan {reviewed_id}",
            item.expiry,
        )
        for item in fresh
        if item.decision == DELETE and item.key not in approved
    ]
    for item in reviewed:
        again = now.get(item.key)
        if item.decision != DELETE or (again is not None and again.decision == DELETE):
            continue
        why = f"{again.decision}: {again.reason}" if again else "not listed, or no longer a lab"
        result = BLOCKED if again is not None and again.decision == BLOCKED else KEPT
        refused.append(Refusal(item.subscription, item.name, result, f"the fresh plan: {why}"))
    todo = [item for item in fresh if item.decision == DELETE and item.key in approved]
    return todo, refused
