"""Cleanup end to end: the timer blueprint served by the local Functions host (`devstack.host.Host`)
on a one-second schedule, against the emulator's ARM and Azurite, deletes an expired AZ-204 style lab
and keeps a locked one; the run record in Table storage says why.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from devstack.host import Host
from devstack.stack import REPO_ROOT, free_port
from shared import container
from shared.cleanup import RUNS_TABLE
from shared.cleanup.planner import iso
from tests.support.cleanup import RUN_RECORDS
from tests.support.stack import Devstack


@pytest.fixture
def settings(devstack: Devstack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prefix = f"az204-acr-rg-{uuid.uuid4().hex[:8]}"
    values = {
        "AZURE_SUBSCRIPTION_ID": devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": devstack.arm,
        "AzureWebJobsStorage": str(devstack.endpoints["storageConnectionString"]),
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_APP_RESOURCE_GROUP": "rg-dockmaster",
        "CLEANUP_ENABLED": "true",
        "CLEANUP_DRY_RUN": "false",
        "CLEANUP_SCHEDULE": "*/1 * * * * *",
        # Labs by this test's name pattern only: other tests' groups may carry purpose=lab.
        "CLEANUP_LAB_TAG": "",
        "CLEANUP_NAME_PATTERNS": f"{prefix}*",
        "CLEANUP_PROTECTED_GROUPS": "",
        "CLEANUP_SUBSCRIPTIONS": "",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    container.reset()
    yield prefix
    container.reset()


def runs_naming(devstack: Devstack, name: str) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(str(devstack.endpoints["storageConnectionString"]), RUNS_TABLE)
    return [e for e in table.query_entities(RUN_RECORDS) if name in json.loads(e["Deleted"])]


def test_the_timer_deletes_an_expired_lab_and_keeps_a_locked_one(
    devstack: Devstack, settings: str, resource_client: Any, lock_client: Any, tmp_path: Path
) -> None:
    groups, locks = resource_client.resource_groups, lock_client.management_locks
    past = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    expired, locked = settings, f"{settings}-locked"
    for name in (expired, locked):
        groups.create_or_update(
            name, {"location": "eastus", "tags": {"purpose": "lab", "course": "az-204", "expiresOn": past}}
        )
    locks.create_or_update_at_resource_group_level(locked, "shared", {"level": "CanNotDelete"})

    host = Host(
        "tests.hostapps.cleanup_app",
        port=free_port(),
        host_json=REPO_ROOT / "tests" / "hostapps" / "host.json",
        state_dir=tmp_path / "host",
    )
    assert [spec.name for spec in host.functions] == ["cleanup_labs"]
    try:
        host.start()
        try:
            deadline = time.monotonic() + 30
            while groups.check_existence(expired):
                assert time.monotonic() < deadline, "the timer did not delete the expired lab within 30s"
                time.sleep(0.2)
            time.sleep(1.5)  # later occurrences look at the locked lab again
        finally:
            host.stop()
        assert groups.get(locked).properties.provisioning_state == "Succeeded"
        assert groups.get(locked).tags["expiresOn"] == past

        [entity] = runs_naming(devstack, expired)
        assert (entity["Trigger"], entity["DryRun"]) == ("timer", False)
        run = container.get_container().cleanup.get_run(entity["RowKey"])
        assert run.blocked == [locked]
        blocked = next(item for item in run.plan.items if item.name == locked)
        assert blocked.reason.startswith("locked: shared (CanNotDelete)")
    finally:
        locks.delete_at_resource_group_level(locked, "shared")
        groups.begin_delete(locked, polling=False)
