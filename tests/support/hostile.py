"""The hostile-input suite's pieces: the app on its host as a target, a trap listener, refusal checks."""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from tests.support.api import Api
from tests.support.faults import requests_seen
from tests.support.paths import HOSTILE_POLICY

WEBHOOK = "/runtime/webhooks/eventgrid?functionName=on_image_event"
PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DIGEST = "sha256:" + "ab" * 32


@dataclass
class Target:
    """The app on its host: the API, the Event Grid webhook, the verdict table and the host's log."""

    api: Api
    eventgrid_key: str
    table: TableClient
    registry_id: str

    def webhook(self, key: str | None = None) -> str:
        return f"{self.api.url}{WEBHOOK}&code={key if key is not None else self.eventgrid_key}"

    def deliver(self, body: Any, kind: str = "Notification", *, key: str | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            self.webhook(key),
            content=content,
            headers={"aeg-event-type": kind, "content-type": "application/json"},
            timeout=60,
        )

    def pushed(self, repository: str, tag: str, digest: str = DIGEST, **data: Any) -> dict[str, Any]:
        """An ImagePushed event in the Event Grid schema, from the configured registry's topic."""
        return {
            "id": str(uuid.uuid4()),
            "topic": self.registry_id,
            "subject": f"{repository}:{tag}",
            "eventType": PUSHED,
            "eventTime": "2026-11-29T08:00:00Z",
            "data": {"target": {"repository": repository, "tag": tag, "digest": digest}, **data},
            "dataVersion": "1.0",
        }

    def verdicts(self) -> set[tuple[str, str, str]]:
        """(partition, row, status) of every stored verdict: compared before and after hostile input."""
        try:
            return {(e["PartitionKey"], e["RowKey"], e["Status"]) for e in self.table.list_entities()}
        except ResourceNotFoundError:  # the table appears with the first verdict
            return set()

    def log_mark(self) -> int:
        return self.api.log_path.stat().st_size

    def log_since(self, mark: int) -> str:
        with open(self.api.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def health(self) -> int:
        return httpx.get(self.api.url + "/api/health", timeout=30).status_code


def app_settings(registry: Any, table: str, *, roles: bool) -> dict[str, str]:
    return {
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(HOSTILE_POLICY),
        "DOCKMASTER_VERDICTS_TABLE": table,
        "DOCKMASTER_RUNS_QUEUE": f"hostile-runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": str(roles).lower(),
        "CLEANUP_SCHEDULE": "0 0 * * * *",  # cleanup stays off (CLEANUP_ENABLED defaults to false)
    }


@dataclass
class Trap:
    """A listening socket that only records who connects: a host nobody should ever contact."""

    sock: socket.socket
    connections: list[Any] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"


def error_shape(status: int, body: bytes) -> dict[str, Any]:
    """The API's one error shape, `{"error": {"code", "message", ...}}`; returns the inner object."""
    document = json.loads(body)
    assert set(document) == {"error"}, document
    error: dict[str, Any] = document["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert status < 500, error
    return error


def assert_refused(target: Target, emulator: httpx.Client, events: list[dict[str, Any]]) -> str:
    """Deliver `events` as one Event Grid notification; each must be acknowledged and refused at parsing,
    before the app calls anything: no verdict, no request to ARM or a login server. Returns the log."""
    mark, before, stored = target.log_mark(), requests_seen(emulator), target.verdicts()
    answer = target.deliver(events)
    assert answer.status_code == 202, answer.text  # acknowledged: redelivery could not make them valid
    log = target.log_since(mark)
    assert log.count("Executed 'Functions.on_image_event' (Succeeded") == len(events), log
    assert "(Failed" not in log
    for event in events:
        assert f"event={event['id']} rejected: " in log, event
    after = requests_seen(emulator)
    assert (after["arm"], after["dataplane"]) == (before["arm"], before["dataplane"]), "the app made a call"
    assert target.verdicts() == stored
    return log
