"""Faults on demand: the SDK's own retry policies meet throttling, 5xx, latency and drops."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError

FAULTS = "/_devstack/faults"


@pytest.fixture
def faults(devstack: Any) -> Iterator[Any]:
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    headers = {"X-Devstack-Admin-Key": devstack.endpoints["identityHeader"]}
    with httpx.Client(base_url=devstack.arm, verify=context, headers=headers) as client:

        def add(**rule: Any) -> dict[str, Any]:
            response = client.post(FAULTS, json=rule)
            assert response.status_code == 201, response.text
            return dict(response.json())

        add.client = client  # type: ignore[attr-defined]
        yield add
        client.delete(FAULTS)


def test_throttling_is_retried_after_retry_after(faults: Any, resource_client: Any, group: str) -> None:
    rule = faults(
        target="arm", kind="throttle", method="GET", path=f"/resourcegroups/{group}$", count=2, retry_after=1
    )
    started = time.monotonic()
    assert resource_client.resource_groups.get(group).name == group
    assert time.monotonic() - started >= 2, "the SDK waits Retry-After between attempts"
    listed = faults.client.get(FAULTS).json()["value"]
    assert [(r["id"], r["hits"], r["count"]) for r in listed] == [(rule["id"], 2, 0)]


def test_server_errors_are_retried_then_surface(faults: Any, resource_client: Any, group: str) -> None:
    faults(target="arm", kind="error", status=503, method="GET", path=f"/resourcegroups/{group}$", count=1)
    assert resource_client.resource_groups.get(group).name == group
    faults(target="arm", kind="error", status=500, method="GET", path=f"/resourcegroups/{group}$", count=None)
    with pytest.raises(HttpResponseError) as caught:
        resource_client.resource_groups.get(group, retry_total=1, retry_backoff_factor=0.01)
    assert caught.value.status_code == 500


def test_latency_and_dropped_connections(faults: Any, resource_client: Any, group: str) -> None:
    faults(target="arm", kind="latency", delay_ms=600, method="GET", path=f"/resourcegroups/{group}$")
    started = time.monotonic()
    resource_client.resource_groups.get(group)
    assert time.monotonic() - started >= 0.6
    drop = faults(target="arm", kind="drop", method="GET", path=f"/resourcegroups/{group}$", count=1)
    assert resource_client.resource_groups.get(group).name == group
    rules = {r["id"]: r for r in faults.client.get(FAULTS).json()["value"]}
    assert rules[drop["id"]]["hits"] == 1, "the first attempt met the dropped connection"


def test_identity_endpoint_faults(faults: Any, devstack: Any) -> None:
    faults(target="identity", kind="error", status=503, count=1)
    response = httpx.get(
        devstack.endpoints["identityEndpoint"],
        params={"api-version": "2019-08-01", "resource": devstack.arm},
        headers={"X-IDENTITY-HEADER": devstack.endpoints["identityHeader"]},
    )
    assert response.status_code == 503


def test_admin_api_checks_its_input(faults: Any, devstack: Any) -> None:
    client = faults.client
    assert client.post(FAULTS, json={"target": "moon", "kind": "drop"}).status_code == 400
    assert client.post(FAULTS, json={"target": "arm", "kind": "error", "status": 404}).status_code == 400
    assert client.post(FAULTS, json={"target": "arm", "kind": "drop", "path": "("}).status_code == 400
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    assert httpx.get(f"{devstack.arm}/_devstack/faults", verify=context).status_code == 401


def test_one_rule_is_removed_by_its_id(faults: Any, devstack: Any) -> None:
    first, second = faults(target="arm", kind="drop", count=None), faults(target="dataplane", kind="drop")
    client = faults.client
    assert client.delete(f"{FAULTS}/{first['id']}").status_code == 204
    assert [rule["id"] for rule in client.get(FAULTS).json()["value"]] == [second["id"]]
    assert client.delete(f"{FAULTS}/{first['id']}").status_code == 404
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    assert httpx.delete(f"{devstack.arm}{FAULTS}/{second['id']}", verify=context).status_code == 401
