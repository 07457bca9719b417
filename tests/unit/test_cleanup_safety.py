"""Safety of lab cleanup, property-based: over random groups, tags, locks and rules with a fixed clock, the
planner never selects a group for deletion that a rule protects, and execute deletes a subset of the
plan's deletions, at most the cap. Expected decisions come from an oracle written from the generated
specs (what each tag means), not from the planner's parsers.

Reconciliation (a reviewed plan ∩ a fresh plan) is the planner's `reconcile`, proved on its own; execute's
whole selection (reconciliation, cap, re-check before delete) runs through `CleanupService` and its
`ArmInventory` with in-memory fakes of exactly the ARM calls it makes and a real `RunStore` over a
dict-backed table.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.cleanup import ArmInventory, CleanupService, RunStore
from shared.cleanup.planner import (
    BLOCKED,
    DECISIONS,
    DEFERRED,
    DELETE,
    FIRST_SEEN_TAG,
    KEPT,
    NOT_REVIEWED,
    PROTECTED,
    Group,
    Lock,
    PlanItem,
    Rules,
    iso,
    key_of,
    plan_labs,
    reconcile,
)
from shared.cleanup.records import DELETED, WOULD_DELETE
from shared.clock import FixedClock
from shared.config import Settings
from shared.publisher import Publisher
from tests.support.cleanup import MemoryTable

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
SUB = "00000000-0000-0000-0000-000000000000"
OTHER_SUB = "11111111-1111-1111-1111-111111111111"
APP_GROUP = "rg-dockmaster"
PROTECTED_GLOBS = ("rg-keep-*", "shared-infra")
NAME_PATTERN = "az204-*"
TTL = dt.timedelta(hours=72)
GRACE = dt.timedelta(hours=24)
CREATION_TAGS = ("createdAt", "creationTimestamp")
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# The generated world ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One group and what its tags mean, for the oracle."""

    name: str
    tags: dict[str, str]
    lab_marker: bool
    protection_tag: bool
    managed_by: str | None
    state: str
    locks: tuple[Lock, ...]
    expiry: dt.datetime | None  # the effective expiry; None: the tag that decides does not parse
    created: dt.datetime | None  # the age source (creation or first-seen tag); None: absent/invalid
    # A configured registry naming this group: (subscription, group) as its ARM id spells them.
    registry: tuple[str, str] | None = None

    @property
    def group(self) -> Group:
        return Group(SUB, self.name, self.tags, self.managed_by, self.state)


def cased(name: str) -> st.SearchStrategy[str]:
    """ARM tag names ignore case."""
    return st.sampled_from([name, name.lower(), name.upper()])


INVALID_TIME = st.sampled_from(
    ["someday", "", "  ", "2026-13-01", "29/11/2026", "next week", "72x", "-5h"]
) | (st.text(alphabet="abcxyz -", max_size=8))


@st.composite
def time_text(draw: st.DrawFn, around: dt.datetime) -> tuple[str, dt.datetime]:
    """A valid ISO 8601 time near `around` in one of the accepted spellings, and the instant it means."""
    moment = around + dt.timedelta(minutes=draw(st.integers(-300 * 60, 300 * 60)))
    form = draw(st.sampled_from(["z", "offset", "naive"]))
    if form == "z":
        return iso(moment), moment
    if form == "offset":
        return moment.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(), moment
    return moment.replace(tzinfo=None).isoformat(), moment


@st.composite
def expiry_tag(draw: st.DrawFn) -> tuple[str, dt.datetime | None]:
    kind = draw(st.sampled_from(["absolute", "relative", "invalid"]))
    if kind == "absolute":
        return draw(time_text(NOW))
    if kind == "relative":
        amount = draw(st.integers(0, 96))
        unit = draw(st.sampled_from(["m", "h", "d", "w", "H"]))
        hours = {"m": 1 / 60, "h": 1, "d": 24, "w": 168}[unit.lower()] * amount
        return f"{draw(st.sampled_from(['', '+']))}{amount}{unit}", NOW + dt.timedelta(hours=hours)
    return draw(INVALID_TIME), None


@st.composite
def since_tag(draw: st.DrawFn) -> tuple[str, dt.datetime | None]:
    if draw(st.booleans()):
        return draw(time_text(NOW - dt.timedelta(hours=48)))
    return draw(INVALID_TIME), None


STEMS = ["az204-lab", "AZ204-Lab", "az204-acr-rg", "rg-keep-lab", "rg-team", "lab-az204", "shared-infra"]


@st.composite
def specs(draw: st.DrawFn, index: int) -> Spec:
    stem = draw(st.sampled_from(STEMS))
    name = APP_GROUP.upper() if draw(st.integers(0, 30)) == 0 else f"{stem}-{index}"
    if stem == "shared-infra":
        name = stem if index == 0 else f"{stem}-{index}"
    tags: dict[str, str] = {"owner": "team1"}
    marker = draw(st.sampled_from(["none", "lab", "other"]))
    if marker != "none":
        tags[draw(cased("purpose"))] = "lab" if marker == "lab" else "prod"
    protection = draw(st.integers(0, 5)) == 0
    if protection:
        tags[draw(cased("do-not-delete"))] = draw(st.sampled_from(["yes", "", "false"]))

    expiry: dt.datetime | None = NOW + GRACE  # first sight
    created: dt.datetime | None = None
    decided = False
    if draw(st.booleans()):
        text, expiry = draw(expiry_tag())
        tags[draw(cased("expiresOn"))] = text
        decided = True
    age_decided = False
    for creation in CREATION_TAGS:
        if draw(st.integers(0, 3)) == 0:
            text, since = draw(since_tag())
            tags[draw(cased(creation))] = text
            if not age_decided:
                created, age_decided = since, True
            if not decided:
                expiry, decided = (since + TTL if since else None), True
    if draw(st.integers(0, 2)) == 0:
        text, since = draw(since_tag())
        tags[draw(cased(FIRST_SEEN_TAG))] = text
        if not age_decided:
            created, age_decided = since, True
        if not decided:
            expiry, decided = (since + GRACE if since else None), True
    registry = None
    if draw(st.integers(0, 3)) == 0:  # in any case, as ARM ignores it; sometimes in another subscription
        registry = (
            draw(st.sampled_from([SUB, SUB.upper(), OTHER_SUB])),
            draw(st.sampled_from([name, name.upper(), name.title()])),
        )
    return Spec(
        name=name,
        tags=tags,
        lab_marker=marker == "lab",
        protection_tag=protection,
        managed_by=draw(
            st.sampled_from([None, None, None, None, "/subscriptions/x/providers/Microsoft.Web/y"])
        ),
        state=draw(
            st.sampled_from(["Succeeded", "Succeeded", "Succeeded", "Deleting", "deleting", "Failed"])
        ),
        locks=tuple(
            draw(
                st.lists(
                    st.builds(
                        Lock,
                        st.sampled_from(["keep", "infra"]),
                        st.sampled_from(["CanNotDelete", "ReadOnly"]),
                    ),
                    max_size=2,
                )
            )
            if draw(st.integers(0, 3)) == 0
            else []
        ),
        expiry=expiry,
        created=created,
        registry=registry,
    )


@st.composite
def worlds(draw: st.DrawFn) -> list[Spec]:
    count = draw(st.integers(0, 25))
    return [draw(specs(index)) for index in range(count)]


@st.composite
def rule_sets(draw: st.DrawFn) -> Rules:
    older = draw(st.sampled_from([None, None, 0.0, 24.0, 100.0]))
    return Rules(
        lab_tag=("purpose", "lab"),
        name_patterns=draw(st.sampled_from([(), (NAME_PATTERN,)])),
        protected_groups=PROTECTED_GLOBS,
        app_group=APP_GROUP,
        warning=dt.timedelta(hours=draw(st.sampled_from([0, 12, 48]))),
        max_deletions=draw(st.integers(0, 6)),
        older_than=dt.timedelta(hours=older) if older is not None else None,
    )


# The oracle ---------------------------------------------------------------------------------------------


def with_registries(rules: Rules, world: Iterable[Spec]) -> Rules:
    """The rules with DOCKMASTER_REGISTRIES naming the world's registries (names unique, as the
    setting keys them by name)."""
    found = [spec.registry for spec in world if spec.registry is not None]
    return replace(rules, registry_groups=tuple((*ref, f"registry{n}") for n, ref in enumerate(found)))


def holds_a_registry(spec: Spec, rules: Rules) -> bool:
    """ARM ids name subscription and group in any case, and ARM ignores case in both."""
    return any(
        subscription.lower() == SUB and group.lower() == spec.name.lower()
        for subscription, group, _ in rules.registry_groups
    )


def is_lab(spec: Spec, rules: Rules) -> bool:
    by_name = bool(rules.name_patterns) and fnmatch.fnmatchcase(spec.name.lower(), NAME_PATTERN)
    return spec.lab_marker or by_name


def protections(
    spec: Spec, rules: Rules, locks: tuple[Lock, ...] | None, now: dt.datetime = NOW
) -> list[str]:
    """Every rule that forbids deleting this group now (empty: it may be deleted). `locks` None: unknown."""
    why = []
    if not is_lab(spec, rules):
        why.append("not a lab")
    if spec.state.lower() == "deleting":
        why.append("already deleting")
    if spec.name.lower() == APP_GROUP:
        why.append("the app's own group")
    if any(fnmatch.fnmatchcase(spec.name.lower(), glob) for glob in PROTECTED_GLOBS):
        why.append("protected list")
    if holds_a_registry(spec, rules):
        why.append("holds a configured registry")
    if spec.protection_tag:
        why.append("protection tag")
    if spec.managed_by:
        why.append("managedBy")
    if locks is None or locks:
        why.append("locked" if locks else "locks not checked")
    if spec.expiry is None:
        why.append("invalid expiry")
    elif spec.expiry > now:
        why.append("not expired")
    if rules.older_than is not None and (spec.created is None or now - spec.created < rules.older_than):
        why.append("younger than the filter")
    return why


def lock_map(world: list[Spec], checked: list[bool]) -> dict[tuple[str, str], list[Lock]]:
    return {spec.group.key: list(spec.locks) for spec, ok in zip(world, checked, strict=False) if ok}


# The planner --------------------------------------------------------------------------------------------


@PROPERTIES
@given(world=worlds(), rules=rule_sets(), checked=st.lists(st.booleans(), min_size=25, max_size=25))
def test_the_planner_deletes_only_what_no_rule_protects(
    world: list[Spec], rules: Rules, checked: list[bool]
) -> None:
    world = list({spec.name.lower(): spec for spec in reversed(world)}.values())  # ARM names are unique
    rules = with_registries(rules, world)
    locks = lock_map(world, checked)
    items = plan_labs([spec.group for spec in world], rules, NOW, locks)
    by_key = {item.key: item for item in items}

    deletable = set()
    for spec in world:
        key = spec.group.key
        known = tuple(locks[key]) if key in locks else None
        why = protections(spec, rules, known)
        item = by_key.get(key)
        if not is_lab(spec, rules):
            assert item is None, f"{spec.name} is not a lab but is in the plan: {item}"
            continue
        assert item is not None, f"{spec.name} is a lab but not in the plan"
        if holds_a_registry(spec, rules) and spec.state.lower() != "deleting":
            assert item.decision == PROTECTED, f"{spec.name} holds a configured registry: {item}"
        if why:
            assert item.decision not in (DELETE, DEFERRED), f"{spec.name} protected by {why}: {item}"
        else:
            deletable.add(key)
    doomed = {item.key for item in items if item.decision == DELETE}
    deferred = {item.key for item in items if item.decision == DEFERRED}
    assert doomed | deferred == deletable  # nothing protected is chosen, nothing deletable is missed
    assert len(doomed) == min(rules.max_deletions, len(deletable))
    if doomed and deferred:  # the cap keeps the oldest expiries
        assert max(by_key[k].expiry or NOW for k in doomed) <= min(by_key[k].expiry or NOW for k in deferred)


# Reconciliation: the reviewed plan against a fresh one ----------------------------------------------------


@st.composite
def plan_items(draw: st.DrawFn) -> list[PlanItem]:
    """A plan's items: unique labs (names in any case, as ARM lists them), each with some decision."""
    names = draw(st.lists(st.sampled_from(STEMS).flatmap(cased), max_size=8))
    unique = {name.lower(): name for name in names}.values()
    return [PlanItem(SUB, name, draw(st.sampled_from(DECISIONS)), "why") for name in unique]


@PROPERTIES
@given(reviewed=plan_items(), fresh=plan_items())
def test_reconciliation_deletes_only_what_both_plans_delete(
    reviewed: list[PlanItem], fresh: list[PlanItem]
) -> None:
    todo, refused = reconcile("plan-x", reviewed, fresh)
    approved = {item.key for item in reviewed if item.decision == DELETE}
    now = {item.key: item for item in fresh}
    assert {item.key for item in todo} == approved & {k for k, item in now.items() if item.decision == DELETE}
    assert all(now[item.key] is item for item in todo), "deleted as the fresh plan has it now"
    refusals = {key_of(r.subscription, r.name): r for r in refused}
    assert len(refusals) == len(refused), "one refusal a lab"
    assert not refusals.keys() & {item.key for item in todo}
    for key, refusal in refusals.items():
        again = now.get(key)
        if refusal.result == NOT_REVIEWED:
            assert again is not None
            assert again.decision == DELETE
            assert key not in approved
        else:
            assert key in approved
            assert again is None or again.decision != DELETE
            assert (refusal.result == BLOCKED) == (again is not None and again.decision == BLOCKED)
            assert refusal.result in (BLOCKED, KEPT)
    every = approved | {k for k, item in now.items() if item.decision == DELETE}
    assert every == refusals.keys() | {item.key for item in todo}, "every deletion of either plan accounted"


# Execute, through the service with fakes of the ARM calls it makes ---------------------------------------


@dataclass
class FakeArm:
    """resource_groups.list/get/update/begin_delete, management_locks.list_at_resource_group_level and
    resources.list_by_resource_group."""

    groups: dict[str, Group]
    locks: dict[str, list[Lock]]
    deleted: list[str] = field(default_factory=list)
    page_size: int = 7

    def __post_init__(self) -> None:
        self.resource_groups = self
        self.management_locks = self
        self.resources = SimpleNamespace(list_by_resource_group=self.list_by_resource_group)

    def list_by_resource_group(self, name: str) -> Iterator[Any]:
        self._group(name)
        return iter([])  # what a lab holds never decides whether it is deleted

    def _found(self, group: Group) -> Any:
        properties = SimpleNamespace(provisioning_state=group.state)
        return SimpleNamespace(
            name=group.name, tags=dict(group.tags), managed_by=group.managed_by, properties=properties
        )

    def _group(self, name: str) -> Group:
        try:
            return self.groups[name.lower()]
        except KeyError:
            raise ResourceNotFoundError(f"{name} not found") from None

    def list(self, filter: str | None = None) -> Any:
        found = [self._found(g) for g in self.groups.values()]
        pages = [found[i : i + self.page_size] for i in range(0, len(found), self.page_size)]
        return SimpleNamespace(by_page=lambda: iter(pages))

    def get(self, name: str) -> Any:
        return self._found(self._group(name))

    def update(self, name: str, body: Mapping[str, Any]) -> Any:
        group = self._group(name)
        self.groups[name.lower()] = Group(
            group.subscription, group.name, dict(body["tags"]), group.managed_by, group.state
        )
        return self.get(name)

    def begin_delete(self, name: str, polling: bool = True) -> None:
        assert polling is False
        group = self._group(name)
        assert not self.locks.get(name.lower()), f"ARM would refuse: {name} is locked"
        self.deleted.append(group.name.lower())
        self.groups[name.lower()] = Group(
            group.subscription, group.name, group.tags, group.managed_by, "Deleting"
        )

    def list_at_resource_group_level(self, name: str) -> Iterator[Any]:
        group = self._group(name)
        return iter([self._lock(group.name, lock) for lock in self.locks.get(name.lower(), [])])

    def list_at_subscription_level(self) -> Any:
        # Every lock the world holds, also on a group it does not list (the lock then keeps nothing).
        found = [self._lock(name, lock) for name, held in self.locks.items() for lock in held]
        pages = [found[i : i + self.page_size] for i in range(0, len(found), self.page_size)]
        return SimpleNamespace(by_page=lambda: iter(pages))

    @staticmethod
    def _lock(group: str, lock: Lock) -> Any:
        scope = f"/subscriptions/{SUB}/resourceGroups/{group}"
        return SimpleNamespace(
            id=f"{scope}/providers/Microsoft.Authorization/locks/{lock.name}",
            name=lock.name,
            level=lock.level,
        )


def service(arm: FakeArm, rules: Rules, dry_run: bool, cap: int) -> tuple[CleanupService, FixedClock]:
    values = {
        "AZURE_SUBSCRIPTION_ID": SUB,
        "CLEANUP_ENABLED": True,
        "CLEANUP_DRY_RUN": dry_run,
        "CLEANUP_LAB_TAG": "purpose=lab",
        "CLEANUP_NAME_PATTERNS": ",".join(rules.name_patterns),
        "CLEANUP_PROTECTED_GROUPS": ",".join(PROTECTED_GLOBS),
        "DOCKMASTER_APP_RESOURCE_GROUP": APP_GROUP,
        "DOCKMASTER_REGISTRIES": ",".join(
            f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.ContainerRegistry/registries/{name}"
            for sub, group, name in rules.registry_groups
        ),
        "CLEANUP_MAX_DELETIONS": cap,
        "CLEANUP_WARNING_HOURS": rules.warning.total_seconds() / 3600,
    }
    clock = FixedClock(NOW)
    svc = CleanupService(
        Settings.model_validate(values),
        ArmInventory(lambda _: arm, lambda _: arm, concurrency=1),
        RunStore(MemoryTable()),
        Publisher(None),
        clock,
        concurrency=1,
    )
    return svc, clock


Change = tuple[int, str]
CHANGES = st.lists(
    st.tuples(st.integers(0, 24), st.sampled_from(["lock", "protect", "extend", "drop", "unlock"])),
    max_size=6,
)


def apply(arm: FakeArm, names: list[str], changes: list[Change]) -> set[str]:
    """Someone acts between the reviewed plan and execute; returns the groups whose expiry was extended."""
    extended = set()
    for index, change in changes:
        if not names:
            break
        name = names[index % len(names)].lower()
        group = arm.groups.get(name)
        if group is None:
            continue
        if change == "lock":
            arm.locks[name] = [Lock("late", "CanNotDelete")]
        elif change == "unlock":
            arm.locks.pop(name, None)
        elif change == "drop":
            del arm.groups[name]
        else:
            tags = dict(group.tags)
            if change == "protect":
                tags["do-not-delete"] = "please"
            else:
                tags = {k: v for k, v in tags.items() if k.lower() not in ("expireson",)}
                tags["expiresOn"] = iso(NOW + dt.timedelta(hours=30))
                extended.add(name)
            arm.groups[name] = Group(group.subscription, group.name, tags, group.managed_by, group.state)
    return extended


@PROPERTIES
@given(
    world=worlds(),
    rules=rule_sets(),
    cap=st.integers(0, 6),
    dry_run=st.booleans(),
    reviewed=st.booleans(),
    changes=CHANGES,
)
def test_execute_deletes_a_subset_of_the_plan_at_most_the_cap(
    world: list[Spec], rules: Rules, cap: int, dry_run: bool, reviewed: bool, changes: list[Change]
) -> None:
    rules = replace(rules, older_than=None)  # a caller's filter, not a setting
    specs_by_name = {spec.name.lower(): spec for spec in reversed(world)}  # ARM names are unique
    rules = with_registries(rules, specs_by_name.values())
    groups = {name: spec.group for name, spec in specs_by_name.items()}
    locks = {spec.name.lower(): list(spec.locks) for spec in world if spec.locks}
    arm = FakeArm(groups, locks)
    svc, clock = service(arm, rules, dry_run, cap)

    plan_id = None
    approved: set[str] | None = None
    extended: set[str] = set()
    if reviewed:
        plan = svc.plan()
        plan_id, approved = plan.plan_id, {item.name.lower() for item in plan.deletions}
        assert len(approved) <= cap
        clock.advance(minutes=5)
        extended = apply(arm, list(groups), changes)
    before = {name: arm.groups[name] for name in arm.groups}
    locks_before = {name: list(held) for name, held in arm.locks.items()}
    run = svc.execute(plan_id, confirm=True)

    chosen = {o.name.lower() for o in run.outcomes if o.result in (DELETED, WOULD_DELETE)}
    fresh = {item.name.lower() for item in run.plan.deletions}
    assert chosen <= fresh
    if approved is not None:
        assert chosen <= approved
    assert len(chosen) <= cap
    assert set(arm.deleted) == (set() if dry_run else chosen)
    assert len(arm.deleted) == len(set(arm.deleted))
    for name in chosen:  # as the group stood when execute began, no rule protected it
        spec, found = specs_by_name[name], before[name]
        now_spec = Spec(
            name=spec.name,
            tags=dict(found.tags),
            lab_marker=spec.lab_marker,
            protection_tag=found.tag("do-not-delete") is not None,
            managed_by=spec.managed_by,
            state=found.state,
            locks=tuple(locks_before.get(name, [])),
            expiry=NOW + dt.timedelta(hours=30) if name in extended else spec.expiry,
            created=spec.created,
            registry=spec.registry,
        )
        why = protections(now_spec, rules, now_spec.locks, clock.now())
        assert not why, f"{name} deleted though {why}"


# Extend, through the service with the same fakes -----------------------------------------------------------


@PROPERTIES
@given(
    world=worlds(),
    rules=rule_sets(),
    hours=st.floats(min_value=1e-6, max_value=168, allow_nan=False),
    micros=st.integers(0, 999_999),
)
def test_extend_never_makes_a_group_deletable_or_its_expiry_earlier(
    world: list[Spec], rules: Rules, hours: float, micros: int
) -> None:
    """Issue 14 (10): whatever the group, an extension either is refused and writes nothing, or moves the
    expiry strictly later and leaves the group not deletable now (a lab whose expiry does not parse, and a
    protected or managed one, are refused: cleanup never deletes them, an expiry would make it)."""
    from shared.cleanup.planner import INVALID_EXPIRY, MANAGED, decide, expiry_of
    from shared.errors import DockmasterError

    specs_by_name = {spec.name.lower(): spec for spec in reversed(world)}
    rules = with_registries(replace(rules, older_than=None), specs_by_name.values())
    arm = FakeArm({name: spec.group for name, spec in specs_by_name.items()}, {})
    svc, clock = service(arm, rules, dry_run=False, cap=10)
    clock.current = NOW + dt.timedelta(microseconds=micros)  # sub-second clocks: no rounding down
    effective = svc.rules()
    for name, spec in specs_by_name.items():
        before = arm.groups[name]
        if not effective.is_lab(before):
            continue
        was = decide(before, effective, clock.now(), ())
        try:
            svc.extend(spec.name, hours)
        except DockmasterError:
            assert arm.groups[name] == before, "a refused extension wrote nothing"
            continue
        assert was.decision not in (PROTECTED, MANAGED, INVALID_EXPIRY), f"{name} extended though {was}"
        after = arm.groups[name]
        old = expiry_of(before, effective, clock.now()).at
        new = expiry_of(after, effective, clock.now()).at
        assert old is not None
        assert new is not None
        assert new > old
        assert new > clock.now()
        assert decide(after, effective, clock.now(), ()).decision != DELETE
