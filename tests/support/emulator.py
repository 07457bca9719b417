"""The emulator's pieces built in-process, with no service started: for unit tests of its domain layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.emulator.config import EmulatorConfig


def offline_config(home: Path, **overrides: Any) -> EmulatorConfig:
    """A configuration whose ports, certificates and backend point nowhere: nothing in a unit test listens."""
    settings: dict[str, Any] = {
        "state_dir": home,
        "host": "127.0.0.1",
        "arm_port": 1,
        "identity_port": 2,
        "tls_cert": home / "none",
        "tls_key": home / "none",
        "ca_cert": home / "no-ca.pem",
        "tenant_id": "t",
        "subscription_id": "s",
        "identity_header": "h",
        "signing_key": "k" * 48,
        "registry_backend": "http://127.0.0.1:3",
        "registry_storage": home,
        "storage_connection_string": "",
    }
    return EmulatorConfig(**(settings | overrides))
