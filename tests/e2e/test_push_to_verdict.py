"""Push → verdict through the whole chain: podman push to the registry front, docker-registry's
notification, Event Grid, the local Functions host running function_app, ACR Tasks, the queue.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.e2e import App, local_image, push
from tests.support.faults import FAULTS, admin_client, fault, hits
from tests.support.images import image_context
from tests.support.stack import group_of


def test_a_pushed_image_passes_with_its_smoke_run_log(app: App, hello_context: Path) -> None:
    push(app, local_image(hello_context), "e2e/hello:v1")
    verdict = app.verdict("e2e/hello", "v1")
    assert verdict["Status"] == "passed", verdict["Checks"]
    checks = {c["name"]: c for c in json.loads(verdict["Checks"])}
    assert checks["smoke-run"]["status"] == "passed"
    assert verdict["RunId"]
    assert "Hello from Dockmaster" in verdict["LogExcerpt"]
    assert json.loads(verdict["Actions"]) == [f"locked {verdict['Digest']}; locked tag v1"]


def test_a_failing_image_is_quarantined(app: App, hello_context: Path, tmp_path: Path) -> None:
    failing = local_image(image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "exit 1"]'))
    push(app, failing, "e2e/broken:v1")
    verdict = app.verdict("e2e/broken", "v1")
    assert verdict["Status"] == "failed"
    assert "exit status 1" in next(
        c["reason"] for c in json.loads(verdict["Checks"]) if c["name"] == "smoke-run"
    )
    refused = app.podman("pull", f"{app.registry.login_server}/e2e/broken:v1", check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr


def test_a_tag_repushed_before_verification_is_superseded(
    app: App, hello_context: Path, tmp_path: Path
) -> None:
    # Hold the first verification's tag lookup until the second push has landed: a hold, not a latency
    # (a busy machine can take longer to push than any latency guessed here).
    rule = {"target": "dataplane", "kind": "hold", "method": "GET",
            "path": "/v2/e2e/moving/manifests/v1$", "count": 1}  # fmt: skip
    first = local_image(hello_context)
    second = local_image(image_context(tmp_path, hello_context, '["/bin/busybox", "true"]'))
    with admin_client(app.devstack) as client:
        held = fault(client, **rule)
        push(app, first, "e2e/moving:v1")
        deadline = time.monotonic() + 60
        while not hits(client, held):
            assert time.monotonic() < deadline, "the first verification never looked up its tag"
            time.sleep(0.1)
        push(app, second, "e2e/moving:v1")
        assert client.delete(f"{FAULTS}/{held['id']}").status_code == 204
    verdicts: list[Any] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(verdicts) < 2:
        verdicts = [
            e
            for e in app.table.query_entities("Repository eq 'e2e/moving'")
            if e["Status"] not in ("pending", "running")
        ]
        time.sleep(0.2)
    statuses = sorted(e["Status"] for e in verdicts)
    assert statuses == ["passed", "superseded"]


def test_a_redelivered_event_changes_nothing(app: App, hello_context: Path) -> None:
    push(app, local_image(hello_context), "nosmoke/redelivered:v1")
    verdict = app.verdict("nosmoke/redelivered", "v1")
    (event_id,) = json.loads(verdict["Events"])
    event = {
        "id": event_id,
        "topic": app.registry.id,
        "subject": "nosmoke/redelivered:v1",
        "eventType": "Microsoft.ContainerRegistry.ImagePushed",
        "eventTime": "2026-11-29T08:00:00.0000000Z",
        "data": {
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "nosmoke/redelivered",
                "tag": "v1",
                "digest": verdict["Digest"],
            }
        },
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }
    answer = httpx.post(app.webhook, json=[event], headers={"aeg-event-type": "Notification"})
    assert answer.status_code in (200, 202)
    again = app.verdict("nosmoke/redelivered", "v1")
    assert (again["CompletedAt"], again["Events"], again["Status"]) == (
        verdict["CompletedAt"],
        verdict["Events"],
        verdict["Status"],
    )


def test_policy_violations_fail_with_reasons(app: App, hello_context: Path) -> None:
    push(app, local_image(hello_context), "strict/service:latest")
    verdict = app.verdict("strict/service", "latest")
    assert verdict["Status"] == "failed"
    failed = {c["name"]: c["reason"] for c in json.loads(verdict["Checks"]) if c["status"] == "failed"}
    assert "runs as root" in failed["user"]
    assert "semantic version" in failed["tag-naming"]
    assert group_of(app.registry.id).startswith("rg-e2e-")


def test_a_podman_index_is_verified_by_its_image(app: App, hello_context: Path) -> None:
    """The index podman pushes for a manifest list: its root image fails it, as it fails alone."""
    source = local_image(hello_context)  # FROM scratch, no USER: root
    index = f"localhost/dockmaster-e2e/index-{uuid.uuid4().hex[:8]}"
    app.podman("manifest", "create", index)
    try:
        app.podman("manifest", "add", index, f"containers-storage:{source}")
        app.podman(
            "manifest", "push", "--all", index, f"docker://{app.registry.login_server}/guarded/podman:v1"
        )
    finally:
        app.podman("manifest", "rm", index, check=False)
    verdict = app.verdict("guarded/podman", "v1")
    assert verdict["Status"] == "failed", verdict["Checks"]
    failed = {c["name"]: c["reason"] for c in json.loads(verdict["Checks"]) if c["status"] == "failed"}
    assert "linux/amd64" in failed["user"]
    assert "runs as root" in failed["user"]
    refused = app.podman("pull", f"{app.registry.login_server}/guarded/podman:v1", check=False)
    assert refused.returncode != 0
