"""`python -m devstack up` then `down` leaves no process behind, and state survives a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import REPO_ROOT


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DEVSTACK_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def process_groups(pgids: set[int]) -> set[int]:
    """Every live process whose group is one devstack started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid in pgids and state != "Z":
            found.add(int(entry.name))
    return found


def test_up_status_down_leaves_nothing(tmp_path: Path) -> None:
    started = cli(tmp_path, "up")
    assert started.returncode == 0, started.stderr
    endpoints = json.loads((tmp_path / "endpoints.json").read_text())
    assert endpoints["armEndpoint"].startswith("https://127.0.0.1:")
    assert "identityHeader" not in started.stdout
    exports = (tmp_path / "env").read_text()
    assert "export IDENTITY_ENDPOINT=" in exports
    assert "export REQUESTS_CA_BUNDLE=" in exports
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert set(pids) == {"registry", "azurite", "emulator"}
    assert process_groups(set(pids.values()))
    assert cli(tmp_path, "status").returncode == 0
    again = cli(tmp_path, "up")
    assert again.returncode == 1
    assert "already running" in again.stderr

    stopped = cli(tmp_path, "down")
    assert stopped.returncode == 0
    assert "killed" not in stopped.stdout, "every service should stop on SIGTERM"
    assert process_groups(set(pids.values())) == set()
    assert cli(tmp_path, "status").returncode == 1


def test_state_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    assert cli(tmp_path, "up").returncode == 0
    try:
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoints["identityEndpoint"])
        monkeypatch.setenv("IDENTITY_HEADER", endpoints["identityHeader"])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoints["caBundle"])
        arm = endpoints["armEndpoint"]
        kwargs = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
        credential = ManagedIdentityCredential()
        groups = ResourceManagementClient(credential, endpoints["subscriptionId"], **kwargs)
        groups.resource_groups.create_or_update("kept", {"location": "westeurope", "tags": {"a": "b"}})
        registries = ContainerRegistryManagementClient(credential, endpoints["subscriptionId"], **kwargs)
        created = registries.registries.begin_create(
            "kept", "keptregistry", {"location": "westeurope", "sku": {"name": "Basic"}}
        ).result()
        assert cli(tmp_path, "down").returncode == 0
        assert cli(tmp_path, "up").returncode == 0
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        arm = endpoints["armEndpoint"]
        kwargs = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoints["identityEndpoint"])
        credential = ManagedIdentityCredential()
        groups = ResourceManagementClient(credential, endpoints["subscriptionId"], **kwargs)
        assert groups.resource_groups.get("kept").tags == {"a": "b"}
        registries = ContainerRegistryManagementClient(credential, endpoints["subscriptionId"], **kwargs)
        assert registries.registries.get("kept", "keptregistry").login_server == created.login_server
    finally:
        cli(tmp_path, "down")
