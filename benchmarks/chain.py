"""Latency through the whole chain: push → Event Grid delivery, and push → stored verdict.

`python -m benchmarks.chain` (make bench runs it). Pushes are manifest PUTs through the registry
front (the last step of any push), each a distinct manifest, one at a time, timed from sending the PUT.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks.__main__ import GROUP, Clients, acr_exercise, devstack
from benchmarks.summary import save_samples, summary
from devstack import devapp, stack
from devstack.host.keys import HostKeys

FINAL = ("passed", "failed", "superseded")
POLICY = 'version: "bench.chain"\ndefault:\n  smokeRun: {enabled: false}\n  onPass: none\n'


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def front(
    endpoints: dict[str, Any],
    clients: Clients,
    login_server: str,
    repository: str,
    actions: str = "pull,push",
) -> httpx.Client:
    """A client of the registry front holding an access token for `repository` (ACR's token flow)."""
    from azure.identity import ManagedIdentityCredential

    aad = ManagedIdentityCredential().get_token(f"{clients.arm}/.default").token
    context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
    client = httpx.Client(base_url=f"https://{login_server}", verify=context, timeout=30)
    form = {"grant_type": "access_token", "service": login_server, "access_token": aad}
    refresh = client.post("/oauth2/exchange", data=form).json()["refresh_token"]
    token = client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": login_server,
            "scope": f"repository:{repository}:{actions}",
            "refresh_token": refresh,
        },
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def manifests(client: httpx.Client, repository: str, count: int) -> Iterator[tuple[str, bytes]]:
    base = client.get(
        f"/v2/{repository}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    ).json()
    for index in range(count):
        yield f"p{uuid.uuid4().hex[:10]}", json.dumps({**base, "annotations": {"bench": str(index)}}).encode()


def put(client: httpx.Client, repository: str, tag: str, body: bytes) -> str:
    response = client.put(
        f"/v2/{repository}/manifests/{tag}",
        content=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    response.raise_for_status()
    return str(response.headers["docker-content-digest"])


@contextmanager
def receiver() -> Iterator[tuple[str, dict[str, float]]]:
    """A webhook that answers the validation handshake and timestamps each event by subject."""
    arrivals: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            now = time.perf_counter()
            body = b""
            if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                body = json.dumps({"validationResponse": events[0]["data"]["validationCode"]}).encode()
            for event in events:
                arrivals.setdefault(event.get("subject", ""), now)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", arrivals
    finally:
        server.shutdown()


def event_latency(
    endpoints: dict[str, Any], clients: Clients, registry: Any, pushes: int = 120
) -> tuple[list[float], str]:
    """Push → delivered ImagePushed in ms, and a note on the PUT's own share."""
    dev = devapp.arm_clients(endpoints)
    with receiver() as (url, arrivals):
        devapp.wire_events(dev, registry, url, name="bench-receiver")
        client = front(endpoints, clients, registry.login_server, "sample/hello-world")
        latencies, puts, after = [], [], []
        for tag, body in manifests(client, "sample/hello-world", pushes):
            # Timed from sending the PUT: docker-registry notifies while it answers, so the event can
            # arrive before the PUT's response does (timed from the response, it would be negative).
            sent = time.perf_counter()
            put(client, "sample/hello-world", tag, body)
            answered = time.perf_counter()
            subject = f"sample/hello-world:{tag}"
            deadline = answered + 30
            while subject not in arrivals and time.perf_counter() < deadline:
                time.sleep(0.001)
            arrived = arrivals.get(subject, deadline)
            latencies.append((arrived - sent) * 1000)
            puts.append((answered - sent) * 1000)
            after.append((arrived - answered) * 1000)
        dev["eventgrid"].system_topic_event_subscriptions.begin_delete(
            registry.id.split("/")[4], f"{registry.name}-events", "bench-receiver"
        ).result()
    early = sum(1 for value in after if value < 0)
    note = (
        f"the PUT itself: median {statistics.median(puts):.1f} ms; after its response: median "
        f"{statistics.median(after):.1f} ms, {early} of {len(after)} events before it"
    )
    print(
        f"push → delivered ImagePushed: median {statistics.median(latencies):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms over {len(latencies)} pushes, from the manifest PUT "
        f"sent ({note})"
    )
    return latencies, note


def verdict_latency(
    home: Path, endpoints: dict[str, Any], clients: Clients, registry: Any, pushes: int = 200
) -> list[float]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    with tempfile.TemporaryDirectory() as work:
        policy = Path(work) / "policy.yaml"
        policy.write_text(POLICY)
        table_name = f"bench{uuid.uuid4().hex[:8]}"
        settings = devapp.app_settings(
            endpoints, [registry.id], DOCKMASTER_POLICY_PATH=str(policy), DOCKMASTER_VERDICTS_TABLE=table_name
        )
        base = devapp.start_host(home, settings, port=stack.free_port(), name="bench-host")
        keys = HostKeys.load_or_create(home / "bench-host")
        webhook = f"{base}/runtime/webhooks/eventgrid?functionName=on_image_event&code={keys.eventgrid}"
        devapp.wire_events(devapp.arm_clients(endpoints), registry, webhook, name="bench-app")
        table = TableClient.from_connection_string(str(endpoints["storageConnectionString"]), table_name)
        client = front(endpoints, clients, registry.login_server, "sample/hello-world")
        latencies = []
        for tag, body in manifests(client, "sample/hello-world", pushes):
            sent = time.perf_counter()
            digest = put(client, "sample/hello-world", tag, body)
            deadline = time.perf_counter() + 30
            partition = f"{registry.name.lower()}|sample~hello-world"
            while time.perf_counter() < deadline:
                with contextlib.suppress(ResourceNotFoundError):  # not there yet, or no table yet
                    if table.get_entity(partition, f"{digest}|bench.chain")["Status"] in FINAL:
                        break
                time.sleep(0.002)
            latencies.append((time.perf_counter() - sent) * 1000)
        stack.stop_service(home, "bench-host")
    print(
        f"push → stored verdict (no smoke run): median {statistics.median(latencies):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms over {len(latencies)} pushes, from the manifest PUT sent"
    )
    return latencies


def summarize(label: str, latencies: list[float], note: str = "") -> None:
    median, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    notes = f"{len(latencies)} pushes one at a time, from the manifest PUT sent" + (
        f"; {note}" if note else ""
    )
    summary(label, f"median {median:.1f} ms, p95 {p95:.1f} ms", "—", notes)


def main() -> None:
    with devstack() as endpoints:
        clients = Clients(endpoints)
        _, name, _ = acr_exercise(clients)
        registry = clients.registries.registries.get(GROUP, name)
        events, note = event_latency(endpoints, clients, registry)
        verdicts = verdict_latency(Path(str(endpoints["home"])), endpoints, clients, registry)
    summarize("Push → ImagePushed delivered to a webhook", events, note)
    summarize("Push → verdict stored by function_app (no smoke run)", verdicts)
    save_samples("chain", {"event_ms": events, "verdict_ms": verdicts})


if __name__ == "__main__":
    main()
