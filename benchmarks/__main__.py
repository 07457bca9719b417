"""Run every benchmark against a fresh devstack and print figures and ratios."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from azure.core.pipeline.policies import SansIOHTTPPolicy

from benchmarks.summary import summary
from devstack import stack
from devstack.executor import RUNC, ULIMITS
from shared.tasks import TERMINAL_STATUSES, docker_build_request, encoded_cmd_request, pack_context

GROUP = "az204-acr-rg"


@contextmanager
def devstack() -> Iterator[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="dockmaster-bench-"))
    endpoints = stack.up(home)
    os.environ["IDENTITY_ENDPOINT"] = str(endpoints["identityEndpoint"])
    os.environ["IDENTITY_HEADER"] = str(endpoints["identityHeader"])
    os.environ["REQUESTS_CA_BUNDLE"] = str(endpoints["caBundle"])
    try:
        yield endpoints
    finally:
        stack.down(home)
        shutil.rmtree(home, ignore_errors=True)


class Clients:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        from azure.identity import ManagedIdentityCredential
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient
        from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient
        from azure.mgmt.resource.resources import ResourceManagementClient

        arm = str(endpoints["armEndpoint"])
        kwargs: dict[str, Any] = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
        subscription = str(endpoints["subscriptionId"])
        self.credential = ManagedIdentityCredential()
        self.groups = ResourceManagementClient(self.credential, subscription, **kwargs)
        self.registries = ContainerRegistryManagementClient(self.credential, subscription, **kwargs)
        self.tasks = ContainerRegistryTasksMgmtClient(self.credential, subscription, **kwargs)
        self.arm = arm


def wait(clients: Clients, registry: str, run_id: str, poll: float = 0.05) -> Any:
    while True:
        run = clients.tasks.runs.get(GROUP, registry, run_id)
        if run.status in TERMINAL_STATUSES:
            return run
        time.sleep(poll)


def hello_context() -> Path:
    context = Path(tempfile.mkdtemp(prefix="hello-"))
    shutil.copy("/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'ENTRYPOINT ["/bin/busybox", "echo", "Hello from Dockmaster"]\n'
    )
    return context


def acr_exercise(clients: Clients) -> tuple[float, str, str]:
    from azure.containerregistry import ContainerRegistryClient
    from azure.storage.blob import BlobClient

    started = time.perf_counter()
    clients.groups.resource_groups.create_or_update(GROUP, {"location": "eastus", "tags": {"purpose": "lab"}})
    name = f"bench{uuid.uuid4().hex[:8]}"
    registry = clients.registries.registries.begin_create(
        GROUP, name, {"location": "eastus", "sku": {"name": "Basic"}}
    ).result()
    upload = clients.tasks.registries.get_build_source_upload_url(GROUP, name)
    BlobClient.from_blob_url(str(upload.upload_url)).upload_blob(pack_context(hello_context()))
    build = clients.tasks.registries.schedule_run(
        GROUP, name, docker_build_request(str(upload.relative_path), ["sample/hello-world:v1"])
    )
    built = wait(clients, name, build.run_id)
    data = ContainerRegistryClient(
        f"https://{registry.login_server}", clients.credential, audience=clients.arm
    )
    list(data.list_repository_names())
    list(data.list_tag_properties("sample/hello-world"))
    run = clients.tasks.registries.schedule_run(
        GROUP, name, encoded_cmd_request("$Registry/sample/hello-world:v1")
    )
    wait(clients, name, run.run_id)
    clients.tasks.runs.get_log_sas_url(GROUP, name, run.run_id)
    elapsed = time.perf_counter() - started
    return elapsed, name, built.output_images[0].digest


def executor_overhead(
    clients: Clients, endpoints: dict[str, Any], name: str, digest: str, rounds: int = 7
) -> None:
    backend = str(endpoints["registryBackend"]).split("://", 1)[1]
    reference = f"{backend}/{name}/sample/hello-world@{digest}"
    bare_args = [
        "podman",
        "--runtime",
        RUNC,
        "run",
        "--rm",
        *ULIMITS,
        "--tls-verify=false",
        "--pull=missing",
        reference,
    ]
    subprocess.run(bare_args, check=True, capture_output=True)  # warm the local image store
    bare, tasks = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(bare_args, check=True, capture_output=True)
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        run = clients.tasks.registries.schedule_run(
            GROUP, name, encoded_cmd_request(f"$Registry/sample/hello-world@{digest}")
        )
        finished = wait(clients, name, run.run_id, poll=0.02)
        assert finished.status == "Succeeded", finished.run_error_message
        tasks.append(time.perf_counter() - started)
    bare_median, tasks_median = statistics.median(bare), statistics.median(tasks)
    print(f"bare podman run (median of {rounds}):       {bare_median * 1000:8.1f} ms")
    print(f"ACR Tasks run, schedule→Succeeded (median):  {tasks_median * 1000:8.1f} ms")
    print(f"executor overhead ratio (tasks / bare):      {tasks_median / bare_median:8.2f}x")
    summary(
        "Smoke run: ACR Tasks run by digest (schedule → Succeeded) vs bare `podman run`",
        f"{tasks_median * 1000:.0f} ms",
        f"{bare_median * 1000:.0f} ms",
        f"{tasks_median / bare_median:.2f}x (median of {rounds})",
    )


def group_get_rate(endpoints: dict[str, Any], seconds: float = 5.0, threads: int = 4) -> None:
    import ssl

    token = httpx.get(
        str(endpoints["identityEndpoint"]),
        params={"api-version": "2019-08-01", "resource": str(endpoints["armEndpoint"])},
        headers={"X-IDENTITY-HEADER": str(endpoints["identityHeader"])},
    ).json()["access_token"]
    url = f"{endpoints['armEndpoint']}/subscriptions/{endpoints['subscriptionId']}/resourcegroups/{GROUP}"
    context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
    counts = [0] * threads
    errors = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        with httpx.Client(verify=context, headers={"Authorization": f"Bearer {token}"}) as client:
            while time.perf_counter() < deadline:
                response = client.get(url, params={"api-version": "2025-04-01"})
                counts[index] += 1
                errors[index] += response.status_code != 200

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    print(
        f"emulator resource-group GETs: {sum(counts) / elapsed:8.0f} req/s "
        f"({threads} keep-alive clients, {elapsed:.1f}s, {sum(errors)} non-200)"
    )


class CountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Counts the HTTP requests an SDK client really sends (retries and auth included)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()  # clients send from several threads

    def on_request(self, request: Any) -> None:
        with self._lock:
            self.count += 1


def tag_listing_requests(clients: Clients, endpoints: dict[str, Any], name: str, tags: int = 999) -> None:
    """Requests azure-containerregistry makes to list 1,000 tags (v1 plus 999 more; token flow included)."""
    from azure.containerregistry import ContainerRegistryClient

    registry = clients.registries.registries.get(GROUP, name)
    backend = str(endpoints["registryBackend"])
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with httpx.Client(base_url=backend) as raw:
        manifest = raw.get(f"/v2/{name}/sample/hello-world/manifests/v1", headers=accept)
        media_type = manifest.headers["content-type"]
        for index in range(tags):
            raw.put(
                f"/v2/{name}/sample/hello-world/manifests/t{index:04d}",
                content=manifest.content,
                headers={"Content-Type": media_type},
            ).raise_for_status()

    counter = CountingPolicy()
    data = ContainerRegistryClient(
        f"https://{registry.login_server}",
        clients.credential,
        audience=clients.arm,
        per_retry_policies=[counter],
    )
    started = time.perf_counter()
    listed = sum(1 for _ in data.list_tag_properties("sample/hello-world"))
    elapsed = time.perf_counter() - started
    print(
        f"list {listed} tags with azure-containerregistry: {counter.count} requests, {elapsed * 1000:.0f} ms"
    )


def upload_throughput(clients: Clients, endpoints: dict[str, Any], name: str, megabytes: int = 256) -> None:
    """Blob upload through the registry front versus straight to docker-registry."""
    import hashlib
    import ssl

    from azure.identity import ManagedIdentityCredential

    registry = clients.registries.registries.get(GROUP, name)
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(megabytes):
        digest.update(chunk)
    blob_digest = f"sha256:{digest.hexdigest()}"

    def body() -> Iterator[bytes]:
        for _ in range(megabytes):
            yield chunk

    def upload(client: httpx.Client, repository: str) -> float:
        started = time.perf_counter()
        start = client.post(f"/v2/{repository}/blobs/uploads/")
        start.raise_for_status()
        location = start.headers["location"]
        separator = "&" if "?" in location else "?"
        done = client.put(
            f"{location}{separator}digest={blob_digest}",
            content=body(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(megabytes << 20)},
        )
        done.raise_for_status()
        return time.perf_counter() - started

    with httpx.Client(base_url=str(endpoints["registryBackend"]), timeout=300) as direct:
        direct_seconds = upload(direct, f"{name}/throughput/direct")
    service = str(registry.login_server)
    aad = ManagedIdentityCredential().get_token(f"{clients.arm}/.default").token
    context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
    with httpx.Client(base_url=f"https://{service}", verify=context, timeout=300) as front:
        refresh = front.post(
            "/oauth2/exchange", data={"grant_type": "access_token", "service": service, "access_token": aad}
        ).json()["refresh_token"]
        token = front.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "service": service,
                "scope": "repository:throughput/front:pull,push",
                "refresh_token": refresh,
            },
        ).json()["access_token"]
        front.headers["Authorization"] = f"Bearer {token}"
        front_seconds = upload(front, "throughput/front")
    print(
        f"blob upload, {megabytes} MiB straight to docker-registry: {megabytes / direct_seconds:8.1f} MiB/s"
    )
    print(f"blob upload, {megabytes} MiB through the registry front: {megabytes / front_seconds:8.1f} MiB/s")
    print(f"front / direct throughput ratio:                 {direct_seconds / front_seconds:8.2f}")
    summary(
        f"Blob upload, {megabytes} MiB: registry front vs straight to docker-registry",
        f"{megabytes / front_seconds:.0f} MiB/s",
        f"{megabytes / direct_seconds:.0f} MiB/s",
        f"{direct_seconds / front_seconds:.2f}x throughput",
    )


def main() -> None:
    with devstack() as endpoints:
        clients = Clients(endpoints)
        elapsed, name, digest = acr_exercise(clients)
        print(f"ACR exercise (steps 1–5) end to end:          {elapsed * 1000:8.1f} ms")
        summary("AZ-204 ACR exercise, steps 1–5, through the SDK clients", f"{elapsed:.1f} s", "—", "")
        executor_overhead(clients, endpoints, name, digest)
        group_get_rate(endpoints)
        tag_listing_requests(clients, endpoints, name)
        upload_throughput(clients, endpoints, name)


if __name__ == "__main__":
    main()
