"""Lab cleanup against devstack: an environment of one test's own groups, marked labs and run table."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient

from shared.cleanup import ArmInventory, CleanupService, RunStore
from shared.cleanup.planner import iso
from shared.clock import FixedClock
from shared.config import Settings
from shared.publisher import Publisher
from tests.support.stack import Devstack, group_state, unique

LOCATION = "westeurope"
MARK = "dmtest"


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
                for lock in self.lock_client.management_locks.list_at_resource_group_level(name):
                    self.lock_client.management_locks.delete_at_resource_group_level(name, lock.name)
                self.groups.begin_delete(name, polling=False)
        # Wait, so that no deletion of this test's groups is under way while the next test lists groups.
        for name in self.created:
            with contextlib.suppress(AssertionError):
                self.wait_gone(name, timeout=10)
