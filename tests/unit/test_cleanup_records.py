"""Cleanup filters, plans and run records: parsing, public forms, and storage in one entity each."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.cleanup.planner import DELETE, KEEP, PlanItem
from shared.cleanup.records import (
    DELETED,
    FAILED,
    Filters,
    Outcome,
    Plan,
    RunRecord,
    RunStore,
    check_id,
    decode_continuation,
    encode_continuation,
    index_key,
    new_id,
)
from shared.errors import InvalidInput, NotFound
from tests.support.cleanup import MemoryTable

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)


def test_filters_from_the_api_body() -> None:
    body = {
        "subscriptions": ["s1"],
        "namePatterns": ["az204-*"],
        "labTag": "purpose=lab",
        "olderThanHours": 48,
        "maxDeletions": 3,
    }
    parsed = Filters.parse(body)
    assert parsed == Filters(("s1",), ("az204-*",), "purpose=lab", 48.0, 3)
    assert parsed.public() == {**body, "olderThanHours": 48.0}
    assert Filters.parse({"subscriptions": [], "namePatterns": [], "labTag": None}) == Filters()
    assert Filters.parse(None) == Filters()
    assert Filters.parse({"name_patterns": "lab-*"}).name_patterns == ("lab-*",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pattern": "x"}, "unknown filters: pattern"),
        ({"namePatterns": [""]}, "filters.namePatterns"),
        ({"namePatterns": [3]}, "filters.namePatterns"),
        ({"namePatterns": ["x" * 91]}, "longer than 90"),
        ({"labTag": "="}, "filters.labTag"),
        ({"olderThanHours": 0}, "filters.olderThanHours"),
        ({"olderThanHours": True}, "filters.olderThanHours"),
        ({"maxDeletions": -1}, "filters.maxDeletions"),
        ({"maxDeletions": 1.5}, "filters.maxDeletions"),
    ],
)
def test_bad_filters_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Filters.parse(body)


def test_ids() -> None:
    plan_id = new_id("plan", NOW)
    assert plan_id.startswith("plan-20261129T080000Z-")
    assert check_id("plan", plan_id) == plan_id
    with pytest.raises(InvalidInput):
        check_id("run", plan_id)
    with pytest.raises(InvalidInput):
        check_id("plan", "plan-x'; drop")


def make_plan(count: int = 2) -> Plan:
    items = [
        PlanItem(
            "s", f"lab-{n:05d}", KEEP if n % 2 else DELETE, f"reason {n}", NOW, "expiry-tag", notes=("n",)
        )
        for n in range(count)
    ]
    return Plan(
        new_id("plan", NOW), NOW, Filters(name_patterns=("lab-*",)), True, 10, ("s",), items, count, 1
    )


def test_plan_round_trip() -> None:
    plan = make_plan()
    again = Plan.from_public(plan.public())
    assert again.public() == plan.public()
    assert plan.counts() == {DELETE: 1, KEEP: 1}
    assert [i.name for i in plan.deletions] == ["lab-00000"]


def test_run_round_trip() -> None:
    plan = make_plan()
    run = RunRecord(new_id("run", NOW), "timer", False, NOW, plan, NOW, None)
    run.outcomes = [
        Outcome("s", "lab-00000", DELETED, "ok", NOW),
        Outcome("s", "x", FAILED, "no", None, True),
    ]
    again = RunRecord.from_public(run.public())
    assert again.public() == run.public()
    assert (run.deleted, run.failed, run.counts()) == (["lab-00000"], ["x"], {DELETED: 1, FAILED: 1})


class FakeTable(MemoryTable):
    """Table storage's limits on what RunStore writes: 1 MiB an entity, 64 KiB a binary property."""

    def create_table(self) -> None:
        pass

    def upsert_entity(self, entity: dict[str, Any], mode: str) -> None:
        size = sum(len(v) for k, v in entity.items() if k.startswith("Body"))
        assert size < 1024 * 1024, "an entity holds at most 1 MiB"
        assert all(len(v) <= 64 * 1024 for k, v in entity.items() if k.startswith("Body"))
        super().upsert_entity(entity, mode)


def test_store_keeps_a_plan_of_ten_thousand_labs_in_one_entity() -> None:
    table = FakeTable()
    store = RunStore(table)
    plan = make_plan(10_000)
    store.save_plan(plan)
    entity = table.rows["plan", plan.plan_id]
    assert entity["DryRun"] is True
    # Its index row: the summary alone, stored in the same transaction.
    [index] = [row for key, row in table.rows.items() if key[1].startswith("newest-")]
    assert index["Id"] == plan.plan_id
    assert not [name for name in index if name.startswith("Body")]
    assert len(store.get_plan(plan.plan_id).items) == 10_000


def test_store_misses() -> None:
    store = RunStore(FakeTable())
    with pytest.raises(NotFound):
        store.get_run(new_id("run", NOW))
    with pytest.raises(InvalidInput):
        store.get_run("nope")


def test_index_rows_put_the_newest_first_and_never_pass_for_a_record() -> None:
    tick = dt.timedelta(microseconds=1)
    first, second = index_key(new_id("run", NOW), NOW), index_key(new_id("run", NOW), NOW + tick)
    assert second < first  # within one second of the ids, to the microsecond
    decade = NOW + dt.timedelta(days=3650)
    assert index_key(new_id("plan", decade), decade) < first
    assert all(key.startswith("newest-") and key < "newest." for key in (first, second))
    with pytest.raises(InvalidInput):
        check_id("run", first)  # a record read never takes an index row's key


@pytest.mark.parametrize(
    "forged",
    [
        "not base64 !",
        "e30",  # {}
        "eyJQYXJ0aXRpb25LZXkiOiAxLCAiUm93S2V5IjogbnVsbH0",  # {"PartitionKey": 1, "RowKey": null}
        "eyJQYXJ0aXRpb25LZXkiOiAicnVuIn0",  # {"PartitionKey": "run"}: the SDK always gives both
        "x" * 2000,
    ],
)
def test_a_continuation_is_only_what_the_api_handed_out(forged: str) -> None:
    with pytest.raises(InvalidInput):
        decode_continuation(forged)


def test_a_continuation_round_trips() -> None:
    token = {"PartitionKey": "run", "RowKey": None}
    assert decode_continuation(encode_continuation(token)) == token
    assert encode_continuation(None) is None
