"""An ACR Tasks run reaches its own registry's login server and nothing else on the executor's machine.

A caller allowed to build in one registry must not read docker-registry's unauthenticated backend (every
registry's catalog, tags and blobs, quarantined images included) through `ADD <url>`, a `RUN` step or a
`cmd` container, nor any other local service (Azurite, the emulator, the app's host); builds, pushes and
runs of its own registry keep working.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.storage.blob import BlobClient

from shared.tasks import docker_build_request, pack_context
from tests.support.hostile import Target
from tests.support.stack import Devstack, group_of
from tests.support.tasks import log_of, schedule, wait_for_run, yaml_request

ECHO = "hostile/echo:v1"  # the package's echo_image fixture: busybox, built and pushed by a run
FAILED_BUILD = "failed during build, err: exit status 125"


def local_services(devstack: Devstack, target: Target) -> dict[str, str]:
    """An unauthenticated URL of each service on the executor's loopback."""
    storage = dict(
        p.split("=", 1) for p in str(devstack.endpoints["storageConnectionString"]).split(";") if p
    )
    return {
        "registry backend": f"{devstack.endpoints['registryBackend']}/v2/_catalog",
        "azurite": f"{storage['BlobEndpoint']}?comp=list",
        "identity endpoint": str(devstack.endpoints["identityEndpoint"]),
        "app host": f"{target.api.url}/api/health",
    }


def build_context(tmp_path: Path, dockerfile: str, busybox: bool = False) -> Path:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    if busybox:
        shutil.copy("/bin/busybox", tmp_path / "busybox")
    return tmp_path


def build(tasks_client: Any, registry: Any, context: Path, image: str) -> tuple[Any, str]:
    upload = tasks_client.registries.get_build_source_upload_url(group_of(registry.id), registry.name)
    BlobClient.from_blob_url(upload.upload_url).upload_blob(pack_context(context))
    run = schedule(tasks_client, registry, docker_build_request(str(upload.relative_path), [image]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    return finished, log_of(tasks_client, registry, run.run_id)[0]


def connect(url: str) -> str:
    """A busybox command that exits 0 only if a TCP connection to the URL's host and port opens (busybox's
    wget crashes in a FROM-scratch image; its nc does not)."""
    parts = urlsplit(url)
    return f"/bin/busybox nc -w 3 {parts.hostname} {parts.port} </dev/null"


@pytest.mark.parametrize("service", ["registry backend", "azurite", "identity endpoint", "app host"])
def test_add_of_a_local_service_fails_the_build(
    devstack: Devstack, target: Target, tasks_client: Any, registry: Any, tmp_path: Path, service: str
) -> None:
    url = local_services(devstack, target)[service]
    context = build_context(tmp_path, f"FROM scratch\nADD {url} /stolen\n")
    finished, log = build(tasks_client, registry, context, "isolation/add:v1")
    assert (finished.status, finished.run_error_message) == ("Failed", FAILED_BUILD), log
    assert "connect: connection refused" in log
    assert finished.output_images in (None, [])


def test_a_run_step_reaches_its_registry_only(
    devstack: Devstack, target: Target, tasks_client: Any, registry: Any, echo_image: str, tmp_path: Path
) -> None:
    """FROM the run's own registry works (pulled through its login server); a RUN step connects to that
    login server, and to no other local service."""
    own = connect(f"https://{registry.login_server}/")
    refused = " && ".join(f"! {connect(url)}" for url in local_services(devstack, target).values())
    script = f"{own} && {refused}".replace('"', '\\"')
    context = build_context(
        tmp_path, f'FROM {registry.login_server}/{ECHO}\nRUN ["/bin/busybox", "sh", "-c", "{script}"]\n'
    )
    finished, log = build(tasks_client, registry, context, "isolation/run:v1")
    assert finished.status == "Succeeded", log
    assert log.count("Connection refused") == len(local_services(devstack, target)), log
    [pushed] = finished.output_images
    assert (pushed.repository, pushed.tag) == ("isolation/run", "v1")


def test_a_cmd_container_reaches_its_registry_only(
    devstack: Devstack, target: Target, tasks_client: Any, registry: Any, echo_image: str
) -> None:
    image = f"$Registry/{ECHO}"
    for name, url in local_services(devstack, target).items():
        task = f"steps:\n  - cmd: {image} sh -c '{connect(url)}'\n    entryPoint: /bin/busybox\n"
        run = schedule(tasks_client, registry, yaml_request(task))
        finished = wait_for_run(tasks_client, registry, run.run_id)
        log = log_of(tasks_client, registry, run.run_id)[0]
        assert (finished.status, finished.run_error_message) == (
            "Failed",
            "failed during container, err: exit status 1",
        ), (name, log)
        assert "Connection refused" in log, (name, log)
    # Its own login server it does reach, as an ACR Tasks container reaches its registry.
    own = connect(f"https://{registry.login_server}/")
    task = f"steps:\n  - cmd: {image} sh -c '{own}'\n    entryPoint: /bin/busybox\n"
    run = schedule(tasks_client, registry, yaml_request(task))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Succeeded", log_of(tasks_client, registry, run.run_id)[0]
