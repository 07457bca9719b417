"""The hostile-input suite's shared pieces: one app host for the package, a trap listener, emulator stats.

The app runs as in tests/integration/test_api.py (`local_host`: function_app on devstack's local Functions
host, roles on), with its own verdict table, so "nothing was stored" can be read off that table.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from tests.conftest import Devstack
from tests.integration.test_api import Api, local_host
from tests.integration.test_verification import build
from tests.reliability.test_verification_faults import STATS, admin  # noqa: F401  (a fixture, re-exported)

POLICY = Path(__file__).parent / "policy.yaml"
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
        "DOCKMASTER_POLICY_PATH": str(POLICY),
        "DOCKMASTER_VERDICTS_TABLE": table,
        "DOCKMASTER_RUNS_QUEUE": f"hostile-runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": str(roles).lower(),
        "CLEANUP_SCHEDULE": "0 0 * * * *",  # cleanup stays off (CLEANUP_ENABLED defaults to false)
    }


@pytest.fixture(scope="package")
def target(devstack: Devstack, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    table = f"hostile{uuid.uuid4().hex[:8]}"
    settings = app_settings(registry, table, roles=True)
    home = tmp_path_factory.mktemp("hostile-host")
    with local_host(devstack, home, settings) as (url, key, log_path):
        keys = json.loads((home / "state" / "keys.json").read_text())
        tables = TableClient.from_connection_string(devstack.endpoints["storageConnectionString"], table)
        api = Api(url, key, registry.name, registry.login_server, log_path)
        yield Target(api, keys["systemKeys"]["eventgrid_extension"], tables, registry.id)


@pytest.fixture(scope="package")
def echo_image(tasks_client: Any, registry: Any, hello_context: Path) -> str:
    """hostile/echo:v1, the hello image (busybox echo): its run's log shows its arguments verbatim."""
    return build(tasks_client, registry, hello_context, "hostile/echo:v1")


def requests_seen(emulator: httpx.Client) -> dict[str, int]:
    """Requests the emulator has served per endpoint (arm, dataplane, identity)."""
    response = emulator.get(STATS)
    assert response.status_code == 200, response.text
    return dict(response.json()["requests"])


@dataclass
class Trap:
    """A listening socket that only records who connects: a host nobody should ever contact."""

    sock: socket.socket
    connections: list[Any] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.fixture
def trap() -> Iterator[Trap]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.1)
    found = Trap(sock)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, peer = sock.accept()
            except TimeoutError:
                continue
            found.connections.append(peer)
            connection.close()

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    yield found
    stop.set()
    watcher.join()
    sock.close()


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    """A request with its path sent byte for byte: HTTP clients would resolve `..` and re-encode `%2F`."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


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
