"""The cleanup planner, pure: groups, locks, rules and a fixed clock in; decisions with reasons out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.cleanup.planner import (
    BLOCKED,
    DEFERRED,
    DELETE,
    DELETING,
    FIRST_SEEN_TAG,
    INVALID_EXPIRY,
    KEEP,
    MANAGED,
    PROTECTED,
    WARN,
    WARNED_TAG,
    Group,
    Lock,
    Rules,
    age_of,
    decide,
    expiry_of,
    iso,
    key_of,
    needs_locks,
    parse_lab_tag,
    parse_relative,
    parse_time,
    plan_labs,
)
from shared.clock import FixedClock

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
SUB = "00000000-0000-0000-0000-000000000000"
CLOCK = FixedClock(NOW)
LAB = {"purpose": "lab"}


def rules(**overrides: Any) -> Rules:
    base: dict[str, Any] = {"lab_tag": ("purpose", "lab"), "app_group": "rg-dockmaster"}
    return Rules(**{**base, **overrides})


def group(name: str, tags: dict[str, str] | None = None, **more: Any) -> Group:
    return Group(SUB, name, LAB if tags is None else tags, **more)


def at(**delta: float) -> str:
    return iso(NOW + dt.timedelta(**delta))


def one(g: Group, r: Rules | None = None, locks: list[Lock] | None = None) -> Any:
    return decide(g, r or rules(), CLOCK.now(), [] if locks is None else locks)


# Parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T10:00:00Z", dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)),
        ("2026-11-30T12:00:00+02:00", dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)),
        ("2026-11-30T10:00:00", dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)),
        ("2026-11-30", dt.datetime(2026, 11, 30, tzinfo=dt.UTC)),
        (" 2026-11-30T10:00:00.123456Z ", dt.datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.UTC)),
        ("tomorrow", None),
        ("", None),
        ("72h", None),
    ],
)
def test_parse_time(text: str, expected: dt.datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("72h", dt.timedelta(hours=72)),
        ("3d", dt.timedelta(days=3)),
        ("90m", dt.timedelta(minutes=90)),
        ("2w", dt.timedelta(weeks=2)),
        ("+1.5D", dt.timedelta(hours=36)),
        (" 12 h ", dt.timedelta(hours=12)),
        ("3 days", None),
        ("-3d", None),
        ("3y", None),
        ("h", None),
        ("３d", None),  # a fullwidth digit: float() would take it, Dockmaster does not guess
        ("3\u0570", None),  # Armenian ho, a look-alike of h
    ],
)
def test_parse_relative(text: str, expected: dt.timedelta | None) -> None:
    assert parse_relative(text) == expected


def test_parse_lab_tag() -> None:
    assert parse_lab_tag("purpose=lab") == ("purpose", "lab")
    assert parse_lab_tag(" purpose ") == ("purpose", None)
    assert parse_lab_tag("env=") == ("env", "")
    assert parse_lab_tag("") is None
    with pytest.raises(ValueError, match="not a tag"):
        parse_lab_tag("=lab")


def test_iso_is_utc_whole_seconds_with_z() -> None:
    moment = dt.datetime(2026, 11, 29, 10, 0, 0, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert iso(moment) == "2026-11-29T08:00:00Z"


# Which groups are labs ---------------------------------------------------------------------------------


def test_rules_need_a_lab_marker() -> None:
    with pytest.raises(ValueError, match="every group would be a lab"):
        Rules(lab_tag=None)


def test_selection_by_tag_only_uses_the_server_filter() -> None:
    r = rules()
    assert r.server_filter == "tagName eq 'purpose' and tagValue eq 'lab'"
    assert r.is_lab(group("a", {"Purpose": "lab"})), "tag names ignore case"
    assert not r.is_lab(group("b", {"purpose": "Lab"})), "tag values do not"
    assert not r.is_lab(group("c", {}))
    assert rules(lab_tag=("team's", None)).server_filter == "tagName eq 'team''s'"


def test_selection_by_pattern_lists_everything() -> None:
    r = rules(lab_tag=None, name_patterns=("az204-*", "lab-??"))
    assert r.server_filter is None
    assert r.is_lab(group("AZ204-acr-rg", {}))
    assert r.is_lab(group("lab-01", {}))
    assert not r.is_lab(group("lab-001", {}))
    assert not r.is_lab(group("prod-az204-x", {}))


def test_tag_or_pattern_makes_a_lab() -> None:
    r = rules(name_patterns=("az204-*",))
    assert r.server_filter is None, "a pattern needs every group listed"
    assert r.is_lab(group("az204-x", {}))
    assert r.is_lab(group("other", LAB))
    assert not r.is_lab(group("other", {}))


def test_filters_only_narrow() -> None:
    r = rules(only_patterns=("team-a-*",), only_tag=("owner", None))
    assert r.is_lab(group("team-a-1", {**LAB, "owner": "x"}))
    assert not r.is_lab(group("team-a-1", LAB)), "the filter's tag is missing"
    assert not r.is_lab(group("team-b-1", {**LAB, "owner": "x"}))
    assert not r.is_lab(group("team-a-1", {"owner": "x"})), "a filter never makes a lab"


# Never deleted -----------------------------------------------------------------------------------------

EXPIRED = {**LAB, "expiresOn": at(hours=-1)}


@pytest.mark.parametrize(
    ("g", "decision", "reason"),
    [
        (group("x", EXPIRED, state="Deleting"), DELETING, "provisioningState Deleting"),
        (group("rg-dockmaster", EXPIRED), PROTECTED, "DOCKMASTER_APP_RESOURCE_GROUP"),
        (group("RG-DOCKMASTER", EXPIRED), PROTECTED, "the app's own"),
        (group("keep-me", EXPIRED), PROTECTED, "CLEANUP_PROTECTED_GROUPS"),
        (group("shared-7", EXPIRED), PROTECTED, "CLEANUP_PROTECTED_GROUPS"),
        (group("x", {**EXPIRED, "DO-NOT-DELETE": ""}), PROTECTED, "protection tag 'DO-NOT-DELETE='"),
        (group("x", {**EXPIRED, "do-not-delete": "yes"}), PROTECTED, "protection tag"),
        (group("x", EXPIRED, managed_by="/subscriptions/s/x"), MANAGED, "managed by /subscriptions/s/x"),
    ],
)
def test_never_deleted(g: Group, decision: str, reason: str) -> None:
    item = one(g, rules(protected_groups=("keep-me", "shared-*")))
    assert item.decision == decision
    assert reason in item.reason
    assert not item.tag_writes, "nothing is stamped on a group cleanup does not own"


REGISTRY = (SUB.upper(), "AZ204-ACR-RG", "dockmasterlab")  # as DOCKMASTER_REGISTRIES spells it


def test_the_group_of_a_configured_registry_is_protected() -> None:
    # The sample settings: the verified registry sits in az204-acr-rg, which the lab pattern az204-* matches.
    r = rules(lab_tag=None, name_patterns=("az204-*",), registry_groups=(REGISTRY,))
    held = Group(SUB, "az204-acr-rg", {"expiresOn": at(hours=-1)})
    item = decide(held, r, NOW, [])
    assert (item.decision, item.reason) == (
        PROTECTED,
        "holds the configured registry dockmasterlab (DOCKMASTER_REGISTRIES)",
    )
    assert not item.tag_writes
    first_sight = decide(Group(SUB, "az204-acr-rg", {}), r, NOW, [])
    assert (first_sight.decision, first_sight.tag_writes) == (PROTECTED, {}), "nothing stamped either"
    assert not needs_locks(held, r, NOW)
    # The same name in another subscription holds no configured registry: an ordinary lab.
    elsewhere = Group("11111111-1111-1111-1111-111111111111", "az204-acr-rg", {"expiresOn": at(hours=-1)})
    assert decide(elsewhere, r, NOW, []).decision == DELETE
    two = rules(registry_groups=(REGISTRY, (SUB, "az204-acr-rg", "second")))
    assert decide(group("az204-acr-rg", EXPIRED), two, NOW, []).reason == (
        "holds the configured registries dockmasterlab, second (DOCKMASTER_REGISTRIES)"
    )


def test_a_plan_never_deletes_a_registry_group() -> None:
    groups = [Group(SUB, "az204-acr-rg", {"expiresOn": at(hours=-1)}), Group(SUB, "az204-lab", {})]
    r = rules(lab_tag=None, name_patterns=("az204-*",), registry_groups=(REGISTRY,))
    items = plan_labs(groups, r, NOW, {g.key: [] for g in groups})
    assert [(i.name, i.decision) for i in items] == [("az204-acr-rg", PROTECTED), ("az204-lab", KEEP)]


@pytest.mark.parametrize("level", ["CanNotDelete", "ReadOnly"])
def test_any_lock_blocks(level: str) -> None:
    item = one(group("x", EXPIRED), locks=[Lock("keep", level)])
    assert item.decision == BLOCKED
    assert f"locked: keep ({level})" in item.reason
    assert item.expiry == NOW - dt.timedelta(hours=1)


def test_unchecked_locks_never_delete() -> None:
    item = decide(group("x", EXPIRED), rules(), NOW, None)
    assert (item.decision, item.reason.split(";")[0]) == (BLOCKED, "locks not checked")
    assert needs_locks(group("x", EXPIRED), rules(), NOW)
    assert not needs_locks(group("x", {**LAB, "expiresOn": at(days=3)}), rules(), NOW)
    assert not needs_locks(group("x", {**EXPIRED, "do-not-delete": "1"}), rules(), NOW)


@pytest.mark.parametrize("value", ["soon", "2026-13-01", "", "3 days", "-1h"])
def test_an_expiry_that_does_not_parse_is_reported(value: str) -> None:
    item = one(group("x", {**LAB, "expiresOn": value}))
    assert item.decision == INVALID_EXPIRY
    assert f"expiresOn='{value}'" in item.reason
    assert item.expiry is None


def test_a_creation_or_first_seen_tag_that_does_not_parse_is_invalid_too() -> None:
    assert one(group("x", {**LAB, "createdAt": "yesterday"})).decision == INVALID_EXPIRY
    assert one(group("x", {**LAB, FIRST_SEEN_TAG: "?"})).decision == INVALID_EXPIRY


# When a lab expires ------------------------------------------------------------------------------------


def test_expiry_tag_absolute() -> None:
    expiry = expiry_of(group("x", {**LAB, "ExpiresOn": "2026-12-01T00:00:00Z"}), rules(), NOW)
    assert (expiry.at, expiry.source, expiry.writes) == (
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        "expiry-tag",
        {},
    )


@pytest.mark.parametrize(
    ("value", "delta"),
    [("72h", dt.timedelta(hours=72)), ("3d", dt.timedelta(days=3)), ("90m", dt.timedelta(minutes=90))],
)
def test_relative_expiry_is_normalized_on_first_sight(value: str, delta: dt.timedelta) -> None:
    item = one(group("x", {**LAB, "expiresOn": value, "owner": "me"}))
    assert item.expiry == NOW + delta
    assert item.expiry_source == "relative"
    assert item.tag_writes == {"expiresOn": iso(NOW + delta)}, "only the expiry tag is written"
    assert item.expected_tags == {"expiresOn": value}, "and only if it still says what was read"
    assert f"normalized to {iso(NOW + delta)}" in item.reason


def test_relative_expiry_keeps_the_tag_spelling() -> None:
    item = one(group("x", {**LAB, "EXPIRESON": "1d"}))
    assert item.tag_writes == {"EXPIRESON": iso(NOW + dt.timedelta(days=1))}


def test_a_configured_expiry_tag() -> None:
    item = one(
        group("x", {**LAB, "DeleteAfter": at(hours=-2), "expiresOn": "x"}), rules(expiry_tag="deleteafter")
    )
    assert (item.decision, item.expiry_source) == (DELETE, "expiry-tag")


def test_creation_tag_plus_ttl() -> None:
    created = at(hours=-73)
    item = one(group("x", {**LAB, "creationTimestamp": created}))
    assert item.decision == DELETE
    assert item.expiry == NOW - dt.timedelta(hours=1)
    assert f"creationTimestamp={created} plus TTL 72h" in item.reason
    young = one(group("x", {**LAB, "createdAt": at(hours=-1)}))
    assert (young.decision, young.expiry) == (KEEP, NOW + dt.timedelta(hours=71))


def test_the_expiry_tag_wins_over_the_creation_tag() -> None:
    item = one(group("x", {**LAB, "createdAt": at(days=-30), "expiresOn": at(days=2)}))
    assert (item.decision, item.expiry_source) == (KEEP, "expiry-tag")


def test_first_sight_is_stamped_with_the_grace_period() -> None:
    item = one(group("x", LAB), rules(grace=dt.timedelta(hours=24)))
    assert (item.decision, item.expiry, item.expiry_source) == (
        KEEP,
        NOW + dt.timedelta(hours=24),
        "first-sight",
    )
    assert item.tag_writes == {FIRST_SEEN_TAG: iso(NOW)}
    assert item.expected_tags == {FIRST_SEEN_TAG: None}


def test_first_seen_tag_survives_restarts() -> None:
    seen = group("x", {**LAB, FIRST_SEEN_TAG: at(hours=-25)})
    item = one(seen, rules(grace=dt.timedelta(hours=24)))
    assert (item.decision, item.expiry_source, item.tag_writes) == (DELETE, "first-seen", {})
    assert item.expiry == NOW - dt.timedelta(hours=1)


def test_not_expired_is_kept_with_its_expiry() -> None:
    item = one(group("x", {**LAB, "expiresOn": at(days=2)}))
    assert item.decision == KEEP
    assert item.reason.startswith(f"expires {at(days=2)}")
    assert item.public()["expiry"] == at(days=2)


def test_expired_is_deleted() -> None:
    item = one(group("x", EXPIRED))
    assert (item.decision, item.reason) == (DELETE, f"expired {at(hours=-1)} (tag expiresOn={at(hours=-1)})")


def test_expiry_exactly_now_is_expired() -> None:
    assert one(group("x", {**LAB, "expiresOn": iso(NOW)})).decision == DELETE
    assert one(group("x", {**LAB, "expiresOn": "0h"})).decision == DELETE


# Warning window ---------------------------------------------------------------------------------------


def test_warning_window() -> None:
    r = rules(warning=dt.timedelta(hours=12))
    inside = one(group("x", {**LAB, "expiresOn": at(hours=11)}), r)
    assert (inside.decision, inside.warn) == (WARN, True)
    assert "warning due" in inside.reason
    edge = one(group("x", {**LAB, "expiresOn": at(hours=12)}), r)
    assert edge.decision == WARN
    outside = one(group("x", {**LAB, "expiresOn": at(hours=12, seconds=1)}), r)
    assert (outside.decision, outside.warn) == (KEEP, False)


def test_warned_once_per_expiry() -> None:
    expiry = at(hours=3)
    warned = one(group("x", {**LAB, "expiresOn": expiry, WARNED_TAG: expiry}))
    assert (warned.decision, warned.warn) == (WARN, False)
    assert "warned before" in warned.reason
    extended = one(group("x", {**LAB, "expiresOn": at(hours=5), WARNED_TAG: expiry}))
    assert (extended.decision, extended.warn) == (WARN, True), "a new expiry is warned again"


def test_a_locked_lab_is_not_warned() -> None:
    item = one(group("x", {**LAB, "expiresOn": at(hours=3)}), locks=[Lock("l", "CanNotDelete")])
    assert (item.decision, item.warn) == (BLOCKED, False)


def test_no_warning_window() -> None:
    r = rules(warning=dt.timedelta(0))
    assert one(group("x", {**LAB, "expiresOn": at(minutes=1)}), r).decision == KEEP
    assert one(group("x", {**LAB, "expiresOn": at(minutes=-1)}), r).decision == DELETE


# Filters: age -----------------------------------------------------------------------------------------


def test_older_than_filter_keeps_young_or_unknown_ages() -> None:
    r = rules(older_than=dt.timedelta(hours=48))
    old = group("x", {**LAB, "createdAt": at(hours=-100)})
    assert one(old, r).decision == DELETE
    young = group("x", {**LAB, "createdAt": at(hours=-30), "expiresOn": at(hours=-1)})
    item = one(young, r)
    assert (item.decision, "age 30h is under the filter's 48h" in item.reason) == (KEEP, True)
    unknown = one(group("x", EXPIRED), r)
    assert (unknown.decision, "age unknown" in unknown.reason) == (KEEP, True)
    assert age_of(group("x", {**LAB, FIRST_SEEN_TAG: at(hours=-5)}), r, NOW) == dt.timedelta(hours=5)


# The whole plan: selection, cap --------------------------------------------------------------------------


def test_plan_lists_labs_only_sorted_with_a_decision_each() -> None:
    groups = [
        group("b-expired", EXPIRED),
        group("not-a-lab", {"expiresOn": at(hours=-1)}),
        group("a-kept", {**LAB, "expiresOn": at(days=5)}),
        group("c-locked", EXPIRED),
    ]
    locks = {key_of(SUB, "b-expired"): [], key_of(SUB, "c-locked"): [Lock("l", "ReadOnly")]}
    items = plan_labs(groups, rules(), NOW, locks)
    assert [(i.name, i.decision) for i in items] == [
        ("a-kept", KEEP),
        ("b-expired", DELETE),
        ("c-locked", BLOCKED),
    ]


def test_cap_deletes_the_oldest_first_and_defers_the_rest() -> None:
    groups = [group(f"lab-{n}", {**LAB, "expiresOn": at(hours=-n)}) for n in range(1, 6)]
    locks: dict[Any, list[Lock]] = {g.key: [] for g in groups}
    items = plan_labs(groups, rules(max_deletions=2), NOW, locks)
    decided = {i.name: i.decision for i in items}
    assert decided == {
        "lab-5": DELETE,
        "lab-4": DELETE,
        "lab-3": DEFERRED,
        "lab-2": DEFERRED,
        "lab-1": DEFERRED,
    }
    deferred = next(i for i in items if i.name == "lab-1")
    assert "over the per-run cap of 2 deletions" in deferred.reason


def test_cap_zero_deletes_nothing() -> None:
    groups = [group("x", EXPIRED)]
    assert [i.decision for i in plan_labs(groups, rules(max_deletions=0), NOW, {groups[0].key: []})] == [
        DEFERRED
    ]


def test_pattern_and_tag_selection_in_a_plan() -> None:
    groups = [
        group("az204-acr-rg", {"expiresOn": at(hours=-1)}),
        group("az204-keep", {"expiresOn": at(hours=-1), "do-not-delete": "x"}),
        group("tagged", EXPIRED),
        group("other", {}),
    ]
    locks: dict[Any, list[Lock]] = {g.key: [] for g in groups}
    by_pattern = plan_labs(groups, rules(lab_tag=None, name_patterns=("az204-*",)), NOW, locks)
    assert [(i.name, i.decision) for i in by_pattern] == [("az204-acr-rg", DELETE), ("az204-keep", PROTECTED)]
    by_tag = plan_labs(groups, rules(), NOW, locks)
    assert [(i.name, i.decision) for i in by_tag] == [("tagged", DELETE)]
    both = plan_labs(groups, rules(name_patterns=("az204-*",)), NOW, locks)
    assert [i.name for i in both] == ["az204-acr-rg", "az204-keep", "tagged"]


def test_subscriptions_are_told_apart() -> None:
    a, b = Group("sub-a", "lab", EXPIRED), Group("sub-b", "lab", {**LAB, "expiresOn": at(days=1)})
    items = plan_labs([a, b], rules(), NOW, {a.key: []})
    assert [(i.subscription, i.decision) for i in items] == [("sub-a", DELETE), ("sub-b", KEEP)]


def test_public_form() -> None:
    item = one(group("x", EXPIRED)).noted("something happened")
    assert item.public() == {
        "subscription": SUB,
        "name": "x",
        "decision": DELETE,
        "reason": f"expired {at(hours=-1)} (tag expiresOn={at(hours=-1)})",
        "expiry": at(hours=-1),
        "expirySource": "expiry-tag",
        "notes": ["something happened"],
    }
