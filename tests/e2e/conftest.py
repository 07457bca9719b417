"""The e2e modules' app: function_app on the local host, a registry's events wired to it, podman logged in."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient

from devstack import stack
from tests.support.e2e import RUNC, App
from tests.support.paths import POLICY
from tests.support.stack import group_of, new_registry, wire_app


@pytest.fixture(scope="module")
def app(
    devstack: Any,
    resource_client: Any,
    acr_client: Any,
    credential: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[App]:
    registry = new_registry(resource_client, acr_client, "e2e", adminUserEnabled=True)
    group = group_of(registry.id)
    wired = wire_app(devstack, credential, registry, POLICY)

    home = tmp_path_factory.mktemp("podman-e2e")
    (home / "certs").mkdir()
    shutil.copy(devstack.endpoints["caBundle"], home / "certs" / "ca.crt")
    auth = ["--cert-dir", str(home / "certs"), "--authfile", str(home / "auth.json")]
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

    table = TableClient.from_connection_string(
        devstack.endpoints["storageConnectionString"], wired.table_name
    )
    yield App(registry, wired.url, wired.webhook, table, podman, devstack, wired.settings)
    stack.stop_service(devstack.home, wired.name)
    resource_client.resource_groups.begin_delete(group, polling=False)
