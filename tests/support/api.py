"""The app on devstack's local Functions host, and a client of its HTTP API as App Service would front it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import REPO_ROOT, free_port
from shared.api.auth import PRINCIPAL_HEADER
from shared.api.routes import COMPLETE, FOLLOW_SECONDS, NEXT_OFFSET
from tests.support.stack import Devstack

HOST_JSON = {
    "version": "2.0",
    "functionTimeout": "00:05:00",
    "extensions": {
        "http": {"routePrefix": "api"},
        "queues": {"batchSize": 8, "maxDequeueCount": 5, "visibilityTimeout": "00:00:01"},
    },
}


def principal(*roles: str) -> str:
    claims = [{"typ": "name", "val": "api-test"}, *({"typ": "roles", "val": role} for role in roles)]
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(document).encode()).decode()


@dataclass
class Api:
    url: str
    key: str
    registry: str  # the configured name
    login_server: str
    log_path: Path

    def client(self, *roles: str, key: bool = True) -> httpx.Client:
        headers = {PRINCIPAL_HEADER: principal(*roles)} if roles else {}
        if key:
            headers["x-functions-key"] = self.key
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def local_host(devstack: Devstack, tmp: Path, settings: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    """function_app on devstack's local Functions host with these app settings: (url, function key, log)."""
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": str(devstack.endpoints["storageConnectionString"]),
        "AZURE_SUBSCRIPTION_ID": devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": devstack.arm,
        "RETENTION_SCHEDULE": "0 30 2 * * *",  # the app's timers resolve their %SETTING% schedules
        **settings,
    }
    (tmp / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    (tmp / "host.json").write_text(json.dumps(HOST_JSON))
    # The identity endpoint and CA bundle come from the devstack fixture's environment; the app's own
    # settings only from local.settings.json (the environment would win over it, as with Core Tools).
    env = {name: value for name, value in os.environ.items() if name not in values}
    port = free_port()
    log_path = tmp / "host.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "devstack.host", "--app", "function_app", "--port", str(port),
                "--settings", str(tmp / "local.settings.json"), "--host-json", str(tmp / "host.json"),
                "--state-dir", str(tmp / "state"), "--script-root", str(REPO_ROOT),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"the host did not start:\n{log_path.read_text()}"
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        keys = json.loads((tmp / "state" / "keys.json").read_text())
        yield url, keys["functionKeys"]["default"], log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


def follow_log(client: httpx.Client, url: str) -> str:
    """A run's whole log, read as the API documents it: long polls from the next offset until complete.
    Each answer comes within FOLLOW_SECONDS, with the bytes since the offset and where to read on."""
    data, offset, reads = b"", 0, 0
    while True:
        answer = client.get(url, params={"follow": "true", "offset": offset}, timeout=FOLLOW_SECONDS + 30)
        assert answer.status_code == 200, answer.text
        data += answer.content
        assert int(answer.headers[NEXT_OFFSET]) == offset + len(answer.content)
        offset = int(answer.headers[NEXT_OFFSET])
        if answer.headers[COMPLETE] == "true":
            assert "link" not in answer.headers
            return data.decode()
        assert f"offset={offset}" in answer.headers["link"]
        reads += 1
        assert reads < 50, f"the log of {url} is still not complete after {reads} reads"


def wait_for(client: httpx.Client, location: str, done: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(location)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body[done]:
            return body
        assert time.monotonic() < deadline, f"{location} still {body.get('status')}"
        time.sleep(0.3)
