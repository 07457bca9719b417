"""Secrets at rest: devstack's state is private to its user and its logs name no key.

Every key devstack makes (identity header, token signing key, storage key, host keys, registry admin
passwords, the registry's notification token) lives in its state directory; another local user must read
none of them, and a log shared in a bug report must not carry one.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import httpx

from devstack.redact import RedactSecrets, redact
from tests.support.hostile import Target
from tests.support.stack import Devstack, group_of

# What devstack writes itself; each holds a secret or says where one is.
PRIVATE_FILES = (
    "secrets.json",
    "endpoints.json",
    "env",
    "emulator.json",
    "registry.yml",
    "emulator.sqlite",
    "pids.json",
    "tls/server.key",
    "logs/emulator.log",
    "logs/registry.log",
    "logs/azurite.log",
)


def others_may_access(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def test_the_state_directory_and_its_files_are_private(devstack: Devstack, target: Target) -> None:
    assert stat.S_IMODE(devstack.home.stat().st_mode) == 0o700
    exposed = [name for name in PRIVATE_FILES if others_may_access(devstack.home / name)]
    assert exposed == []
    # What docker-registry and Azurite create below it is theirs to shape, but never open to others.
    for service in ("registry", "azurite"):
        opened = [str(p) for p in (devstack.home / service).rglob("*") if others_may_access(p)]
        assert opened == [], service


def test_the_host_keeps_its_keys_private(target: Target) -> None:
    state = target.api.log_path.parent / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert not others_may_access(state / "keys.json")


def test_no_log_names_a_key(
    devstack: Devstack, target: Target, acr_client: Any, resource_client: Any, registry: Any
) -> None:
    keys = json.loads((target.api.log_path.parent / "state" / "keys.json").read_text())
    identity = json.loads((devstack.home / "secrets.json").read_text())
    secrets = {
        "master key": keys["masterKey"],
        "function key": keys["functionKeys"]["default"],
        "webhook key": keys["systemKeys"]["eventgrid_extension"],
        "identity header": identity["identity_header"],
        "signing key": identity["signing_key"],
        "storage key": identity["storage_key"],
    }
    # A registry with its admin user on: its passwords are made, listed, regenerated.
    group = group_of(registry.id)
    updated = acr_client.registries.begin_update(
        group, registry.name, {"properties": {"adminUserEnabled": True}}
    ).result()
    assert updated.admin_user_enabled is True
    try:
        listed = acr_client.registries.list_credentials(group, registry.name)
        for number, password in enumerate(listed.passwords):
            secrets[f"admin password {number}"] = password.value
        # The webhook called with its key in the query, as Event Grid calls it.
        assert target.deliver([]).status_code < 500
        assert httpx.get(f"{target.api.url}/api/health?code={keys['functionKeys']['default']}").status_code
    finally:
        acr_client.registries.begin_update(
            group, registry.name, {"properties": {"adminUserEnabled": False}}
        ).result()
    logs = {
        "host.log": target.api.log_path.read_text(errors="replace"),
        **{p.name: p.read_text(errors="replace") for p in (devstack.home / "logs").glob("*.log")},
    }
    leaked = [(log, name) for log, text in logs.items() for name, value in secrets.items() if value in text]
    assert leaked == []


def test_redaction_hides_query_secrets_and_known_keys() -> None:
    line = "POST https://h/runtime/webhooks/eventgrid?functionName=f&code=abc123&x=1 sig=zz s3cr3t"
    assert redact(line, ["s3cr3t"]) == (
        "POST https://h/runtime/webhooks/eventgrid?functionName=f&code=[redacted]&x=1 sig=zz [redacted]"
    )
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "url %s", ("https://a/b?sig=xyz&sv=1",), None)
    assert RedactSecrets([]).filter(record)
    assert record.getMessage() == "url https://a/b?sig=[redacted]&sv=1"
