"""The verdict as an OCI referrer, read the way a deploy gate reads it: podman pushes, the app verifies,
and a standard OCI client from outside Dockmaster (oras-py, logged in as `az acr login --expose-token`
logs in) asks the registry for the image's Dockmaster verdicts and pulls one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.e2e import App, local_image, push
from tests.support.images import image_context
from tests.support.oras import Oras, digests, discover, login

VERDICT = "application/vnd.dockmaster.verdict.v1+json"


@pytest.fixture(scope="module")
def gate(app: App, tmp_path_factory: pytest.TempPathFactory) -> Oras:
    ca = str(app.devstack.endpoints["caBundle"])
    return login(app.registry.login_server, app.devstack.arm, ca, tmp_path_factory.mktemp("gate"))


def verdict_of(gate: Oras, repository: str, digest: str, tmp_path: Path) -> dict[str, object]:
    """What a gate does: the image's referrers of Dockmaster's type, then the verdict layer of the one."""
    gate.authorize(repository, "pull")
    pages = discover(gate, repository, digest, VERDICT)
    (descriptor,) = [m for page in pages for m in page["manifests"]]
    assert descriptor["artifactType"] == VERDICT
    pulled = gate.client.pull(gate.reference(repository, f"@{descriptor['digest']}"), outdir=str(tmp_path))
    (document,) = [json.loads(Path(path).read_text()) for path in pulled]
    assert document["status"] == descriptor["annotations"]["vnd.dockmaster.verdict.status"]
    assert document["policyVersion"] == descriptor["annotations"]["vnd.dockmaster.verdict.policy-version"]
    assert document["digest"] == digest
    return dict(document)


def test_a_gate_reads_a_passing_images_verdict_from_the_registry(
    app: App, gate: Oras, hello_context: Path, tmp_path: Path
) -> None:
    push(app, local_image(hello_context), "e2e/gated:v1")
    verdict = app.verdict("e2e/gated", "v1")
    assert verdict["Status"] == "passed", verdict["Checks"]
    document = verdict_of(gate, "e2e/gated", verdict["Digest"], tmp_path)
    assert document["status"] == "passed"
    assert document["smokeRun"]["exitStatus"] == 0  # type: ignore[index]
    assert document["checks"] == json.loads(verdict["Checks"])
    assert digests(discover(gate, "e2e/gated", verdict["Digest"], VERDICT)) == [verdict["Referrer"]]


def test_a_gate_reads_why_a_failing_image_failed(
    app: App, gate: Oras, hello_context: Path, tmp_path: Path
) -> None:
    failing = local_image(image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "exit 3"]'))
    push(app, failing, "reported/broken:v1")
    verdict = app.verdict("reported/broken", "v1")
    assert verdict["Status"] == "failed"
    document = verdict_of(gate, "reported/broken", verdict["Digest"], tmp_path / "out")
    assert document["status"] == "failed"
    smoke = next(c for c in document["checks"] if c["name"] == "smoke-run")  # type: ignore[attr-defined]
    assert smoke == {"name": "smoke-run", "status": "failed", "reason": "exit status 3, expected 0"}
    assert document["smokeRun"]["exitStatus"] == 3  # type: ignore[index]


def test_a_quarantined_images_verdict_is_attached_but_its_referrers_are_not_served(
    app: App, gate: Oras, hello_context: Path, tmp_path: Path
) -> None:
    """Quarantine (readEnabled=false) is applied after the referrer is pushed; devstack then refuses to list
    the quarantined image's referrers, as it refuses its pull (stricter than ACR documents): a gate that
    is refused admits nothing."""
    failing = local_image(image_context(tmp_path, hello_context, '["/bin/busybox", "sh", "-c", "exit 1"]'))
    push(app, failing, "e2e/quarantined:v1")
    verdict = app.verdict("e2e/quarantined", "v1")
    assert verdict["Status"] == "failed"
    assert verdict["Referrer"].startswith("sha256:")
    gate.authorize("e2e/quarantined", "pull")
    refused = requests.get(
        f"https://{gate.host}/v2/e2e/quarantined/referrers/{verdict['Digest']}",
        headers=gate.client.auth.get_auth_header(),
        verify=str(app.devstack.endpoints["caBundle"]),
        timeout=30,
    )
    assert (refused.status_code, refused.json()["errors"][0]["code"]) == (403, "DENIED")
