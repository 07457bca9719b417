"""Push → verdict through the whole chain: the app on its host behind Event Grid, podman pushing to it."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

RUNC = "/usr/sbin/runc"


@dataclass
class App:
    registry: Any
    base_url: str
    webhook: str
    table: TableClient
    podman: Any
    devstack: Any
    settings: dict[str, str]

    def verdict(self, repository: str, tag: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                query = f"Repository eq '{repository}' and Tag eq '{tag}'"
                for entity in self.table.query_entities(query):
                    # Final, attached as a referrer (passed, failed) and its lock or quarantine applied:
                    # each recorded after the status.
                    status = entity["Status"]
                    if (
                        status in ("passed", "failed", "superseded")
                        and entity["PendingActions"] == "[]"
                        and (status == "superseded" or entity.get("Referrer") is not None)
                    ):
                        return dict(entity)
            except ResourceNotFoundError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no final verdict for {repository}:{tag} within {timeout}s")


Podman = Callable[..., subprocess.CompletedProcess[str]]


def podman_logged_in(devstack: Any, acr_client: Any, registry: Any, home: Path) -> Podman:
    """podman with runc, logged in to `registry` with its admin credentials (state under `home`): push,
    pull and manifest push carry the registry's CA and the login."""
    (home / "certs").mkdir()
    shutil.copy(devstack.endpoints["caBundle"], home / "certs" / "ca.crt")
    auth = ["--cert-dir", str(home / "certs"), "--authfile", str(home / "auth.json")]
    group = registry.id.split("/")[4]
    credentials = acr_client.registries.list_credentials(group, registry.name)
    login = subprocess.run(
        ["podman", "login", *auth, "-u", credentials.username, "--password-stdin", registry.login_server],
        input=credentials.passwords[0].value,
        capture_output=True,
        text=True,
        check=False,
    )
    assert login.returncode == 0, login.stderr

    def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        verb = 2 if args[:2] == ("manifest", "push") else 1
        command = ["podman", "--runtime", RUNC, *args[:verb]]
        if args[:verb] in (("push",), ("pull",), ("manifest", "push")):
            command += auth
        result = subprocess.run(
            [*command, *args[verb:]], capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed: {result.stderr}")
        return result

    return podman


def local_image(context: Path) -> str:
    name = f"localhost/dockmaster-e2e/{uuid.uuid4().hex[:8]}:latest"
    subprocess.run(["buildah", "bud", "-q", "-t", name, str(context)], check=True, capture_output=True)
    return name


def push(app: App, source: str, reference: str) -> str:
    target = f"{app.registry.login_server}/{reference}"
    app.podman("tag", source, target)
    try:
        app.podman("push", target)
    finally:
        app.podman("rmi", target, check=False)
    return reference.rpartition(":")[0]
