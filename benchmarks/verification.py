"""Verification figures: registry requests per image, a burst of events, import weight, and their peers:
`skopeo inspect` of the same tag, a naive full tag listing, eager imports.

Run with `python -m benchmarks.verification` (make bench runs it); prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
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
from benchmarks.chain import front
from benchmarks.summary import summary

REPOSITORY = "sample/hello-world"
BURST_TARGET = 100  # verifications/s in the burst, on the 2-core machine
APP_CPU_TARGET_MS = 5  # the app's own CPU per verification, services excluded
TAGS = 1000  # the repository's size when the tag checks are compared
# What function_app would import at start if it did not defer: the HTTP API, every SDK client and service.
EAGER = (
    "azure.functions, fastapi, shared.api.app, shared.services, shared.verification, shared.registry, "
    "shared.tasks, shared.policy, shared.verdicts, shared.cleanup.service, azure.identity, "
    "azure.data.tables, azure.storage.queue, azure.eventgrid, azure.mgmt.containerregistry, "
    "azure.mgmt.containerregistrytasks, azure.mgmt.resource.resources, azure.mgmt.resource.locks"
)
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


def verifier_for(endpoints: dict[str, Any], registry_id: str, policy: Path, attach: bool = True) -> Any:
    os.environ.update(
        {
            "AZURE_SUBSCRIPTION_ID": str(endpoints["subscriptionId"]),
            "AZURE_RESOURCE_MANAGER_ENDPOINT": str(endpoints["armEndpoint"]),
            "AzureWebJobsStorage": str(endpoints["storageConnectionString"]),
            "DOCKMASTER_REGISTRIES": registry_id,
            "DOCKMASTER_POLICY_PATH": str(policy),
            "DOCKMASTER_VERDICTS_TABLE": f"bench{uuid.uuid4().hex[:8]}",
            "DOCKMASTER_RUNS_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "DOCKMASTER_ATTACH_VERDICTS": "true" if attach else "false",
        }
    )
    from shared import container

    container.reset()
    return container.get_container().verifier


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
) -> float:
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
    return per_image


def referrer_cost(
    endpoints: dict[str, Any], registry_id: str, policy: Path, images: list[tuple[str, str]]
) -> None:
    """What attaching a verdict as an OCI referrer costs: verdicts made without it, then each attached on its
    own (the same `Attacher.attach` the verifier calls), timed and counted on the registry's client."""
    from shared.referrers import Attacher

    verifier = verifier_for(endpoints, registry_id, policy, attach=False)
    verdicts = [verifier.handle_event(event(registry_id, tag, digest)) for tag, digest in images]
    client = verifier.registry_data(next(iter(verifier.settings.registries.values())))
    attacher = Attacher()
    times, counts = [], []
    for verdict in verdicts:
        before, started = client.requests, time.perf_counter()
        attacher.attach(client, verdict)
        times.append(time.perf_counter() - started)
        counts.append(client.requests - before)
    warm_ms = statistics.median(times[1:]) * 1000
    print(
        f"referrer push per verdict: first {counts[0]} requests {times[0] * 1000:.1f} ms (push token, "
        f"empty config checked); then median {warm_ms:.1f} ms, {statistics.mean(counts[1:]):.2f} requests "
        f"over {len(verdicts) - 1} verdicts"
    )
    summary(
        "Verdict referrer push per verdict (warm)",
        f"{statistics.mean(counts[1:]):.0f} requests, {warm_ms:.1f} ms",
        "—",
        f"first in a repository {counts[0]} requests (token, empty config); layer POST+PUT, manifest PUT",
    )


def top_up_tags(endpoints: dict[str, Any], name: str, total: int) -> int:
    """More tags on the v1 manifest (straight to docker-registry) until the repository has `total`."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with httpx.Client(base_url=str(endpoints["registryBackend"]), timeout=30) as raw:
        existing = len(raw.get(f"/v2/{name}/{REPOSITORY}/tags/list").json()["tags"])
        manifest = raw.get(f"/v2/{name}/{REPOSITORY}/manifests/v1", headers=accept)
        headers = {"Content-Type": manifest.headers["content-type"]}
        for index in range(total - existing):
            url = f"/v2/{name}/{REPOSITORY}/manifests/x{index:04d}"
            raw.put(url, content=manifest.content, headers=headers).raise_for_status()
    return max(total, existing)


def forget(verifier: Any, digest: str) -> None:
    """Delete the digest's verdicts, so the next event for it is verified again rather than deduplicated;
    the store forgets it stored them, as a process that never saw them would (no read before the insert)."""
    table = verifier.store._table
    for entity in table.query_entities("Digest eq @digest", parameters={"digest": digest}):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
        verifier.store._stored.discard((entity["PartitionKey"], entity["RowKey"]))


def ours(endpoints: dict[str, Any], verifier: Any, tag: str, digest: str, rounds: int) -> tuple[float, int]:
    """Our verifier on one tag, warm, no smoke run: median seconds per verification and registry requests."""
    registry_id = next(iter(verifier.settings.registries.values())).resource_id
    times = []
    for _ in range(rounds):
        forget(verifier, digest)
        started = time.perf_counter()
        verifier.handle_event(event(registry_id, tag, digest))
        times.append(time.perf_counter() - started)
    forget(verifier, digest)
    stats(endpoints, reset=True)
    verifier.handle_event(event(registry_id, tag, digest))
    return statistics.median(times), stats(endpoints)["dataplane"]


def skopeo(
    endpoints: dict[str, Any], clients: Clients, registry: Any, tag: str, digest: str, rounds: int
) -> dict[str, tuple[float, int]]:
    """`skopeo inspect` of the tag on the login server, a fresh process per run, as a user would run it.

    It logs in as the registry's admin user (`--creds`): skopeo follows the Bearer challenge to
    /oauth2/token with basic auth, ACR's flow for docker clients. The CA comes in through `--cert-dir`.
    """
    from azure.mgmt.containerregistry.models import (
        RegistryPropertiesUpdateParameters,
        RegistryUpdateParameters,
    )

    update = RegistryUpdateParameters(properties=RegistryPropertiesUpdateParameters(admin_user_enabled=True))
    clients.registries.registries.begin_update(GROUP, registry.name, update).result()
    credentials = clients.registries.registries.list_credentials(GROUP, registry.name)
    creds = f"{credentials.username}:{(credentials.passwords or [])[0].value}"
    reference = f"docker://{registry.login_server}/{REPOSITORY}:{tag}"
    results = {}
    with tempfile.TemporaryDirectory() as certs:
        shutil.copy(str(endpoints["caBundle"]), Path(certs) / "ca.crt")
        for label, extra in (("skopeo inspect", []), ("skopeo inspect --no-tags", ["--no-tags"])):
            command = ["skopeo", "inspect", "--cert-dir", certs, "--creds", creds, *extra, reference]
            stats(endpoints, reset=True)
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            requests = stats(endpoints)["dataplane"]
            if json.loads(out)["Digest"] != digest:
                raise RuntimeError(f"skopeo saw {json.loads(out)['Digest']}, not {digest}")
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                subprocess.run(command, capture_output=True, check=True)
                times.append(time.perf_counter() - started)
            results[label] = (statistics.median(times), requests)
    return results


def naive_check(
    endpoints: dict[str, Any], clients: Clients, registry: Any, tag: str, rounds: int
) -> tuple[float, int, int]:
    """Does the tag still point to the digest, the naive way: list every tag with its digest (/acr/v1/…/_tags,
    pages of 100 following `Link`) and look the tag up. Median seconds, requests and tags per listing;
    the token is fetched once beforehand and not counted."""
    client = front(endpoints, clients, registry.login_server, REPOSITORY, actions="metadata_read")

    def listing() -> dict[str, str]:
        tags: dict[str, str] = {}
        url: str | None = f"/acr/v1/{REPOSITORY}/_tags?n=100"
        while url:
            response = client.get(url)
            response.raise_for_status()
            tags.update((t["name"], t["digest"]) for t in response.json()["tags"])
            link = re.match(r"<([^>]+)>", response.headers.get("link", ""))
            url = link.group(1) if link else None
        return tags

    try:
        listing()  # warm: connection open
        stats(endpoints, reset=True)
        listed = listing()
        requests = stats(endpoints)["dataplane"]
        if tag not in listed:
            raise RuntimeError(f"{tag} not in the listing")
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            listing()
            times.append(time.perf_counter() - started)
    finally:
        client.close()
    return statistics.median(times), requests, len(listed)


def tag_checks(
    endpoints: dict[str, Any], clients: Clients, verifier: Any, registry: Any, image: tuple[str, str]
) -> None:
    """One tag of a repository of TAGS tags: our verification against skopeo and a naive listing."""
    tag, digest = image
    total = top_up_tags(endpoints, registry.name, TAGS)
    rounds = 7
    our_time, our_requests = ours(endpoints, verifier, tag, digest, rounds)
    peers = skopeo(endpoints, clients, registry, tag, digest, rounds)
    naive_time, naive_requests, listed = naive_check(endpoints, clients, registry, tag, rounds)
    print(f"one tag ({REPOSITORY}:{tag}) of a repository with {total:,} tags, median of {rounds}:")
    print(
        f"  our verification (handle_event, no smoke run, warm; verdict written): "
        f"{our_time * 1000:7.1f} ms, {our_requests} registry requests"
    )
    for label, (seconds, requests) in peers.items():
        print(
            f"  {label + ' (fresh process, admin login):':<58}{seconds * 1000:7.1f} ms, "
            f"{requests} registry requests; ratio {seconds / our_time:.1f}x time, "
            f"{requests / our_requests:.1f}x requests"
        )
    print(
        f"  naive check, every tag listed via /acr/v1/_tags (n=100):   {naive_time * 1000:7.1f} ms, "
        f"{naive_requests} registry requests for {listed:,} tags; ratio {naive_time / our_time:.1f}x time "
        f"(a listing alone, no policy checks), "
        f"{naive_requests / our_requests:.1f}x requests"
    )
    skopeo_time, skopeo_requests = peers["skopeo inspect"]
    summary(
        "Metadata verification of one tag vs `skopeo inspect` (fresh process)",
        f"{our_time * 1000:.0f} ms, {our_requests} requests",
        f"{skopeo_time * 1000:.0f} ms, {skopeo_requests} requests",
        f"{skopeo_time / our_time:.1f}x time, {skopeo_requests / our_requests:.1f}x requests "
        f"(skopeo lists all {total:,} tags; with --no-tags: {peers['skopeo inspect --no-tags'][1]} requests)",
    )
    summary(
        f"Registry requests to check a tag → digest, {total:,} tags: ours vs naive full listing",
        f"{our_requests} requests",
        f"{naive_requests} requests, {naive_time * 1000:.0f} ms",
        f"{naive_requests / our_requests:.0f}x requests",
    )


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in a process group (a service and its children)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp, …, utime (11), stime (12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds(services: dict[str, int]) -> dict[str, float]:
    """CPU time so far of this process (the app: the verifier runs here) and of each devstack service."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"app": usage.ru_utime + usage.ru_stime} | {
        name: group_cpu_seconds(pid) for name, pid in services.items()
    }


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

    services = json.loads((Path(str(endpoints["home"])) / "pids.json").read_text())
    cpu_before = cpu_seconds(services)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(deliver, delivered))
    elapsed = time.perf_counter() - started
    cpu = {
        name: (spent - cpu_before[name]) * 1000 / len(images) for name, spent in cpu_seconds(services).items()
    }
    table = verifier.store._table
    burst_digests = {digest for _, digest in images}
    entities = [e for e in table.query_entities("PolicyVersion eq 'bench.1'") if e["Digest"] in burst_digests]
    final = [e for e in entities if e["Status"] in ("passed", "failed", "superseded")]
    unique = {(e["PartitionKey"], e["RowKey"]) for e in entities}
    # One verdict per digest is the point: more keys than digests would be a duplicate-verdict bug.
    digests = {e["Digest"] for e in entities}
    print(
        f"burst: {len(delivered)} events ({len(duplicates)} duplicates, shuffled) → {len(unique)} verdicts "
        f"for {len(digests)} digests, {len(final)} final, expected {len(images)}; "
        f"{len(delivered) / elapsed:.0f} events/s, "
        f"{len(images) / elapsed:.0f} verifications/s ({workers} workers, {len(failures)} retried deliveries)"
    )
    total = sum(cpu.values())
    shares = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(cpu.items(), key=lambda item: -item[1]))
    print(
        f"CPU ms per verification during the burst: {shares}; all {total:.1f} ms "
        f"(on {os.cpu_count()} cores at most {(os.cpu_count() or 1) * 1000 / total:.0f} verifications/s); "
        f"targets: ≥ {BURST_TARGET} verifications/s, app ≤ {APP_CPU_TARGET_MS} ms"
    )
    summary(
        "Burst: 1,000 ImagePushed (30% duplicates, shuffled), 8 workers",
        f"{len(unique)} verdicts, {len(final)} final",
        f"{len(images)} distinct images",
        f"{len(delivered) / elapsed:.0f} events/s, {len(images) / elapsed:.0f} verifications/s "
        f"(target ≥ {BURST_TARGET})",
    )
    summary(
        "CPU ms per verification in the burst, per process",
        f"app {cpu['app']:.1f} ms",
        "—",
        ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items() if name != "app")
        + f"; all {total:.1f} ms; app target ≤ {APP_CPU_TARGET_MS} ms",
    )


def import_weight() -> None:
    def measure(module: str) -> tuple[float, float]:
        # Peak RSS from VmHWM (KiB): getrusage's ru_maxrss keeps the parent's peak across fork and exec,
        # so it reported this benchmark's own size rather than the child's.
        code = (
            "import time; t = time.perf_counter(); "
            f"import {module}; "
            "elapsed = time.perf_counter() - t; "
            "print(elapsed, next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
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
    eager_time, eager_rss = measure(EAGER)
    print(
        f"import azure.functions: {base_time * 1000:.0f} ms, {base_rss / 1024:.1f} MiB; "
        f"import function_app: {app_time * 1000:.0f} ms, {app_rss / 1024:.1f} MiB; "
        f"ratio {app_time / base_time:.2f}x time, {app_rss / base_rss:.2f}x memory"
    )
    print(
        f"eager imports (FastAPI app, SDK clients, services): {eager_time * 1000:.0f} ms, "
        f"{eager_rss / 1024:.1f} MiB; function_app / eager: {app_time / eager_time:.2f}x time, "
        f"{app_rss / eager_rss:.2f}x memory"
    )
    summary(
        "Cold import: `import function_app` vs `import azure.functions`",
        f"{app_time * 1000:.0f} ms, {app_rss / 1024:.0f} MiB",
        f"{base_time * 1000:.0f} ms, {base_rss / 1024:.0f} MiB",
        f"{app_time / base_time:.2f}x time, {app_rss / base_rss:.2f}x memory",
    )
    summary(
        "Cold import: `import function_app` vs eager imports",
        f"{app_time * 1000:.0f} ms, {app_rss / 1024:.0f} MiB",
        f"{eager_time * 1000:.0f} ms, {eager_rss / 1024:.0f} MiB",
        f"{app_time / eager_time:.2f}x time, {app_rss / eager_rss:.2f}x memory",
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
            per_image = requests_per_verification(endpoints, verifier, images[:51])
            summary(
                "Registry requests per verification (no smoke run, warm)",
                f"{per_image:.2f}",
                "—",
                "mean over 50 distinct images; the peers are in the next rows",
            )
            referrer_cost(endpoints, str(registry.id), policy, images[51:102])
            burst(endpoints, verifier, images[102:])
            tag_checks(endpoints, clients, verifier, registry, images[1])


if __name__ == "__main__":
    main()
