"""`make soak`: a sustained push rate through the whole chain, watching latency, memory and queue depth.

Default: 20 pushes/s for 5 minutes, every 20th push to a repository whose rule runs a smoke run.
`python -m benchmarks.soak --rate 20 --seconds 300`. Prints a line every 30 s and a summary; no asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from benchmarks.__main__ import GROUP, Clients, acr_exercise, devstack
from benchmarks.chain import FINAL, front, manifests, percentile, put
from devstack import devapp, stack
from devstack.host.keys import HostKeys

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


def tree_rss(pid: int) -> float:
    """Resident memory of a process and its children (the host runs the app in-process)."""
    total = rss_mib(pid)
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((child / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    total += rss_mib(int(child.name))
    return total


def build_smoke_image(clients: Clients, name: str) -> None:
    from azure.storage.blob import BlobClient

    from benchmarks.__main__ import hello_context, wait
    from shared.tasks import docker_build_request, pack_context

    upload = clients.tasks.registries.get_build_source_upload_url(GROUP, name)
    BlobClient.from_blob_url(str(upload.upload_url)).upload_blob(pack_context(hello_context()))
    body = docker_build_request(str(upload.relative_path), ["smoke/app:v1"])
    wait(clients, name, clients.tasks.registries.schedule_run(GROUP, name, body).run_id)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--rate", type=float, default=20.0, help="pushes per second")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to push")
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

        def watch() -> None:  # one query per second finds every newly final verdict
            while not stop.is_set() or len(done) < len(pushed):
                with contextlib.suppress(ResourceNotFoundError):
                    for entity in table.query_entities("PolicyVersion eq 'soak.1'"):
                        if entity["Status"] in FINAL and entity["Digest"] not in done:
                            done[entity["Digest"]] = time.perf_counter()
                if stop.is_set() and time.perf_counter() - stop_time[0] > 120:
                    return
                time.sleep(1)

        stop_time = [0.0]
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        samples: list[tuple[float, float, float, int]] = []
        next_report = started + 30
        for index, (tag, body) in enumerate(manifests(plain, "sample/hello-world", total)):
            due = started + index / args.rate
            time.sleep(max(0.0, due - time.perf_counter()))
            if index % 20 == 0:  # a sample runs its smoke test through ACR Tasks
                smoke_tag, smoke_body = next(smoke_manifests)
                digest = put(smoke, "smoke/app", smoke_tag, smoke_body)
            else:
                digest = put(plain, "sample/hello-world", tag, body)
            pushed[digest] = time.perf_counter()
            if time.perf_counter() >= next_report:
                depth = int(queue.get_queue_properties().approximate_message_count or 0) if index else 0
                sample = (
                    time.perf_counter() - started,
                    tree_rss(pids["soak-host"]),
                    tree_rss(pids["emulator"]),
                    depth,
                )
                samples.append(sample)
                print(
                    f"t={sample[0]:5.0f}s pushed={len(pushed)} verdicts={len(done)} "
                    f"host={sample[1]:.0f} MiB emulator={sample[2]:.0f} MiB queue={depth}",
                    flush=True,
                )
                next_report += 30
        elapsed = time.perf_counter() - started
        stop_time[0] = time.perf_counter()
        stop.set()
        watcher.join()
        latencies = [(done[d] - t) * 1000 for d, t in pushed.items() if d in done]
        print(
            f"soak: {len(pushed)} pushes in {elapsed:.0f}s ({len(pushed) / elapsed:.1f}/s), "
            f"{len(done)} verdicts, {len(pushed) - len(done)} missing; push → verdict median "
            f"{statistics.median(latencies):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms "
            "(1 s polling granularity)"
        )
        if samples:
            print(
                f"memory: host {samples[0][1]:.0f} → {samples[-1][1]:.0f} MiB, emulator "
                f"{samples[0][2]:.0f} → {samples[-1][2]:.0f} MiB; "
                f"max queue depth {max(s[3] for s in samples)}"
            )
        stack.stop_service(home, "soak-host")


if __name__ == "__main__":
    main()
