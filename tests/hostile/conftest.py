"""The hostile-input suite's fixtures: one app host for the package, an image that echoes, a trap listener.

The app runs as in tests/integration/test_api.py (`local_host`: function_app on devstack's local Functions
host, roles on), with its own verdict table, so "nothing was stored" can be read off that table.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from tests.support.api import Api, local_host
from tests.support.hostile import Target, Trap, app_settings
from tests.support.stack import Devstack
from tests.support.tasks import build


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
