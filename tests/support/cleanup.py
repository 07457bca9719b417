"""Lab cleanup: against devstack, an environment of one test's own groups, marked labs and run table;
in memory, a `LabInventory`, a run table and ARM's error answers for the orchestration's unit tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from shared.cleanup import ArmInventory, CleanupService, RunStore
from shared.cleanup.inventory import Survey
from shared.cleanup.planner import Group, Lock, Rules, iso
from shared.cleanup.records import Held
from shared.clock import FixedClock
from shared.config import Settings
from shared.publisher import Publisher
from tests.support.stack import Devstack, group_state, remove_locks, unique

LOCATION = "westeurope"
MARK = "dmtest"


# The run records in `cleanupruns`, without their newest-first index rows (RowKey `newest-…`).
RUN_RECORDS = "PartitionKey eq 'run' and RowKey ge 'run-' and RowKey lt 'run.'"


class Grid:
    """Stands in for EventGridPublisherClient: records what the publisher sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, events: list[Any]) -> None:
        self.sent += events

    def of(self, kind: str) -> list[Any]:
        return [event for event in self.sent if event.type == kind]


class Env:
    def __init__(self, devstack: Devstack, resource_client: Any, lock_client: Any) -> None:
        self.devstack = devstack
        self.groups = resource_client.resource_groups
        self.resource_client = resource_client
        self.lock_client = lock_client
        self.prefix = unique("cl-") + "-"
        self.marker = uuid.uuid4().hex[:10]
        self.clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        self.grid = Grid()
        self.table = f"cleanupruns{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def at(self, **delta: float) -> str:
        return iso(self.now + dt.timedelta(**delta))

    def settings(self, **values: Any) -> Settings:
        base: dict[str, Any] = {
            "AZURE_SUBSCRIPTION_ID": self.devstack.subscription,
            "AZURE_RESOURCE_MANAGER_ENDPOINT": self.devstack.arm,
            "CLEANUP_ENABLED": True,
            "CLEANUP_DRY_RUN": False,
            "CLEANUP_LAB_TAG": f"{MARK}={self.marker}",
            "CLEANUP_NAME_PATTERNS": "",
            "CLEANUP_MAX_DELETIONS": 10,
            "CLEANUP_WARNING_HOURS": 12,
            "DOCKMASTER_APP_RESOURCE_GROUP": f"{self.prefix}app",
        }
        return Settings.model_validate({**base, **values})

    def service(
        self,
        resources: Callable[[str], Any] | None = None,
        locks: Callable[[str], Any] | None = None,
        publisher: Any = "grid",
        **settings: Any,
    ) -> CleanupService:
        table = TableClient.from_connection_string(
            self.devstack.endpoints["storageConnectionString"], self.table
        )
        return CleanupService(
            settings=self.settings(**settings),
            inventory=ArmInventory(
                resources or (lambda _: self.resource_client), locks or (lambda _: self.lock_client)
            ),
            store=RunStore(table),
            publisher=Publisher(self.grid if publisher == "grid" else publisher),
            clock=self.clock,
        )

    def create(
        self, suffix: str, tags: dict[str, str] | None = None, managed_by: str | None = None, lab: bool = True
    ) -> str:
        """A group named with the test's prefix; a lab (the test's marker tag) unless `lab` is false."""
        name = self.prefix + suffix
        body: dict[str, Any] = {
            "location": LOCATION,
            "tags": {**(tags or {}), **({MARK: self.marker} if lab else {})},
        }
        if managed_by:
            body["managedBy"] = managed_by
        self.groups.create_or_update(name, body)
        self.created.append(name)
        return name

    def lock(self, name: str, level: str = "CanNotDelete") -> None:
        self.lock_client.management_locks.create_or_update_at_resource_group_level(
            name, "keep", {"level": level}
        )

    def tags(self, name: str) -> dict[str, str]:
        """The group's tags but the test's marker."""
        return {k: v for k, v in (self.groups.get(name).tags or {}).items() if k != MARK}

    def state(self, name: str) -> str | None:
        return group_state(self.groups, name)

    def wait_gone(self, name: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.groups.check_existence(name):
            assert time.monotonic() < deadline, f"{name} still exists after {timeout}s"
            time.sleep(0.1)

    def cleanup(self) -> None:
        for name in self.created:
            with contextlib.suppress(HttpResponseError):
                if not self.groups.check_existence(name):
                    continue
                remove_locks(self.lock_client, name)
                self.groups.begin_delete(name, polling=False)
        # Wait, so that no deletion of this test's groups is under way while the next test lists groups.
        for name in self.created:
            with contextlib.suppress(AssertionError):
                self.wait_gone(name, timeout=10)


# In memory ------------------------------------------------------------------------------------------------


class MemoryTable:
    """The few TableClient calls RunStore makes, over a dict."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def create_table(self) -> None:
        raise ResourceExistsError("exists")

    def upsert_entity(self, entity: dict[str, Any], mode: str) -> None:
        self.rows[entity["PartitionKey"], entity["RowKey"]] = dict(entity)

    def submit_transaction(self, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        assert {kind for kind, _, _ in operations} == {"upsert"}
        assert len({entity["PartitionKey"] for _, entity, _ in operations}) == 1  # one entity group
        for _, entity, options in operations:
            self.upsert_entity(entity, **options)

    def get_entity(self, partition: str, row: str) -> dict[str, Any]:
        try:
            return self.rows[partition, row]
        except KeyError:
            raise ResourceNotFoundError("no entity") from None


class ArmAnswer:
    """An HTTP answer of ARM with an error body, as the SDK parses it into an HttpResponseError."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        self.reason = code
        self.body = json.dumps({"error": {"code": code, "message": message}})

    def text(self) -> str:
        return self.body


def arm_failure(status: int, code: str, message: str = "refused") -> HttpResponseError:
    """The exception an ARM client raises for an error answer (`ScopeLocked` 409, a 500, a 403)."""
    return HttpResponseError(response=cast("Any", ArmAnswer(status, code, message)))


@dataclass
class MemoryInventory:
    """`LabInventory` over groups held by name: raises what ARM would (a missing group, a lock refusing a
    write). `failures` makes one call on one group raise (keys: call and group name, "" for the listing);
    `meanwhile` runs once at the first single-group read, as if someone acted between plan and delete."""

    groups: dict[str, Group]
    locked: dict[str, list[Lock]] = field(default_factory=dict)
    failures: dict[tuple[str, str], BaseException] = field(default_factory=dict)
    meanwhile: list[Callable[[MemoryInventory], None]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    held: dict[str, list[Held]] = field(default_factory=dict)  # the resources in each group

    def _call(self, call: str, name: str) -> None:
        self.calls.append((call, name))
        failure = self.failures.get((call, name))
        if failure is not None:
            raise failure

    def _found(self, name: str) -> Group:
        try:
            return self.groups[name]
        except KeyError:
            raise ResourceNotFoundError(f"resource group '{name}' could not be found") from None

    def survey(self, subscriptions: Iterable[str], rules: Rules) -> Survey:
        self._call("list", "")
        wanted = {s.lower() for s in subscriptions}
        found = [g for g in self.groups.values() if g.subscription.lower() in wanted]
        labs = [g for g in found if rules.is_lab(g)]
        return Survey(labs, {g.key: list(self.locked.get(g.name, [])) for g in labs}, len(found), 1, 1)

    def group(self, subscription: str, name: str) -> Group:
        while self.meanwhile:
            self.meanwhile.pop(0)(self)
        self._call("group", name)
        return self._found(name)

    def locks(self, subscription: str, name: str) -> list[Lock]:
        self._call("locks", name)
        self._found(name)
        return list(self.locked.get(name, []))

    def merge_tags(
        self, group: Group, updates: Mapping[str, str], expected: Mapping[str, str | None] | None = None
    ) -> dict[str, str]:
        self._call("merge_tags", group.name)
        current = self._found(group.name)
        if any(lock.level == "ReadOnly" for lock in self.locked.get(group.name, [])):
            raise arm_failure(409, "ScopeLocked", f"{group.name} is locked")
        tags = dict(current.tags)
        written: dict[str, str] = {}
        for name, value in updates.items():
            had = current.tag(name)
            if expected is not None and name in expected and (had[1] if had else None) != expected[name]:
                continue
            tags[had[0] if had else name] = value
            written[name] = value
        self.groups[group.name] = Group(
            current.subscription, current.name, tags, current.managed_by, current.state
        )
        return written

    def resources(self, subscription: str, name: str) -> list[Held]:
        self._call("resources", name)
        self._found(name)
        return list(self.held.get(name, []))

    def delete(self, subscription: str, name: str) -> None:
        self._call("delete", name)
        current = self._found(name)
        if self.locked.get(name):
            raise arm_failure(409, "ScopeLocked", f"{name} is locked")
        self.deleted.append(name)
        self.groups[name] = Group(current.subscription, name, current.tags, current.managed_by, "Deleting")
