"""The app's host killed mid-flight and restarted; storage unreachable. Nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devstack import devapp, stack
from shared import container
from shared.errors import Retryable
from tests.support.images import image_context
from tests.support.paths import POLICY
from tests.support.stack import WiredRegistry, wait_until
from tests.support.tasks import build
from tests.support.verification import pushed, wait_for_verdict


def queued(queue: QueueClient) -> int:
    """Messages in the queue, invisible ones (a follow-up's first delay) included."""
    try:
        return int(queue.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:  # created with the first message
        return 0


def test_host_killed_during_a_smoke_run_resumes_after_restart(
    devstack: Any, wired_registry: WiredRegistry, tasks_client: Any, hello_context: Path, tmp_path: Path
) -> None:
    with wired_registry("restart", POLICY) as (registry, app):
        name = app.name
        table = TableClient.from_connection_string(
            devstack.endpoints["storageConnectionString"], app.table_name
        )
        context = image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "sleep 4; echo done"]')
        build(tasks_client, registry, context, "verify/slow:v1")  # the executor's push fires the event
        running = wait_for_verdict(table, "verify/slow", {"running"})
        # Killed once the run's follow-up is queued (it is sent right after "running" is stored): this
        # test is about a host dying while a run goes on, not in the instant between those two writes.
        follow_ups = QueueClient.from_connection_string(
            devstack.endpoints["storageConnectionString"], app.settings["DOCKMASTER_RUNS_QUEUE"]
        )
        wait_until(lambda: queued(follow_ups) >= 1, 30, "the run's follow-up was never queued")
        pids = json.loads((devstack.home / "pids.json").read_text())
        os.killpg(pids[name], signal.SIGKILL)  # no graceful shutdown: the worst case
        stack.stop_service(devstack.home, name)
        devapp.start_host(devstack.home, app.settings, port=app.port, name=name)
        final = wait_for_verdict(table, "verify/slow", {"passed", "failed", "superseded"})
        assert final["Status"] == "passed", final["Checks"]
        assert final["RunId"] == running["RunId"], "the run was followed, not scheduled again"
        assert "done" in final["LogExcerpt"]
        entities = list(table.query_entities("Repository eq 'verify/slow'"))
        assert len(entities) == 1, "one verdict, never two"


def test_unreachable_storage_acknowledges_nothing(
    devstack: Any, registry: Any, tasks_client: Any, hello_context: Path
) -> None:
    dead = stack.free_port()  # nothing listens there
    account = "devstoreaccount1"
    broken = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey=AAAA;"
        f"BlobEndpoint=http://127.0.0.1:{dead}/{account};QueueEndpoint=http://127.0.0.1:{dead}/{account};"
        f"TableEndpoint=http://127.0.0.1:{dead}/{account};"
    )
    digest = build(tasks_client, registry, hello_context, "nosmoke/nostore:v1")
    environment = {
        "AZURE_SUBSCRIPTION_ID": devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": devstack.arm,
        "AzureWebJobsStorage": broken,
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(POLICY),
        "DOCKMASTER_VERDICTS_TABLE": "verdictsdown",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment.items():
            patch.setenv(key, value)
        container.reset()
        try:
            with pytest.raises(Retryable):  # the trigger fails, so the platform redelivers
                container.get_container().verifier.handle_event(
                    pushed(registry, "nosmoke/nostore", "v1", digest)
                )
        finally:
            container.reset()
