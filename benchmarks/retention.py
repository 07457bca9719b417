"""Retention figures: a plan for one repository of 1,000 and of 10,000 tags (as many manifests) through the
registry front with the product's RegistryClient, its registry requests counted by the client; the pure
planner on the same state.

Run with `python -m benchmarks.retention`; prints figures, asserts nothing. The repository is seeded
straight into docker-registry: one small config and layer blob, then 10,000 distinct manifests (an
annotation apiece) each under a semantic-version tag, 8 PUTs at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from benchmarks.__main__ import GROUP, Clients, devstack
from benchmarks.summary import summary
from shared.config import RegistryRef
from shared.errors import DockmasterError
from shared.policy import RetentionPolicy
from shared.registry import RegistryClient
from shared.retention.inventory import PAGE, RegistryInventory
from shared.retention.planner import plan_repository
from shared.retention.rules import Limits, ruleset_for

REPOSITORY = "bench/retention"
SIZES = (1_000, 10_000)
POLICY = RetentionPolicy.model_validate(
    {
        "rules": [
            {
                "match": "bench/*",
                "keep": [{"latest": 20, "by": "semver"}],
                "delete": [{"tagsOlderThan": "0d"}],
            }
        ]
    }
)
LIMITS = Limits(dt.timedelta(0), 100, 50.0)  # the default cap; no minimum age: everything was pushed now


def _blob(raw: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    started = raw.post(f"/v2/{name}/{REPOSITORY}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["location"]
    joiner = "&" if "?" in location else "?"  # the location carries the upload's state: keep it
    raw.put(f"{location}{joiner}digest={digest}", content=content).raise_for_status()
    return {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(content)}


def seed(endpoints: dict[str, Any], name: str, indexes: range) -> None:
    with httpx.Client(base_url=str(endpoints["registryBackend"]), timeout=60) as raw:
        config = _blob(raw, name, json.dumps({"architecture": "amd64", "os": "linux"}).encode())
        layer = {
            **_blob(raw, name, b"retention layer"),
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
        }

        def put(index: int) -> None:
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config,
                    "layers": [layer],
                    "annotations": {"bench": str(index)},
                }
            ).encode()
            tag = f"{index // 1000}.{(index // 10) % 100}.{index % 10}"
            raw.put(
                f"/v2/{name}/{REPOSITORY}/manifests/{tag}",
                content=body,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ).raise_for_status()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, indexes))


def _constant(client: RegistryClient) -> Callable[[RegistryRef], RegistryClient]:
    return lambda _ref: client


def measure(registry: Any, clients: Clients, ref: RegistryRef, count: int) -> None:
    """A plan of the repository as it is now (`count` tags), once with a fresh client; figures printed."""
    from azure.identity import ManagedIdentityCredential

    client = RegistryClient(
        str(registry.login_server), ManagedIdentityCredential(), f"{clients.arm}/.default"
    )
    inventory = RegistryInventory(_constant(client), lambda _ref, _repo: [])
    rules = ruleset_for(POLICY, REPOSITORY)
    began = time.perf_counter()
    try:
        state = inventory.read(ref, REPOSITORY)
    except DockmasterError as exc:
        print(f"{count} tags: the listing failed after {time.perf_counter() - began:.0f} s: {exc.message}")
        summary(
            f"retention plan, {count:,} tags",
            "did not finish",
            "—",
            "the emulator's manifest listing timed out",
        )
        return
    listed = time.perf_counter() - began
    items = plan_repository(
        state, rules, LIMITS, dt.datetime.now(dt.UTC), inventory.subject_reader(ref, REPOSITORY)
    )
    total = time.perf_counter() - began
    planned = []
    for _ in range(5):
        started = time.perf_counter()
        plan_repository(state, rules, LIMITS, dt.datetime.now(dt.UTC), lambda m: None)
        planned.append(time.perf_counter() - started)
    deletions = sum(1 for i in items if i.acts)
    deferred = sum(1 for i in items if i.decision == "deferred")
    per_thousand = client.requests / (count / 1000)
    print(
        f"plan of {count} tags / {len(state.manifests)} manifests: {total:.2f} s (listing {listed:.2f} s), "
        f"{client.requests} registry requests ({2 * -(-count // PAGE)} listing pages of {PAGE}, the token "
        f"exchange, {deletions} candidates read for `subject`), {per_thousand:.1f} requests per 1,000 tags; "
        f"{deletions} deletions, {deferred} deferred by the cap; the pure planner alone "
        f"{statistics.median(planned) * 1000:.0f} ms (median of 5)"
    )
    summary(
        f"retention plan, {count:,} tags",
        f"{total:.2f} s, {client.requests} requests",
        "—",
        f"{per_thousand:.1f} requests per 1,000 tags; "
        f"planner alone {statistics.median(planned) * 1000:.0f} ms",
    )


def main() -> None:
    with devstack() as endpoints:
        clients = Clients(endpoints)
        clients.groups.resource_groups.create_or_update(GROUP, {"location": "eastus"})
        name = f"bench{int(time.time()) % 100000:05d}ret"
        registry = clients.registries.registries.begin_create(
            GROUP, name, {"location": "eastus", "sku": {"name": "Basic"}}
        ).result()
        ref = RegistryRef(str(registry.id), "", GROUP, name)
        seeded = 0
        for count in SIZES:
            started = time.perf_counter()
            seed(endpoints, name, range(seeded, count))
            seeded = count
            print(
                f"{count} manifests and tags in the repository "
                f"({time.perf_counter() - started:.1f} s to seed)"
            )
            measure(registry, clients, ref, count)


if __name__ == "__main__":
    main()
