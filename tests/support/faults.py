"""devstack's admin endpoints: faults injected into its Azure answers, and its request counts."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

FAULTS = "/_devstack/faults"
STATS = "/_devstack/stats"


def admin_client(devstack: Any) -> httpx.Client:
    """A client of devstack's admin endpoints (on its ARM endpoint, behind the admin key)."""
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    headers = {"X-Devstack-Admin-Key": devstack.endpoints["identityHeader"]}
    return httpx.Client(base_url=devstack.arm, verify=context, headers=headers)


def fault(admin: httpx.Client, **rule: Any) -> dict[str, Any]:
    response = admin.post(FAULTS, json=rule)
    assert response.status_code == 201, response.text
    return dict(response.json())


def hits(admin: httpx.Client, rule: dict[str, Any]) -> int:
    rules = {r["id"]: r for r in admin.get(FAULTS).json()["value"]}
    return int(rules[rule["id"]]["hits"])


def requests_seen(emulator: httpx.Client) -> dict[str, int]:
    """Requests the emulator has served per endpoint (arm, dataplane, identity)."""
    response = emulator.get(STATS)
    assert response.status_code == 200, response.text
    return dict(response.json()["requests"])
