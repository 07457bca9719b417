"""The verdict store's requests: a verdict this process stored or found is read, not inserted again."""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.verdicts import StoredKeys, Verdict, VerdictStore


class Entity(dict[str, Any]):
    metadata: dict[str, Any]


class Table:
    """Table storage in memory, recording each call by name."""

    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    def create_table(self) -> None:
        self.calls.append("create_table")

    def create_entity(self, entity: dict[str, Any], **options: Any) -> dict[str, Any]:
        self.calls.append("create_entity")
        assert options == {"response_preference": "return-no-content"}
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.entities:
            raise ResourceExistsError("EntityAlreadyExists")
        self.entities[key] = dict(entity)
        return {"etag": "e1"}

    def get_entity(self, partition: str, row: str) -> Entity:
        self.calls.append("get_entity")
        if (partition, row) not in self.entities:
            raise ResourceNotFoundError("ResourceNotFound")
        entity = Entity(self.entities[(partition, row)])
        entity.metadata = {"etag": "e1"}
        return entity


def a_verdict(digest: str = "sha256:" + "1" * 64) -> Verdict:
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    return Verdict("reg", "repo", digest, "p1", "v1", created_at=now, updated_at=now)


def test_a_verdict_stored_here_is_read_on_the_next_delivery_without_an_insert() -> None:
    table = Table()
    store = VerdictStore(table)
    assert store.insert(a_verdict()) is None
    found = store.insert(a_verdict())
    assert found is not None
    assert found.digest == a_verdict().digest
    assert table.calls == ["create_table", "create_entity", "get_entity"]


def test_a_verdict_another_process_stored_costs_the_insert_once() -> None:
    table = Table()
    table.entities[a_verdict().key] = a_verdict().to_entity()
    store = VerdictStore(table)
    for _ in range(3):
        assert store.insert(a_verdict()) is not None
    assert table.calls == ["create_table", "create_entity", "get_entity", "get_entity", "get_entity"]


def test_a_remembered_verdict_deleted_meanwhile_is_inserted_again() -> None:
    table = Table()
    store = VerdictStore(table)
    store.insert(a_verdict())
    table.entities.clear()
    assert store.insert(a_verdict()) is None
    assert table.calls[1:] == ["create_entity", "get_entity", "create_entity"]
    assert a_verdict().key in table.entities


def test_the_remembered_keys_are_bounded_oldest_first() -> None:
    keys = StoredKeys(limit=3)
    for index in range(5):
        keys.add(("p", str(index)))
    keys.add(("p", "2"))  # used again: now the newest
    keys.add(("p", "5"))
    assert [("p", str(i)) in keys for i in range(6)] == [False, False, True, False, True, True]
