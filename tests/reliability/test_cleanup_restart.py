"""The host SIGKILLed in the middle of a cleanup batch, then restarted.

The emulator lets the first wave of deletes through and holds every later one (a `hold` fault), so
the kill lands while the timer's run is deleting, whatever the machine's speed: the test waits for a
held delete, not for a latency to run out. After the kill the held deletes are released and land at
ARM (they had been sent); after the restart the next run finishes the job. What must hold: every expired
lab is deleted, nothing outside the plan is (a locked lab, an unexpired one, a protected one, a group
that is not a lab), the interrupted run left a record naming what it may have deleted, and no lab is
deleted by two runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from devstack import devapp, stack
from shared.cleanup import RUNS_TABLE
from shared.cleanup.planner import iso
from shared.cleanup.records import DELETED, RunRecord
from tests.support.cleanup import RUN_RECORDS
from tests.support.faults import FAULTS, admin_client, fault
from tests.support.stack import Devstack, group_state, wait_until

EXPIRED = 24  # three waves of the service's eight concurrent deletes
FIRST_WAVE = 8


class SlowDeletes:
    """Deletes of one prefix's groups: the first wave passes (counted), every later one is held."""

    def __init__(self, admin: httpx.Client, prefix: str) -> None:
        self.admin, self.prefix = admin, prefix
        path = f"/resourcegroups/{prefix}"
        first = {"target": "arm", "kind": "latency", "method": "DELETE", "path": path, "count": FIRST_WAVE}
        later = {"target": "arm", "kind": "hold", "method": "DELETE", "path": path, "count": None}
        self.first, self.later = str(fault(admin, **first)["id"]), str(fault(admin, **later)["id"])

    def hits(self, rule_id: str) -> int:
        rules = self.admin.get(FAULTS).json()["value"]
        return int(next((r["hits"] for r in rules if r["id"] == rule_id), 0))

    def release(self) -> None:
        self.admin.delete(f"{FAULTS}/{self.first}")
        self.admin.delete(f"{FAULTS}/{self.later}")


@pytest.fixture
def slow_deletes(devstack: Devstack) -> Iterator[SlowDeletes]:
    prefix = f"az204-acr-rg-{uuid.uuid4().hex[:8]}"
    with admin_client(devstack) as admin:
        deletes = SlowDeletes(admin, prefix)
        try:
            yield deletes
        finally:
            deletes.release()


def runs_of(devstack: Devstack, names: set[str]) -> list[RunRecord]:
    from shared.cleanup.records import RunStore

    table = TableClient.from_connection_string(str(devstack.endpoints["storageConnectionString"]), RUNS_TABLE)
    store = RunStore(table)
    runs = [store.get_run(e["RowKey"]) for e in table.query_entities(RUN_RECORDS)]
    return [run for run in runs if names & {item.name for item in run.plan.items}]


def test_host_killed_mid_batch_deletes_nothing_outside_the_plan(
    devstack: Devstack, resource_client: Any, lock_client: Any, slow_deletes: SlowDeletes
) -> None:
    prefix, groups = slow_deletes.prefix, resource_client.resource_groups
    past = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    future = iso(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    lab = {"purpose": "lab", "course": "az-204"}
    expired = {f"{prefix}-{index:02d}" for index in range(EXPIRED)}
    kept = {
        f"{prefix}-locked": {**lab, "expiresOn": past},
        f"{prefix}-unexpired": {**lab, "expiresOn": future},
        f"{prefix}-protected": {**lab, "expiresOn": past, "do-not-delete": "true"},
        f"keep-{prefix}": {"expiresOn": past},  # not a lab: outside the name pattern
    }
    for name in expired:
        groups.create_or_update(name, {"location": "eastus", "tags": {**lab, "expiresOn": past}})
    for name, tags in kept.items():
        groups.create_or_update(name, {"location": "eastus", "tags": tags})
    lock_client.management_locks.create_or_update_at_resource_group_level(
        f"{prefix}-locked", "shared", {"level": "CanNotDelete"}
    )
    settings = devapp.app_settings(
        devstack.endpoints,
        [],
        CLEANUP_ENABLED="true",
        CLEANUP_DRY_RUN="false",
        CLEANUP_SCHEDULE="*/2 * * * * *",
        CLEANUP_MAX_DELETIONS="100",
        CLEANUP_LAB_TAG="",  # labs by this test's name pattern only: other tests' groups are labs too
        CLEANUP_NAME_PATTERNS=f"{prefix}*",
        CLEANUP_PROTECTED_GROUPS="",
    )
    name, port = f"host-{uuid.uuid4().hex[:6]}", stack.free_port()
    app = "tests.hostapps.cleanup_app"
    try:
        devapp.start_host(devstack.home, settings, port=port, name=name, app=app)
        wait_until(
            lambda: slow_deletes.hits(slow_deletes.later) > 0,
            60,
            "the timer's run never reached its second wave",
        )
        pids = json.loads((devstack.home / "pids.json").read_text())
        os.killpg(pids[name], signal.SIGKILL)  # mid-batch: later deletes are held at ARM, the rest unsent
        stack.stop_service(devstack.home, name)
        sent = FIRST_WAVE + slow_deletes.hits(slow_deletes.later)
        slow_deletes.release()  # deletes already sent still land at ARM
        wait_until(
            lambda: sum(group_state(groups, n) != "Succeeded" for n in expired) >= sent,
            30,
            f"the {sent} deletes sent before the kill did not all land",
        )
        at_kill = {n: group_state(groups, n) for n in expired}
        assert sent < EXPIRED, "the kill came after the batch, not during it"
        assert list(at_kill.values()).count("Succeeded") == EXPIRED - sent, "only what was sent landed"

        devapp.start_host(devstack.home, settings, port=port, name=name, app=app)
        deadline = time.monotonic() + 90
        while remaining := [n for n in expired if group_state(groups, n) == "Succeeded"]:
            assert time.monotonic() < deadline, f"not deleted after the restart: {remaining}"
            time.sleep(0.2)
    finally:
        stack.stop_service(devstack.home, name)
        lock_client.management_locks.delete_at_resource_group_level(f"{prefix}-locked", "shared")

    for group_name in kept:
        assert group_state(groups, group_name) == "Succeeded", f"{group_name} is outside the plan"
    runs = runs_of(devstack, expired)
    interrupted = [run for run in runs if run.finished_at is None]
    assert interrupted, "the killed run left no record"
    planned = {item.name for run in interrupted for item in run.plan.deletions}
    started = {n for n, s in at_kill.items() if s != "Succeeded"}
    assert started <= planned, "a group was deleted that the interrupted run's plan did not name"
    deleted_by: dict[str, list[str]] = {}
    for run in runs:
        assert {item.name for item in run.plan.deletions} <= expired
        for outcome in run.having(DELETED):
            deleted_by.setdefault(outcome.name, []).append(run.run_id)
    assert all(len(ids) == 1 for ids in deleted_by.values()), f"deleted twice: {deleted_by}"
    assert expired - started <= set(deleted_by), "the runs after the restart deleted the rest"
