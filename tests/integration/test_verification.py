"""The verification pipeline in-process against devstack: real registry, ACR Tasks, Table and Queue.

The queue trigger is stood in for by `drain`, which hands each visible message
to `Verifier.follow_run` as the Functions host would.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared import referrers
from shared.errors import InvalidInput
from shared.events import UnknownRegistry
from shared.verdicts import Verdict
from shared.verification import Verifier
from tests.support.images import image_context
from tests.support.tasks import build
from tests.support.verification import pushed, smoke_run_verdict


def test_a_good_image_passes_and_is_locked(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path, data_client: Any
) -> None:
    digest = build(tasks_client, registry, hello_context, "verify/good:v1")
    verdict = smoke_run_verdict(verifier, pushed(registry, "verify/good", "v1", digest))
    assert verdict.status == "passed", verdict.checks
    assert "Hello from Dockmaster" in verdict.log_excerpt
    assert {c["name"] for c in verdict.checks} >= {"tag-resolves", "media-type", "env", "smoke-run"}
    assert verdict.actions == [f"locked {digest}; locked tag v1"]
    tag = data_client.get_tag_properties("verify/good", "v1")
    assert (tag.can_write, tag.can_delete) == (False, False)
    assert_attached(data_client, verdict, "verify/good")


def test_a_failing_command_is_quarantined(
    verifier: Verifier,
    tasks_client: Any,
    registry: Any,
    hello_context: Path,
    data_client: Any,
    tmp_path: Path,
) -> None:
    context = image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "echo broken; exit 1"]')
    digest = build(tasks_client, registry, context, "verify/bad:v1")
    verdict = smoke_run_verdict(verifier, pushed(registry, "verify/bad", "v1", digest))
    assert verdict.status == "failed"
    smoke = next(c for c in verdict.checks if c["name"] == "smoke-run")
    assert smoke["reason"] == "exit status 1, expected 0"
    assert "broken" in verdict.log_excerpt
    assert data_client.get_manifest_properties("verify/bad", digest).can_read is False
    document = assert_attached(data_client, verdict, "verify/bad")
    assert document["smokeRun"]["exitStatus"] == 1
    assert document["checks"] == verdict.checks


def test_a_locked_image_gains_the_verdict_of_a_newer_policy_as_another_referrer(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path, data_client: Any
) -> None:
    digest = build(tasks_client, registry, hello_context, "verify/relocked:v1")
    first = smoke_run_verdict(verifier, pushed(registry, "verify/relocked", "v1", digest))
    assert (first.status, first.actions) == ("passed", [f"locked {digest}; locked tag v1"])
    assert data_client.get_manifest_properties("verify/relocked", digest).can_write is False
    newer = replace(verifier, policy=verifier.policy.model_copy(update={"version": "test.2"}))
    second = smoke_run_verdict(newer, pushed(registry, "verify/relocked", "v1", digest))
    assert (second.status, second.policy_version) == ("passed", "test.2")
    assert_attached(data_client, second, "verify/relocked")
    assert_attached(data_client, first, "verify/relocked")
    assert second.referrer != first.referrer


def test_the_push_of_a_referrer_is_not_verified_as_an_image(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path, data_client: Any
) -> None:
    """Should ACR raise ImagePushed for an untagged artifact (a verdict of ours, a signature), it is
    acknowledged unverified: verifying it would attach a verdict to the verdict, whose push would be
    verified, and so on; and it is left readable."""
    digest = build(tasks_client, registry, hello_context, "nosmoke/attached:v1")
    verdict = verifier.handle_event(pushed(registry, "nosmoke/attached", "v1", digest))
    assert isinstance(verdict, Verdict)
    assert verdict.referrer
    event = pushed(registry, "nosmoke/attached", "v1", verdict.referrer)
    del event["data"]["target"]["tag"]
    event["subject"] = "nosmoke/attached"
    with pytest.raises(InvalidInput, match="without a tag"):
        verifier.handle_event(event)  # acknowledged by the trigger, not retried
    assert verifier.history(verifier.settings.registries[registry.name.lower()], "nosmoke/attached") == [
        verifier.verdict(
            verifier.settings.registries[registry.name.lower()], "nosmoke/attached", digest, "test.1"
        )
    ]
    assert data_client.get_manifest_properties("nosmoke/attached", verdict.referrer).can_read is True
    assert {m.digest for m in data_client.list_manifest_properties("nosmoke/attached")} == {
        digest,
        verdict.referrer,
    }


def assert_attached(data_client: Any, verdict: Verdict, repository: str) -> dict[str, Any]:
    """The verdict's referrer is in the registry, read back with the SDK: its subject is the image, its
    layer the verdict; and its annotations say the status and policy version."""
    assert verdict.referrer, verdict.actions
    pulled = data_client.get_manifest(repository, verdict.referrer)
    manifest = pulled.manifest
    assert manifest["subject"]["digest"] == verdict.digest
    assert manifest["artifactType"] == referrers.VERDICT_TYPE
    assert manifest["annotations"][referrers.STATUS] == verdict.status
    assert manifest["annotations"][referrers.POLICY_VERSION] == verdict.policy_version
    blob = data_client.download_blob(repository, manifest["layers"][0]["digest"])
    document: dict[str, Any] = json.loads(b"".join(blob))
    assert (document["status"], document["digest"]) == (verdict.status, verdict.digest)
    return document


def test_a_moved_tag_is_superseded(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path, tmp_path: Path
) -> None:
    first = build(tasks_client, registry, hello_context, "verify/moving:v1")
    other = image_context(tmp_path, hello_context, '["/bin/busybox", "true"]')
    second = build(tasks_client, registry, other, "verify/moving:v1")
    assert first != second
    verdict = verifier.handle_event(pushed(registry, "verify/moving", "v1", first))
    assert isinstance(verdict, Verdict)
    assert verdict.status == "superseded"
    assert verdict.run_id is None
    assert second in verdict.checks[0]["reason"]


def test_redelivery_changes_nothing(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    digest = build(tasks_client, registry, hello_context, "nosmoke/app:v1")
    event = pushed(registry, "nosmoke/app", "v1", digest)
    first = verifier.handle_event(event)
    assert isinstance(first, Verdict)
    assert first.status == "passed"
    again = verifier.handle_event(event)
    assert isinstance(again, Verdict)
    assert (again.status, again.completed_at, again.events) == ("passed", first.completed_at, first.events)
    other_delivery = verifier.handle_event(pushed(registry, "nosmoke/app", "v1", digest))
    assert isinstance(other_delivery, Verdict)
    assert other_delivery.completed_at == first.completed_at
    stored = verifier.store.get(*first.key)
    assert len(stored.events) == 2, "a second event for the same image is recorded, not re-verified"


def test_policy_violations_fail_with_reasons(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    digest = build(tasks_client, registry, hello_context, "strict/app:latest")
    verdict = verifier.handle_event(pushed(registry, "strict/app", "latest", digest))
    assert isinstance(verdict, Verdict)
    assert verdict.status == "failed"
    reasons = {c["name"]: c["reason"] for c in verdict.checks if c["status"] == "failed"}
    assert reasons["user"].startswith("the image runs as root")
    assert "not a semantic version" in reasons["tag-naming"]


def test_a_hanging_run_times_out(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path, tmp_path: Path
) -> None:
    context = image_context(tmp_path, hello_context, '["/bin/busybox", "sleep", "300"]')
    digest = build(tasks_client, registry, context, "slow/app:v1")
    verdict = smoke_run_verdict(verifier, pushed(registry, "slow/app", "v1", digest))
    assert verdict.status == "failed"
    assert "timed out" in next(c["reason"] for c in verdict.checks if c["name"] == "smoke-run")


def test_foreign_and_deleted_events(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    foreign = pushed(registry, "a/b", "v1", "sha256:" + "0" * 64)
    foreign["topic"] = foreign["topic"].rsplit("/", 1)[0] + "/notconfigured"
    with pytest.raises(UnknownRegistry):
        verifier.handle_event(foreign)
    digest = build(tasks_client, registry, hello_context, "nosmoke/gone:v1")
    verifier.handle_event(pushed(registry, "nosmoke/gone", "v1", digest))
    deleted = {
        "id": str(uuid.uuid4()),
        "topic": registry.id,
        "subject": "nosmoke/gone",
        "eventType": "Microsoft.ContainerRegistry.ImageDeleted",
        "eventTime": "2026-11-29T08:00:00Z",
        "data": {"target": {"mediaType": "x", "repository": "nosmoke/gone", "digest": digest}},
    }
    marked = verifier.handle_event(deleted)
    assert isinstance(marked, list)
    assert [v.deleted for v in marked] == [True]


def test_no_credential_leaves_for_a_host_named_in_an_event(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    """Hosts inside an event (request.host, target.url) are never contacted; only ARM's login server is."""
    import socket
    import threading

    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen()
    trap.settimeout(0.2)
    connections: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(trap.accept()[0])
            except TimeoutError:
                continue

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    host = f"127.0.0.1:{trap.getsockname()[1]}"
    try:
        digest = build(tasks_client, registry, hello_context, "nosmoke/hostile:v1")
        event = pushed(registry, "nosmoke/hostile", "v1", digest)
        event["data"]["request"] = {"host": host, "addr": host}
        event["data"]["target"]["url"] = f"https://{host}/v2/nosmoke/hostile/manifests/{digest}"
        verdict = verifier.handle_event(event)
        assert isinstance(verdict, Verdict)
        assert verdict.status == "passed"
        spoofed = pushed(registry, "nosmoke/hostile", "v1", digest)
        spoofed["topic"] = (
            f"/subscriptions/x/resourceGroups/y/providers/Microsoft.ContainerRegistry/registries/{host}"
        )
        with pytest.raises(UnknownRegistry):
            verifier.handle_event(spoofed)
    finally:
        stop.set()
        watcher.join()
        trap.close()
    assert connections == [], "a host taken from an event was contacted"
