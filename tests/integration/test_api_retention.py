"""Image retention through the HTTP API: function_app on the real local Functions host, retention on for
real (RETENTION_DRY_RUN=false, no minimum age), against a repository of the session registry seeded
with the SDK. Plan, read it back, execute it, read the run; the registry afterwards holds what was kept.
Retention turned off (409) is checked on test_api.py's host, where it is left at its default."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.containerregistry import ContainerRegistryClient

from shared.api.auth import OPERATE, READ
from tests.support.api import Api, error_of, local_host
from tests.support.stack import Devstack

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
POLICY = """
version: "retention.1"
default: {smokeRun: {enabled: false}, onPass: none, onFail: report}
retention:
  rules:
    - match: "kept/*"
      keep: [{latest: 2, by: semver}]
      delete: [{tagsOlderThan: 0d}]
"""


@pytest.fixture(scope="module")
def api(devstack: Devstack, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("api-retention-host")
    policy = home / "policy.yaml"
    policy.write_text(POLICY)
    settings = {
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(policy),
        "DOCKMASTER_VERDICTS_TABLE": f"retverdicts{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_RUNS_QUEUE": f"ret-runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": "true",
        "RETENTION_ENABLED": "true",
        "RETENTION_DRY_RUN": "false",
        "RETENTION_MIN_AGE_HOURS": "0",
        "RETENTION_SCHEDULE": "0 0 0 1 1 *",  # yearly: the timer must not run while the tests do
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",
    }
    with local_host(devstack, home, settings) as (url, key, log_path):
        yield Api(url, key, registry.name, registry.login_server, log_path)


def seed(data_client: ContainerRegistryClient, repository: str, tags: list[str]) -> dict[str, str]:
    """A distinct config-only image per tag, pushed with the SDK: tag → digest."""
    pushed = {}
    for tag in tags:
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        digest, size = data_client.upload_blob(repository, io.BytesIO(config))
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": size,
            },
            "layers": [],
        }
        raw = io.BytesIO(json.dumps(document).encode())
        pushed[tag] = data_client.set_manifest(repository, raw, tag=tag, media_type=MANIFEST)
    return pushed


def test_a_plan_is_reviewed_executed_and_its_run_read_back(
    api: Api, data_client: ContainerRegistryClient, tmp_path: Path
) -> None:
    repository = f"kept/r{uuid.uuid4().hex[:8]}"
    images = seed(data_client, repository, ["1.0.0", "1.1.0", "1.2.0", "2.0.0"])
    filters = {"filters": {"registry": api.registry, "repositories": [repository]}}
    with api.client(OPERATE, READ) as client:
        made = client.post("/api/retention/plan", json=filters)
        assert made.status_code == 200, made.text
        plan = made.json()
        decisions = {item["name"]: item["decision"] for item in plan["items"]}
        assert {t: decisions[t] for t in images} == {
            "1.0.0": "delete", "1.1.0": "delete", "1.2.0": "keep", "2.0.0": "keep",
        }  # fmt: skip
        assert {decisions[images[t]] for t in ("1.0.0", "1.1.0")} == {"delete"}
        assert client.get(f"/api/retention/plans/{plan['planId']}").json()["items"] == plan["items"]

        refused = client.post("/api/retention/execute", json={"planId": plan["planId"], "confirm": False})
        assert refused.status_code == 400, refused.text
        assert {m.digest for m in data_client.list_manifest_properties(repository)} == set(images.values())

        executed = client.post("/api/retention/execute", json={"planId": plan["planId"], "confirm": True})
        assert executed.status_code == 200, executed.text
        run = executed.json()
        assert (run["reviewedPlanId"], run["dryRun"]) == (plan["planId"], False)
        assert sorted(run["deleted"]) == sorted(f"{repository}@{images[t]}" for t in ("1.0.0", "1.1.0"))
        assert client.get(f"/api/retention/runs/{run['runId']}").json()["deleted"] == run["deleted"]
        error_of(client.get("/api/retention/runs/run-20261129T023000Z-0a1b2c3d"), 404, "NotFound")
    left = {m.digest: sorted(m.tags or []) for m in data_client.list_manifest_properties(repository)}
    assert left == {images["1.2.0"]: ["1.2.0"], images["2.0.0"]: ["2.0.0"]}
