"""Azurite stopped for a while mid-flow, then started again on the same data.

The app runs on the local host against a private Azurite (so the session's stays up). One image is
mid smoke run when storage goes down: its verdict says `running` and its follow-up message waits in
the queue. Another is pushed during the outage: its deliveries fail, so Event Grid retries. After
the restart both end with exactly one final verdict, and the one pushed during the outage was stored
only after storage came back — nothing was acknowledged that had not been stored. And an event whose
verdict can never be stored ends as a dead-letter record that says why.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from devstack import stack
from tests.support.eventgrid import dead_letter_to, dead_letters
from tests.support.images import image_context
from tests.support.paths import POLICY
from tests.support.stack import Devstack, WiredRegistry, unique
from tests.support.tasks import build
from tests.support.verification import wait_for_verdict

AZURITE = "azurite-outage"


class PrivateAzurite:
    def __init__(self, devstack: Devstack, location: Path) -> None:
        self.home = devstack.home
        self.location = location
        self.ports = (stack.free_port(), stack.free_port(), stack.free_port())
        connection = str(devstack.endpoints["storageConnectionString"])
        self.key = dict(part.split("=", 1) for part in connection.split(";") if part)["AccountKey"]
        self.connection_string = stack.storage_connection_string(self.key, *self.ports)

    def start(self) -> None:
        args = stack.azurite_args(self.location, *self.ports)
        environment = {"AZURITE_ACCOUNTS": f"{stack.AZURITE_ACCOUNT}:{self.key}"}
        pid = stack.spawn_service(self.home, AZURITE, args, environment)
        stack.wait_until(AZURITE, lambda: all(map(listening, self.ports)), pid, self.home)

    def stop(self) -> None:
        stack.stop_service(self.home, AZURITE)  # SIGTERM: Azurite saves its data and exits


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((stack.HOST, port)) == 0


@pytest.fixture
def storage(devstack: Devstack, tmp_path: Path) -> Iterator[PrivateAzurite]:
    azurite = PrivateAzurite(devstack, tmp_path / "azurite")
    azurite.start()
    try:
        yield azurite
    finally:
        azurite.stop()


def test_storage_down_mid_flow_loses_and_doubles_nothing(
    devstack: Devstack,
    storage: PrivateAzurite,
    wired_registry: WiredRegistry,
    tasks_client: Any,
    hello_context: Path,
    tmp_path: Path,
) -> None:
    with wired_registry("outage", POLICY, AzureWebJobsStorage=storage.connection_string) as (registry, app):
        table = TableClient.from_connection_string(storage.connection_string, app.table_name)
        slow = image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "sleep 3; echo done"]')
        build(tasks_client, registry, slow, "verify/slow:v1")
        running = wait_for_verdict(table, "verify/slow", {"running"})

        storage.stop()
        build(tasks_client, registry, hello_context, "nosmoke/during:v1")  # its event meets the outage
        time.sleep(5)  # the smoke run ends and its follow-up comes due while storage is down
        storage.start()
        back = time.time()

        followed = wait_for_verdict(table, "verify/slow", {"passed", "failed", "superseded"})
        assert followed["Status"] == "passed", followed["Checks"]
        assert followed["RunId"] == running["RunId"], "the run was followed, not scheduled again"
        during = wait_for_verdict(table, "nosmoke/during", {"passed"})
        stored = table.get_entity(during["PartitionKey"], during["RowKey"]).metadata["timestamp"]
        assert stored is not None
        assert stored.timestamp() >= back - 1, "stored before storage was back"
        for repository in ("verify/slow", "nosmoke/during"):
            entities = list(table.query_entities(f"Repository eq '{repository}'"))
            assert len(entities) == 1, f"{repository}: one verdict, never two"


def test_an_event_that_can_never_be_stored_is_dead_lettered_with_its_reason(
    devstack: Devstack,
    wired_registry: WiredRegistry,
    tasks_client: Any,
    hello_context: Path,
    tmp_path: Path,
) -> None:
    down = PrivateAzurite(devstack, tmp_path / "never-started")  # storage that never comes up
    container = unique("dead-")
    wired = wired_registry(
        "deadletter",
        POLICY,
        subscription={
            "retry_policy": {"max_delivery_attempts": 3, "event_time_to_live_in_minutes": 60},
            "dead_letter_destination": dead_letter_to(container),
        },
        AzureWebJobsStorage=down.connection_string,
    )
    with wired as (registry, _):
        digest = build(tasks_client, registry, hello_context, "nosmoke/never:v1")
        [(_, [event])] = dead_letters(devstack, container, timeout=60)
    assert event["eventType"] == "Microsoft.ContainerRegistry.ImagePushed"
    assert (event["data"]["target"]["repository"], event["data"]["target"]["digest"]) == (
        "nosmoke/never",
        digest,
    )
    assert event["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert (event["deliveryAttempts"], event["lastHttpStatusCode"]) == (3, 500)
