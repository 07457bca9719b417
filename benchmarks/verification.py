"""Verification figures: registry requests per image, a burst of events, import weight.

Run with `python -m benchmarks.verification` (make bench runs it); prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.__main__ import GROUP, Clients, acr_exercise, devstack

POLICY = """
version: "bench.1"
default:
  smokeRun: {enabled: false}
  onPass: none
"""


def stats(endpoints: dict[str, Any], reset: bool = False) -> dict[str, int]:
    context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
    headers = {"X-Devstack-Admin-Key": str(endpoints["identityHeader"])}
    url = f"{endpoints['armEndpoint']}/_devstack/stats"
    with httpx.Client(verify=context, headers=headers) as client:
        if reset:
            client.delete(url)
            return {}
        return dict(client.get(url).json()["requests"])


def verifier_for(endpoints: dict[str, Any], registry_id: str, policy: Path) -> Any:
    os.environ.update(
        {
            "AZURE_SUBSCRIPTION_ID": str(endpoints["subscriptionId"]),
            "AZURE_RESOURCE_MANAGER_ENDPOINT": str(endpoints["armEndpoint"]),
            "AzureWebJobsStorage": str(endpoints["storageConnectionString"]),
            "DOCKMASTER_REGISTRIES": registry_id,
            "DOCKMASTER_POLICY_PATH": str(policy),
            "DOCKMASTER_VERDICTS_TABLE": f"bench{uuid.uuid4().hex[:8]}",
            "DOCKMASTER_RUNS_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        }
    )
    from shared import services

    services.reset()
    return services.verifier()


def distinct_images(endpoints: dict[str, Any], name: str, count: int) -> list[tuple[str, str]]:
    """`count` distinct manifests (same layers, different annotations) tagged t0000…, pushed directly."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    images = []
    with httpx.Client(base_url=str(endpoints["registryBackend"])) as raw:
        base = raw.get(f"/v2/{name}/sample/hello-world/manifests/v1", headers=accept).json()
        for index in range(count):
            manifest = {**base, "annotations": {"bench.index": str(index)}}
            body = json.dumps(manifest).encode()
            tag = f"b{index:04d}"
            response = raw.put(
                f"/v2/{name}/sample/hello-world/manifests/{tag}",
                content=body,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            response.raise_for_status()
            images.append((tag, response.headers["docker-content-digest"]))
    return images


def event(registry_id: str, tag: str, digest: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": registry_id,
        "subject": f"sample/hello-world:{tag}",
        "eventType": "Microsoft.ContainerRegistry.ImagePushed",
        "eventTime": "2026-11-29T08:00:00Z",
        "data": {
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "sample/hello-world",
                "tag": tag,
                "digest": digest,
            }
        },
    }


def requests_per_verification(
    endpoints: dict[str, Any], verifier: Any, images: list[tuple[str, str]]
) -> None:
    registry_id = next(iter(verifier.settings.registries.values())).resource_id
    verifier.handle_event(event(registry_id, *images[0]))  # warm: token exchange and per-repository token
    stats(endpoints, reset=True)
    sample = images[1:51]
    for tag, digest in sample:
        verifier.handle_event(event(registry_id, tag, digest))
    seen = stats(endpoints)
    per_image = seen["dataplane"] / len(sample)
    print(
        f"registry requests per verification (no smoke run, warm): {per_image:5.2f} over {len(sample)} images"
    )


def burst(endpoints: dict[str, Any], verifier: Any, images: list[tuple[str, str]], workers: int = 8) -> None:
    registry_id = next(iter(verifier.settings.registries.values())).resource_id
    events = [event(registry_id, tag, digest) for tag, digest in images]
    duplicates = [dict(e) for e in random.sample(events, k=int(len(events) * 0.3 / 0.7))]
    delivered = events + duplicates
    random.shuffle(delivered)  # out of order, duplicates interleaved
    failures: list[str] = []

    def deliver(item: dict[str, Any]) -> None:
        for _ in range(5):
            try:
                verifier.handle_event(item)
                return
            except Exception as exc:  # a redelivery is what Event Grid would do
                failures.append(type(exc).__name__)
        raise RuntimeError("gave up")

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(deliver, delivered))
    elapsed = time.perf_counter() - started
    table = verifier.store._table
    burst_digests = {digest for _, digest in images}
    entities = [e for e in table.query_entities("PolicyVersion eq 'bench.1'") if e["Digest"] in burst_digests]
    final = [e for e in entities if e["Status"] in ("passed", "failed", "superseded")]
    unique = {(e["PartitionKey"], e["RowKey"]) for e in entities}
    print(
        f"burst: {len(delivered)} events ({len(duplicates)} duplicates, shuffled) → {len(unique)} verdicts, "
        f"{len(final)} final, expected {len(images)}; {len(delivered) / elapsed:.0f} events/s, "
        f"{len(images) / elapsed:.0f} verifications/s ({workers} workers, {len(failures)} retried deliveries)"
    )


def import_weight() -> None:
    def measure(module: str) -> tuple[float, float]:
        code = (
            "import resource, time; t = time.perf_counter(); "
            f"import {module}; "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        samples = []
        for _ in range(7):
            command = [sys.executable, "-c", code]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            seconds, rss = out.split()
            samples.append((float(seconds), float(rss)))
        return statistics.median(s for s, _ in samples), statistics.median(r for _, r in samples)

    base_time, base_rss = measure("azure.functions")
    app_time, app_rss = measure("function_app")
    print(
        f"import azure.functions: {base_time * 1000:.0f} ms, {base_rss / 1024:.1f} MiB; "
        f"import function_app: {app_time * 1000:.0f} ms, {app_rss / 1024:.1f} MiB; "
        f"ratio {app_time / base_time:.2f}x time, {app_rss / base_rss:.2f}x memory"
    )


def main() -> None:
    import_weight()
    with devstack() as endpoints:
        clients = Clients(endpoints)
        _, name, _ = acr_exercise(clients)
        registry = clients.registries.registries.get(GROUP, name)
        with tempfile.TemporaryDirectory() as work:
            policy = Path(work) / "policy.yaml"
            policy.write_text(POLICY)
            verifier = verifier_for(endpoints, str(registry.id), policy)
            images = distinct_images(endpoints, name, 751)
            requests_per_verification(endpoints, verifier, images[:51])
            burst(endpoints, verifier, images[51:])


if __name__ == "__main__":
    main()
