"""Faults on demand: the SDK's own retry policies meet throttling, 5xx, latency, drops and holds."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError

from tests.support.faults import FAULTS, admin_client, fault


@pytest.fixture
def faults(devstack: Any) -> Iterator[Any]:
    with admin_client(devstack) as client:

        def add(**rule: Any) -> dict[str, Any]:
            return fault(client, **rule)

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


def test_a_hold_keeps_the_request_until_its_rule_is_removed(
    faults: Any, resource_client: Any, group: str
) -> None:
    """The held GET answers with a tag written after it was sent: it waited for the rule's removal."""
    rule = faults(target="arm", kind="hold", method="GET", path=f"/resourcegroups/{group}$")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(resource_client.resource_groups.get, group)
        deadline = time.monotonic() + 30
        while hits(faults.client, rule) == 0:
            assert time.monotonic() < deadline, "the GET never reached the emulator"
            time.sleep(0.02)
        resource_client.resource_groups.update(group, {"tags": {"written": "while the GET was held"}})
        assert faults.client.delete(f"{FAULTS}/{rule['id']}").status_code == 204
        assert held.result(timeout=30).tags["written"] == "while the GET was held"


def hits(client: httpx.Client, rule: dict[str, Any]) -> int:
    return int(next(r["hits"] for r in client.get(FAULTS).json()["value"] if r["id"] == rule["id"]))


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
    assert client.post(FAULTS, json={"target": "arm", "kind": "error", "status": 302}).status_code == 400
    assert client.post(FAULTS, json={"target": "arm", "kind": "error", "status": 600}).status_code == 400
    assert client.post(FAULTS, json={"target": "arm", "kind": "drop", "path": "("}).status_code == 400
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    assert httpx.get(f"{devstack.arm}/_devstack/faults", verify=context).status_code == 401


def test_an_admin_key_outside_ascii_is_a_wrong_key(devstack: Any) -> None:
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    with httpx.Client(base_url=devstack.arm, verify=context) as client:
        wrong = client.get(FAULTS, headers={"X-Devstack-Admin-Key": "wrong"})
        assert wrong.status_code == 401
        for method, path in (("GET", FAULTS), ("DELETE", f"{FAULTS}/x"), ("GET", "/_devstack/stats")):
            answer = client.request(method, path, headers={b"X-Devstack-Admin-Key": "cl\u00e9".encode()})
            assert (answer.status_code, answer.json()) == (401, wrong.json())


def test_one_rule_is_removed_by_its_id(faults: Any, devstack: Any) -> None:
    first, second = faults(target="arm", kind="drop", count=None), faults(target="dataplane", kind="drop")
    client = faults.client
    assert client.delete(f"{FAULTS}/{first['id']}").status_code == 204
    assert [rule["id"] for rule in client.get(FAULTS).json()["value"]] == [second["id"]]
    assert client.delete(f"{FAULTS}/{first['id']}").status_code == 404
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    assert httpx.delete(f"{devstack.arm}{FAULTS}/{second['id']}", verify=context).status_code == 401


def test_an_error_answers_in_the_endpoints_format_with_azures_code(
    faults: Any, devstack: Any, resource_client: Any
) -> None:
    faults(target="arm", kind="error", status=403, method="GET", path="/resourcegroups$")
    with pytest.raises(HttpResponseError) as refused:
        next(iter(resource_client.resource_groups.list()))
    assert refused.value.status_code == 403
    assert refused.value.error is not None
    assert refused.value.error.code == "AuthorizationFailed"
    faults(
        target="arm",
        kind="error",
        status=400,
        code="InvalidRequestContent",
        method="GET",
        path="/resourcegroups$",
    )
    with pytest.raises(HttpResponseError) as rejected:
        next(iter(resource_client.resource_groups.list()))
    assert rejected.value.status_code == 400
    assert rejected.value.error is not None
    assert rejected.value.error.code == "InvalidRequestContent"
