"""Image retention against devstack's registry front with the product's RegistryClient: the manifest
listing (pages, an index's `references`), a plan and its execution (deletes by digest, untags), the
re-read before a delete, and the delete-only token. Images are seeded straight into docker-registry
(a small config and layer, distinct manifests), as a push ends."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.clock import FixedClock
from shared.config import Settings
from shared.policy import RetentionPolicy
from shared.publisher import Publisher
from shared.registry import RegistryClient
from shared.retention.inventory import RegistryInventory
from shared.retention.records import DELETED, KEPT, NOT_REVIEWED, RetentionStore
from shared.retention.service import RetentionService
from tests.support.cleanup import MemoryTable
from tests.support.stack import unique

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


class Seeder:
    """Blobs and manifests PUT straight to docker-registry under the registry's prefix."""

    def __init__(self, backend: str, registry: str, repository: str) -> None:
        self.raw = httpx.Client(base_url=backend, timeout=30)
        self.prefix = f"/v2/{registry}/{repository}"
        self.config = self.blob(json.dumps({"architecture": "amd64", "os": "linux"}).encode())
        self.layer = {**self.blob(b"layer"), "mediaType": "application/vnd.oci.image.layer.v1.tar"}

    def blob(self, content: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        location = self.raw.post(f"{self.prefix}/blobs/uploads/").headers["location"]
        self.raw.put(
            f"{location}{'&' if '?' in location else '?'}digest={digest}", content=content
        ).raise_for_status()
        return {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(content),
        }

    def manifest(self, reference: str, note: str, subject: str | None = None) -> str:
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI, "config": self.config,
                                    "layers": [self.layer], "annotations": {"note": note}}  # fmt: skip
        if subject is not None:
            document["subject"] = {"mediaType": OCI, "digest": subject, "size": 1}
        return self._put(reference, document, OCI)

    def index(self, reference: str, children: list[str]) -> str:
        document = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": OCI, "digest": c, "size": 1, "platform": {"architecture": a, "os": "linux"}}
            for c, a in zip(children, ("amd64", "arm64"), strict=False)]}  # fmt: skip
        return self._put(reference, document, INDEX)

    def _put(self, reference: str, document: dict[str, Any], media: str) -> str:
        body = json.dumps(document).encode()
        self.raw.put(
            f"{self.prefix}/manifests/{reference}", content=body, headers={"Content-Type": media}
        ).raise_for_status()
        return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture
def world(devstack: Any, registry: Any, credential: Any) -> Iterator[tuple[Seeder, RegistryClient, str]]:
    repository = f"retention/{unique('r')}"
    seeder = Seeder(str(devstack.endpoints["registryBackend"]), registry.name, repository)
    yield seeder, RegistryClient(registry.login_server, credential, f"{devstack.arm}/.default"), repository
    seeder.raw.close()


def service(
    registry: Any, client: RegistryClient, rules: list[dict[str, Any]], **settings: str
) -> RetentionService:
    values = {
        "DOCKMASTER_REGISTRIES": registry.id,
        "RETENTION_ENABLED": "true",
        "RETENTION_DRY_RUN": "false",
        "RETENTION_MIN_AGE_HOURS": "0",
        "RETENTION_MAX_DELETION_PERCENT": "100",
        **settings,
    }
    return RetentionService(
        Settings(**values),
        RetentionPolicy.model_validate({"rules": rules}),
        RegistryInventory(lambda _ref: client, lambda _ref, _repo: []),
        RetentionStore(MemoryTable()),
        Publisher(None),
        FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)),
    )


def tags_of(client: RegistryClient, repository: str) -> set[str]:
    return {str(t["name"]) for t in client.list_tags(repository, 100).items}


def test_the_manifest_listing_pages_and_shows_an_index_children(
    world: tuple[Seeder, RegistryClient, str],
) -> None:
    seeder, client, repository = world
    amd, arm = seeder.manifest("amd", "amd64"), seeder.manifest("arm", "arm64")
    index = seeder.index("multi", [amd, arm])
    first = client.list_manifests(repository, 2)
    assert len(first.items) == 2
    assert first.last is not None
    rest = client.list_manifests(repository, 2, first.last)
    listed = {m["digest"]: m for m in [*first.items, *rest.items]}
    assert set(listed) == {amd, arm, index}
    assert [r["digest"] for r in listed[index]["references"]] == [amd, arm]


def test_a_plan_is_executed_by_digest_and_by_untag(
    world: tuple[Seeder, RegistryClient, str], registry: Any
) -> None:
    seeder, client, repository = world
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        seeder.manifest(version, version)
    shared = seeder.manifest("old-alias", "shared")
    seeder.manifest("stable", "shared")  # the same manifest: stable keeps it, old-alias is only untagged
    locked = seeder.manifest("0.9.0", "locked")
    client.update_manifest(repository, locked, {"writeEnabled": False, "deleteEnabled": False})
    amd, arm = seeder.manifest("amd", "a"), seeder.manifest("arm", "b")
    seeder.index("0.1.0", [amd, arm])
    rules = [{"match": "retention/*", "keep": [{"latest": 1, "by": "semver"}, {"tagPattern": "^stable$"}],
              "delete": [{"tagsOlderThan": "0d"}, {"untaggedOlderThan": "0d"}]}]  # fmt: skip
    retention = service(registry, client, rules)
    plan = retention.plan({"repositories": [repository]})
    decided = {(i.kind, i.name): i.decision for i in plan.items}
    assert decided[("tag", "2.0.0")] == "keep"
    assert decided[("tag", "old-alias")] == "untag"
    assert decided[("manifest", shared)] == "protected"
    assert decided[("manifest", locked)] == "protected"
    assert decided[("tag", "0.9.0")] == "untag"
    assert decided[("manifest", amd)] == "delete"  # the index goes, and its children with it
    run = retention.execute(plan.plan_id, confirm=True)
    assert {o.result for o in run.outcomes} == {DELETED}, [o.reason for o in run.outcomes]
    # 0.9.0's manifest is locked, the tag is not: it is untagged, the locked manifest stays.
    assert tags_of(client, repository) == {"2.0.0", "stable"}
    remaining = {m["digest"] for m in client.list_manifests(repository, 100).items}
    assert amd not in remaining
    assert {shared, locked} <= remaining


def test_a_tag_moved_after_the_plan_is_kept(world: tuple[Seeder, RegistryClient, str], registry: Any) -> None:
    seeder, client, repository = world
    seeder.manifest("a", "a")
    retention = service(registry, client, [{"match": "retention/*", "delete": [{"tagsOlderThan": "0d"}]}])
    plan = retention.plan({"repositories": [repository]})
    seeder.manifest("a", "moved")  # pushed again: the tag names another manifest now
    # The reviewed deletion is no longer the fresh plan's (kept), the fresh one was never reviewed.
    run = retention.execute(plan.plan_id, confirm=True)
    assert {o.result for o in run.outcomes} == {KEPT, NOT_REVIEWED}
    assert tags_of(client, repository) == {"a"}
    # The last moment sees it too: the re-read of the reviewed items names what changed.
    ref = next(iter(retention.settings.registries.values()))
    [manifest] = [i for i in plan.deletions if i.kind == "manifest"]
    assert retention.inventory.recheck_manifest(ref, manifest) is not None
    [tag] = [i for i in plan.items if i.kind == "tag"]
    assert "points to" in str(retention.inventory.recheck_tag(ref, tag))


def test_deletes_ask_for_a_delete_token_only(world: tuple[Seeder, RegistryClient, str]) -> None:
    seeder, client, repository = world
    digest = seeder.manifest("gone", "gone")
    client.delete_manifest(repository, digest)
    assert client.manifest_properties(repository, digest) is None
    assert f"repository:{repository}:delete" in client._access  # a token of its own for deletes
    assert f"repository:{repository}:pull,metadata_read,metadata_write" in client._access
