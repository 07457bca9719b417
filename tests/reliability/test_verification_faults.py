"""Verification under injected faults: exactly one verdict, never a false pass, no retry storm."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.errors import Retryable
from shared.verdicts import Verdict
from shared.verification import Verifier
from tests.integration.test_verification import build, drain, pushed

FAULTS = "/_devstack/faults"
STATS = "/_devstack/stats"


@pytest.fixture
def admin(devstack: Any) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    headers = {"X-Devstack-Admin-Key": devstack.endpoints["identityHeader"]}
    with httpx.Client(base_url=devstack.arm, verify=context, headers=headers) as client:
        yield client
        client.delete(FAULTS)


def fault(admin: httpx.Client, **rule: Any) -> dict[str, Any]:
    response = admin.post(FAULTS, json=rule)
    assert response.status_code == 201, response.text
    return dict(response.json())


def hits(admin: httpx.Client, rule: dict[str, Any]) -> int:
    rules = {r["id"]: r for r in admin.get(FAULTS).json()["value"]}
    return int(rules[rule["id"]]["hits"])


def repository() -> str:
    return f"nosmoke/r{uuid.uuid4().hex[:8]}"


def test_throttling_on_the_registry_is_waited_out(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    rule = fault(
        admin, target="dataplane", kind="throttle", method="GET", path=f"/v2/{repo}/manifests/", count=2
    )
    started = time.monotonic()
    verdict = verifier.handle_event(pushed(registry, repo, "v1", digest))
    assert isinstance(verdict, Verdict)
    assert verdict.status == "passed"
    assert hits(admin, rule) == 2
    assert time.monotonic() - started >= 2, "Retry-After (1 s) was honoured twice"


def test_a_registry_outage_leaves_the_verdict_pending_then_redelivery_passes(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    rule = fault(admin, target="dataplane", kind="error", status=503, path=f"/v2/{repo}/", count=None)
    event = pushed(registry, repo, "v1", digest)
    with pytest.raises(Retryable):
        verifier.handle_event(event)
    attempts = hits(admin, rule)
    assert 2 <= attempts <= 6, f"bounded retries, no storm ({attempts} attempts)"
    partition, row = Verdict(registry.name, repo, digest, verifier.policy.version, "v1").key
    stored = verifier.store.get(partition, row)
    assert stored.status == "pending", "never a false pass"
    admin.delete(FAULTS)
    again = verifier.handle_event(event)  # Event Grid's redelivery of the same event
    assert isinstance(again, Verdict)
    assert again.status == "passed"
    assert verifier.store.get(partition, row).events == [event["id"]]


def test_dropped_connections_and_arm_errors_during_a_smoke_run(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = f"verify/r{uuid.uuid4().hex[:8]}"
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    fault(admin, target="dataplane", kind="drop", method="GET", path=f"/v2/{repo}/blobs/", count=1)
    fault(admin, target="arm", kind="error", status=503, path="/runs/", method="GET", count=2)
    verdict = verifier.handle_event(pushed(registry, repo, "v1", digest))
    assert isinstance(verdict, Verdict)
    final = drain(verifier, verdict)
    assert final.status == "passed"
    assert final.run_id == verdict.run_id, "one smoke run, not one per retry"


def test_deleted_before_pushed_and_duplicates(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    deleted = {
        "id": str(uuid.uuid4()),
        "topic": registry.id,
        "subject": repo,
        "eventType": "Microsoft.ContainerRegistry.ImageDeleted",
        "eventTime": "2026-11-29T08:00:01Z",
        "data": {"target": {"mediaType": "x", "repository": repo, "digest": digest}},
    }
    assert verifier.handle_event(deleted) == [], "nothing to mark yet"
    event = pushed(registry, repo, "v1", digest)
    results = [verifier.handle_event(event) for _ in range(3)]
    statuses = {r.status for r in results if isinstance(r, Verdict)}
    assert statuses == {"passed"}
    partition, row = Verdict(registry.name, repo, digest, verifier.policy.version, "v1").key
    assert verifier.store.get(partition, row).events == [event["id"]]
