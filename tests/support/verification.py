"""The verification pipeline in this process: the app's verifier, pushed events, the queue drained."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient

from shared import container
from shared.verdicts import Verdict
from shared.verification import Verifier
from tests.support.paths import POLICY


@contextlib.contextmanager
def app_verifier(devstack: Any, registry: Any) -> Iterator[Verifier]:
    """The app's verifier for `registry`, built in this process from settings as the host builds it, with a
    verdict table and run queue of its own."""
    settings = {
        "AZURE_SUBSCRIPTION_ID": devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": devstack.arm,
        "AzureWebJobsStorage": devstack.endpoints["storageConnectionString"],
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(POLICY),
        "DOCKMASTER_VERDICTS_TABLE": f"verdicts{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_RUNS_QUEUE": f"runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        container.reset()
        try:
            yield container.get_container().verifier
        finally:
            container.reset()


def pushed(
    registry: Any, repository: str, tag: str, digest: str, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": registry.id,
        "subject": f"{repository}:{tag}",
        "eventType": "Microsoft.ContainerRegistry.ImagePushed",
        "eventTime": "2026-11-29T08:00:00Z",
        "data": {
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": repository,
                "tag": tag,
                "digest": digest,
            },
            "request": {"host": "evil.example"},
        },
        "dataVersion": "1.0",
    }


def drain(verifier: Verifier, verdict: Verdict, timeout: float = 90) -> Verdict:
    from shared import clients

    queue = clients.queue_client()
    deadline = time.monotonic() + timeout
    while not verdict.final:
        assert time.monotonic() < deadline, f"verdict still {verdict.status}"
        for message in queue.receive_messages(visibility_timeout=30, max_messages=8):
            verdict = verifier.follow_run(json.loads(message.content)) or verdict
            queue.delete_message(message)
        time.sleep(0.2)
    return verdict


def smoke_run_verdict(verifier: Verifier, event: dict[str, Any]) -> Verdict:
    """The verdict `event` ends with when its image has a smoke run: one running while the run goes on, then
    final once the queue's follow-ups are handled (`drain`)."""
    verdict = verifier.handle_event(event)
    assert isinstance(verdict, Verdict)
    assert verdict.status == "running"
    return drain(verifier, verdict)


def wait_for_verdict(
    table: TableClient, repository: str, accept: set[str], timeout: float = 90
) -> dict[str, Any]:
    """The first verdict of `repository` in a status of `accept`, as the app's host stored it in `table`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for entity in table.query_entities(f"Repository eq '{repository}'"):
                if entity["Status"] in accept:
                    return dict(entity)
        except Exception:  # the table appears with the first verdict  # noqa: S110
            pass
        time.sleep(0.2)
    raise AssertionError(f"{repository}: no verdict in {accept} within {timeout}s")
