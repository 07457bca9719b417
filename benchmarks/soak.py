"""`make soak`: a sustained push rate through the whole chain, watching latency, memory and queue depth.

Default: 20 pushes/s for 5 minutes, every 20th push to a repository whose rule runs a smoke run (one
podman run a second), with devstack (registry, emulator, Azurite, host and podman) on the same 2 cores;
`python -m benchmarks.soak --rate 30 --seconds 60` for more. Prints a line every 30 s, latency per
minute and a summary, then checks the bounds and exits 1 if one broke: every push has its verdict; neither the
host's nor the emulator's memory grew by more than --max-growth MiB after the first 30 s; the run
queue never held more than --max-queue messages; the last minute's p95 stayed within twice the
first minute's (plus 100 ms for the 1 s polling).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.__main__ import GROUP, Clients, acr_exercise, devstack
from benchmarks.chain import FINAL, front, manifests, percentile, put
from benchmarks.summary import summary
from benchmarks.verification import cpu_seconds
from devstack import devapp, stack
from devstack.host.keys import HostKeys

PUSHERS = 4
POLICY = """
version: "soak.1"
default:
  smokeRun: {enabled: false}
  onPass: none
rules:
  - match: "smoke/*"
    smokeRun: {enabled: true, timeoutSeconds: 60}
    onPass: none
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build_smoke_image(clients: Clients, name: str) -> None:
    from azure.storage.blob import BlobClient

    from benchmarks.__main__ import hello_context, wait
    from shared.tasks import docker_build_request, pack_context

    upload = clients.tasks.registries.get_build_source_upload_url(GROUP, name)
    BlobClient.from_blob_url(str(upload.upload_url)).upload_blob(pack_context(hello_context()))
    body = docker_build_request(str(upload.relative_path), ["smoke/app:v1"])
    wait(clients, name, clients.tasks.registries.schedule_run(GROUP, name, body).run_id)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--rate", type=float, default=20.0, help="pushes per second")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to push")
    parser.add_argument("--max-growth", type=float, default=50.0, help="MiB of memory growth allowed")
    parser.add_argument("--max-queue", type=int, default=100, help="run-queue messages allowed at once")
    args = parser.parse_args()
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    with devstack() as endpoints, tempfile.TemporaryDirectory() as work:
        home = Path(str(endpoints["home"]))
        clients = Clients(endpoints)
        _, name, _ = acr_exercise(clients)
        registry = clients.registries.registries.get(GROUP, name)
        policy = Path(work) / "policy.yaml"
        policy.write_text(POLICY)
        table_name, queue_name = f"soak{uuid.uuid4().hex[:8]}", f"soak-{uuid.uuid4().hex[:8]}"
        settings = devapp.app_settings(
            endpoints,
            [str(registry.id)],
            DOCKMASTER_POLICY_PATH=str(policy),
            DOCKMASTER_VERDICTS_TABLE=table_name,
            DOCKMASTER_RUNS_QUEUE=queue_name,
        )
        base = devapp.start_host(home, settings, port=stack.free_port(), name="soak-host")
        keys = HostKeys.load_or_create(home / "soak-host")
        webhook = f"{base}/runtime/webhooks/eventgrid?functionName=on_image_event&code={keys.eventgrid}"
        devapp.wire_events(devapp.arm_clients(endpoints), registry, webhook, name="soak")
        pids = json.loads((home / "pids.json").read_text())
        connection = str(endpoints["storageConnectionString"])
        table = TableClient.from_connection_string(connection, table_name)
        queue = QueueClient.from_connection_string(connection, queue_name)

        total = int(args.rate * args.seconds)
        build_smoke_image(clients, name)
        plain = front(endpoints, clients, registry.login_server, "sample/hello-world")
        smoke = front(endpoints, clients, registry.login_server, "smoke/app")
        smoke_manifests = manifests(smoke, "smoke/app", total // 20 + 1)
        pushed: dict[str, float] = {}
        done: dict[str, float] = {}
        stop = threading.Event()
        stopped_at = [0.0]

        def watch() -> None:  # once a second: the verdicts written since the last look (by Timestamp)
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
            # Until every push has its verdict (`done` may hold more: the smoke image built first has one).
            while not stop.is_set() or any(digest not in done for digest in list(pushed)):
                looked = dt.datetime.now(dt.UTC)
                query = "PolicyVersion eq 'soak.1' and Timestamp ge @since"
                with contextlib.suppress(ResourceNotFoundError):
                    for entity in table.query_entities(query, parameters={"since": since}):
                        if entity["Status"] in FINAL and entity["Digest"] not in done:
                            done[entity["Digest"]] = time.perf_counter()
                since = looked - dt.timedelta(seconds=2)  # overlap: clocks and commit order
                if stop.is_set() and time.perf_counter() - stopped_at[0] > 120:
                    return
                time.sleep(1)

        samples: list[Sample] = []

        def sample() -> None:  # every 5 s: memory of the host and the emulator, depth of the run queue
            while not stop.is_set():
                depth = int(queue.get_queue_properties().approximate_message_count or 0) if pushed else 0
                elapsed = time.perf_counter() - started
                samples.append(Sample(elapsed, rss_mib(pids["soak-host"]), rss_mib(pids["emulator"]), depth))
                stop.wait(5)

        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        threads = [threading.Thread(target=work, daemon=True) for work in (watch, sample)]
        for thread in threads:
            thread.start()
        next_report = started + 30

        def push(client: Any, repository: str, tag: str, body: bytes) -> None:
            sent = time.perf_counter()
            pushed[put(client, repository, tag, body)] = sent

        # Pushes are sent on schedule from a few threads, so a slow PUT does not lower the rate.
        pool = ThreadPoolExecutor(PUSHERS)
        try:
            for index, (tag, body) in enumerate(manifests(plain, "sample/hello-world", total)):
                due = started + index / args.rate
                time.sleep(max(0.0, due - time.perf_counter()))
                if index % 20 == 0:  # a sample runs its smoke test through ACR Tasks
                    pool.submit(push, smoke, "smoke/app", *next(smoke_manifests))
                else:
                    pool.submit(push, plain, "sample/hello-world", tag, body)
                if time.perf_counter() >= next_report and samples:
                    last = samples[-1]
                    print(
                        f"t={last.at:5.0f}s pushed={len(pushed)} verdicts={len(done)} "
                        f"host={last.host:.0f} MiB emulator={last.emulator:.0f} MiB queue={last.queue}",
                        flush=True,
                    )
                    next_report += 30
        except BaseException:  # interrupted: drop the pushes not yet sent
            pool.shutdown(cancel_futures=True)
            stop.set()
            raise
        pool.shutdown()
        elapsed = time.perf_counter() - started
        cpu = {name: spent - cpu_before[name] for name, spent in cpu_seconds(pids).items()}
        print(
            "CPU while pushing, ms per push: "
            + ", ".join(
                f"{name.replace('app', 'soak itself')} {seconds * 1000 / len(pushed):.1f}"
                for name, seconds in cpu.items()
            )
            + f" (this process pushes and watches; {os.cpu_count()} cores = {os.cpu_count()}000 ms a second)"
        )
        stopped_at[0] = time.perf_counter()
        stop.set()
        for thread in threads:
            thread.join()
        for digest in [d for d in pushed if d not in done][:5]:  # what became of a missing one
            stored = list(table.query_entities("Digest eq @d", parameters={"d": digest}))
            found = [(e["RowKey"], e["Status"], e.get("Tag"), e.get("RunId")) for e in stored] or "no verdict"
            print(f"missing {digest}: {found}")
        stack.stop_service(home, "soak-host")
        return report(args, pushed, done, samples, started, elapsed)


@dataclass
class Sample:
    at: float  # seconds since the first push
    host: float  # MiB
    emulator: float  # MiB
    queue: int


def report(
    args: argparse.Namespace,
    pushed: dict[str, float],
    done: dict[str, float],
    samples: list[Sample],
    started: float,
    elapsed: float,
) -> int:
    latencies = [(done[d] - t) * 1000 for d, t in pushed.items() if d in done]
    missing = sum(1 for digest in pushed if digest not in done)
    print(
        f"soak: {len(pushed)} pushes in {elapsed:.0f}s ({len(pushed) / elapsed:.1f}/s), "
        f"{len(pushed) - missing} verdicts, {missing} missing; push → verdict median "
        f"{statistics.median(latencies):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms "
        "(1 s polling granularity)"
    )
    minutes: dict[int, list[float]] = {}
    for digest, at in pushed.items():
        if digest in done:
            minutes.setdefault(int((at - started) // 60), []).append((done[digest] - at) * 1000)
    for minute, values in sorted(minutes.items()):
        print(
            f"  minute {minute + 1}: {len(values)} verdicts, median {statistics.median(values):.0f} ms, "
            f"p95 {percentile(values, 0.95):.0f} ms"
        )
    broken = []
    if missing:
        broken.append(f"{missing} pushes have no verdict 120 s after the last push")
    warm = [s for s in samples if s.at >= 30] or samples
    if warm:
        host, emulator = warm[-1].host - warm[0].host, warm[-1].emulator - warm[0].emulator
        deepest = max(s.queue for s in samples)
        print(
            f"memory after warm-up (t={warm[0].at:.0f}s → {warm[-1].at:.0f}s): host {warm[0].host:.0f} → "
            f"{warm[-1].host:.0f} MiB, emulator {warm[0].emulator:.0f} → {warm[-1].emulator:.0f} MiB; "
            f"max run-queue depth {deepest} ({len(samples)} samples, every 5 s)"
        )
        for what, growth in (("host", host), ("emulator", emulator)):
            if growth > args.max_growth:
                broken.append(f"{what} memory grew {growth:.0f} MiB (bound {args.max_growth:.0f})")
        if deepest > args.max_queue:
            broken.append(f"the run queue held {deepest} messages (bound {args.max_queue})")
    if len(minutes) >= 2:
        first, last = minutes[min(minutes)], minutes[max(minutes)]
        bound = 2 * percentile(first, 0.95) + 100
        if percentile(last, 0.95) > bound:
            broken.append(f"last minute's p95 {percentile(last, 0.95):.0f} ms > {bound:.0f} ms")
    summary(
        f"Soak: {len(pushed) / elapsed:.0f} pushes/s for {elapsed / 60:.0f} min through the local host "
        "(1 in 20 with a smoke run)",
        f"{len(pushed) - missing} verdicts, {missing} missing",
        f"{len(pushed)} pushes",
        f"push → verdict median {statistics.median(latencies):.0f} ms, p95 "
        f"{percentile(latencies, 0.95):.0f} ms (1 s polling); "
        + ("bounds held" if not broken else "BOUND BROKEN: " + "; ".join(broken)),
    )
    for line in broken:
        print(f"BOUND BROKEN: {line}")
    if not broken:
        print("bounds held: no verdict missing, memory and queue depth bounded, latency stable")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
