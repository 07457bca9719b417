"""HTTP API figures: tag listing (paged through 5,000 tags) and verdict lookup on the local Functions host.

Run with `python -m benchmarks.api`; prints figures, asserts nothing. The tags all name one manifest (PUT
straight to docker-registry), the host runs function_app with roles off, and the emulator's request counters
(`/_devstack/stats`) show how many registry and ARM requests each listing page costs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.__main__ import GROUP, Clients, acr_exercise, devstack
from benchmarks.chain import percentile
from benchmarks.page import measure_page
from benchmarks.summary import summary
from benchmarks.verification import stats
from devstack import devapp, stack
from devstack.host.keys import HostKeys

POLICY = 'version: "bench.api"\ndefault:\n  smokeRun: {enabled: false}\n  onPass: none\n'
REPOSITORY = "sample/hello-world"
TAGS = 5000
PAGE = 100


def push_tags(endpoints: dict[str, Any], name: str, count: int) -> None:
    """The v1 manifest again under `count` more tag names (cheap: one manifest, many tags)."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with httpx.Client(base_url=str(endpoints["registryBackend"]), timeout=30) as raw:
        manifest = raw.get(f"/v2/{name}/{REPOSITORY}/manifests/v1", headers=accept)
        headers = {"Content-Type": manifest.headers["content-type"]}

        def put(index: int) -> None:
            url = f"/v2/{name}/{REPOSITORY}/manifests/t{index:04d}"
            raw.put(url, content=manifest.content, headers=headers).raise_for_status()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(count)))


def figures(label: str, latencies: list[float], seconds: float) -> str:
    return (
        f"{label}: {len(latencies) / seconds:7.1f} req/s, p50 {statistics.median(latencies):6.1f} ms, "
        f"p95 {percentile(latencies, 0.95):6.1f} ms over {len(latencies)} requests"
    )


def timed(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, response


def list_all_tags(client: httpx.Client, first: str) -> tuple[int, list[float], float]:
    """Follow nextLink from `first` to the end: (tags, per-page latencies in ms, whole listing in s)."""
    listed, latencies = 0, []
    url: str | None = first
    started = time.perf_counter()
    while url:
        latency, response = timed(client, url)
        latencies.append(latency)
        body = response.json()
        listed += len(body["tags"])
        url = body.get("nextLink")
    return listed, latencies, time.perf_counter() - started


def verify_one(client: httpx.Client, registry: str, tag: str, timeout: float = 60) -> str:
    accepted = client.post(
        "/api/verifications", json={"registry": registry, "repository": REPOSITORY, "tag": tag}
    )
    accepted.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(accepted.headers["location"]).json()
        if body.get("status") not in ("queued", "pending", "running", None):
            return str(body["status"])
        time.sleep(0.2)
    return "still pending"


def measure(endpoints: dict[str, Any], base: str, key: str, registry: str) -> float:
    """The figures; returns the first tag page's median answer time (ms)."""
    tags_url = f"/api/registries/{registry}/repositories/{REPOSITORY}/tags?n={PAGE}"
    verdicts_url = f"/api/registries/{registry}/repositories/{REPOSITORY}/verdicts"
    with httpx.Client(base_url=base, headers={"x-functions-key": key}, timeout=60) as client:
        print(f"verification of {REPOSITORY}:t0000 (so the listing and lookup carry a verdict): "
              f"{verify_one(client, registry, 't0000')}")  # fmt: skip
        for _ in range(3):  # warm: the app's first request imports FastAPI, tokens are cached after
            timed(client, tags_url)
            timed(client, verdicts_url)

        stats(endpoints, reset=True)
        listed, pages, seconds = list_all_tags(client, tags_url)
        counted = stats(endpoints)
        print(f"whole tag listing: {listed} tags in {len(pages)} pages of {PAGE}, {seconds * 1000:.0f} ms")
        print(figures(f"GET …/tags?n={PAGE} (paging, sequential)", pages, seconds))
        per_page = ", ".join(f"{kind} {count / len(pages):.2f}" for kind, count in sorted(counted.items()))
        print(f"emulator requests per tag-listing page: {per_page} (totals {counted})")

        first, started = [], time.perf_counter()
        for _ in range(20):
            first.append(timed(client, tags_url)[0])
        print(figures(f"GET …/tags?n={PAGE} (first page, sequential)", first, time.perf_counter() - started))
        summary(
            f"HTTP API: GET …/tags?n={PAGE}, first page, sequential (local host)",
            f"p50 {statistics.median(first):.1f} ms, p95 {percentile(first, 0.95):.1f} ms",
            "—",
            f"whole listing of {listed:,} tags: {len(pages)} pages, {seconds * 1000:.0f} ms",
        )

        lookups, started = [], time.perf_counter()
        for _ in range(50):
            lookups.append(timed(client, verdicts_url)[0])
        print(figures("GET …/verdicts (sequential)", lookups, time.perf_counter() - started))

    def worker(url: str, count: int) -> list[float]:
        with httpx.Client(base_url=base, headers={"x-functions-key": key}, timeout=60) as own:
            return [timed(own, url)[0] for _ in range(count)]

    for label, url in ((f"GET …/tags?n={PAGE}", tags_url), ("GET …/verdicts", verdicts_url)):
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(worker, [url] * 8, [5] * 8))
        print(
            figures(
                f"{label} (8 concurrent clients)",
                [latency for part in results for latency in part],
                time.perf_counter() - started,
            )
        )
    return statistics.median(first)


def main() -> None:
    with devstack() as endpoints:
        clients = Clients(endpoints)
        _, name, _ = acr_exercise(clients)
        registry = clients.registries.registries.get(GROUP, name)
        started = time.perf_counter()
        push_tags(endpoints, name, TAGS)
        print(f"{TAGS} tags PUT to docker-registry in {time.perf_counter() - started:.1f} s")
        home = Path(str(endpoints["home"]))
        with tempfile.TemporaryDirectory() as work:
            policy = Path(work) / "policy.yaml"
            policy.write_text(POLICY)
            settings = devapp.app_settings(
                endpoints,
                [str(registry.id)],
                DOCKMASTER_POLICY_PATH=str(policy),
                DOCKMASTER_VERDICTS_TABLE=f"benchapi{uuid.uuid4().hex[:8]}",
                DOCKMASTER_API_ROLES="false",
            )
            base = devapp.start_host(home, settings, port=stack.free_port(), name="bench-api-host")
            try:
                key = HostKeys.load_or_create(home / "bench-api-host").function
                api_ms = measure(endpoints, base, key, name)
                # The last page starts after t4899 (the tags sort as t0000…t4999, v1 after them).
                measure_page(base, key, name, REPOSITORY, f"t{TAGS - PAGE - 1:04d}", api_ms)
            finally:
                stack.stop_service(home, "bench-api-host")


if __name__ == "__main__":
    main()
