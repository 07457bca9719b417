"""ACR Tasks quick runs through azure-mgmt-containerregistrytasks: real builds and runs."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from shared.tasks import docker_build_request, encoded_cmd_request
from tests.support.stack import MAX_SOURCE_BYTES, error_code, group_of, new_registry
from tests.support.tasks import build, log_of, schedule, upload, wait_for_run, yaml_request
from tests.support.verification import app_verifier, pushed, smoke_run_verdict

# How ACR Tasks reports a step the registry refused (the engine's exit status), and the refusals' texts.
DENIED_RUN = "failed during container, err: exit status 125"
DENIED_PUSH = "failed during push, err: exit status 125"
UNAUTHORIZED = "unauthorized: authentication required"


def refused_with(tasks_client: Any, registry: Any, run_id: str, error: str) -> tuple[Any, str]:
    """Run `run_id` once it has ended, which must be Failed with `error`, and its log."""
    finished = wait_for_run(tasks_client, registry, run_id)
    log = log_of(tasks_client, registry, run_id)[0]
    assert (finished.status, finished.run_error_message) == ("Failed", error), log
    return finished, log


@pytest.fixture(scope="module")
def hello_image(tasks_client: Any, registry: Any, hello_context: Path) -> str:
    source = upload(tasks_client, registry, hello_context)
    run = schedule(tasks_client, registry, docker_build_request(source, ["tests/hello:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Succeeded", log_of(tasks_client, registry, run.run_id)[0]
    return f"{registry.login_server}/tests/hello:v1"


def test_build_pushes_with_digest(tasks_client: Any, registry: Any, hello_context: Path) -> None:
    source = upload(tasks_client, registry, hello_context)
    run = schedule(
        tasks_client, registry, docker_build_request(source, ["tests/built:v2", "tests/built:latest"])
    )
    assert run.status == "Queued"
    assert run.run_type == "QuickRun"
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Succeeded"
    assert finished.start_time is not None
    assert finished.finish_time >= finished.start_time
    images = {(i.repository, i.tag): i.digest for i in finished.output_images}
    assert set(images) == {("tests/built", "v2"), ("tests/built", "latest")}
    assert all(d.startswith("sha256:") for d in images.values())
    log, metadata = log_of(tasks_client, registry, run.run_id)
    assert metadata == {"Complete": "succeeded"}
    assert f"Run ID: {run.run_id} was successful" in log


def test_a_run_sees_only_the_images_it_built(tasks_client: Any, registry: Any, hello_context: Path) -> None:
    """Every ACR Tasks run has a machine of its own: an image another run built (and did not push) is not
    there to push. When runs shared one image store, a run's cleanup also removed images other runs had
    just built, which failed their push or build ("image not known") under load."""
    source = upload(tasks_client, registry, hello_context)
    built = schedule(tasks_client, registry, docker_build_request(source, ["tests/private:v1"], push=False))
    assert wait_for_run(tasks_client, registry, built.run_id).status == "Succeeded"
    push_only = schedule(
        tasks_client, registry, yaml_request("steps:\n  - push: ['$Registry/tests/private:v1']\n")
    )
    finished = wait_for_run(tasks_client, registry, push_only.run_id)
    assert (finished.status, finished.run_error_message) == (
        "Failed",
        "failed during push, err: exit status 125",
    )
    assert "image not known" in log_of(tasks_client, registry, push_only.run_id)[0]


def test_failed_build_is_failed_with_its_log(tasks_client: Any, registry: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY does-not-exist /x\n")
    source = upload(tasks_client, registry, tmp_path)
    run = schedule(tasks_client, registry, docker_build_request(source, ["tests/broken:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert "exit status" in finished.run_error_message
    log, metadata = log_of(tasks_client, registry, run.run_id)
    assert metadata == {"Complete": "failed"}
    assert "does-not-exist" in log
    assert finished.output_images in (None, [])


def test_cmd_exit_status_fails_the_run(tasks_client: Any, registry: Any, hello_image: str) -> None:
    image = hello_image.replace(registry.login_server, "$Registry")
    passing = f"steps:\n  - cmd: {image} sh -c 'test $X = 1'\n    entryPoint: /bin/busybox\n    env: [X=1]\n"
    run = schedule(tasks_client, registry, yaml_request(passing))
    assert wait_for_run(tasks_client, registry, run.run_id).status == "Succeeded", log_of(
        tasks_client, registry, run.run_id
    )[0]
    failing = f"steps:\n  - cmd: {image} sh -c 'exit 3'\n    entryPoint: /bin/busybox\n"
    run = schedule(tasks_client, registry, yaml_request(failing))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert finished.run_error_message.endswith("exit status 3")


def test_step_timeout_ends_in_timeout(tasks_client: Any, registry: Any, hello_image: str) -> None:
    task = f"steps:\n  - cmd: {hello_image} sleep 60\n    entryPoint: /bin/busybox\n    timeout: 2\n"
    run = schedule(tasks_client, registry, yaml_request(task))
    finished = wait_for_run(tasks_client, registry, run.run_id, timeout=60)
    assert finished.status == "Timeout"
    _, metadata = log_of(tasks_client, registry, run.run_id)
    assert metadata == {"Complete": "timedout"}


def test_cancel_a_running_run(tasks_client: Any, registry: Any, hello_image: str) -> None:
    import time

    task = f"steps:\n  - cmd: {hello_image} sleep 60\n    entryPoint: /bin/busybox\n"
    run = schedule(tasks_client, registry, yaml_request(task))
    deadline = time.monotonic() + 30
    while tasks_client.runs.get(group_of(registry.id), registry.name, run.run_id).status != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    tasks_client.runs.cancel(group_of(registry.id), registry.name, run.run_id)
    finished = wait_for_run(tasks_client, registry, run.run_id, timeout=30)
    assert finished.status == "Canceled"


def test_runs_list_newest_first(tasks_client: Any, registry: Any, hello_image: str) -> None:
    first = schedule(tasks_client, registry, encoded_cmd_request(hello_image))
    second = schedule(tasks_client, registry, encoded_cmd_request(hello_image))
    listed = [r.run_id for r in tasks_client.runs.list(group_of(registry.id), registry.name, top=2)]
    assert listed == [second.run_id, first.run_id]
    for run in (first, second):
        assert wait_for_run(tasks_client, registry, run.run_id).status == "Succeeded"
    # The app sends no $filter; devstack refuses one rather than ignore it (FIDELITY: stricter).
    with pytest.raises(HttpResponseError) as caught:
        list(tasks_client.runs.list(group_of(registry.id), registry.name, filter="contains(runId, 'x')"))
    assert caught.value.status_code == 400


def test_unknown_image_fails_cleanly(tasks_client: Any, registry: Any) -> None:
    run = schedule(tasks_client, registry, encoded_cmd_request("$Registry/no/such:image"))
    assert wait_for_run(tasks_client, registry, run.run_id).status == "Failed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (yaml_request("steps: ["), "InvalidTaskDefinition"),
        ({**yaml_request("steps:\n  - cmd: x\n"), "timeout": 5}, "InvalidParameter"),
        ({"type": "FileTaskRunRequest", "taskFilePath": "a.yaml"}, "InvalidRunRequestType"),
        ({"type": "EncodedTaskRunRequest", "encodedTaskContent": "***"}, "InvalidParameter"),
        ({"type": "DockerBuildRequest", "imageNames": ["a:v1"]}, "InvalidParameter"),
    ],
)
def test_bad_run_requests(tasks_client: Any, registry: Any, body: dict[str, Any], code: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        schedule(tasks_client, registry, body)
    assert caught.value.status_code == 400
    assert error_code(caught.value) == code


def test_build_from_a_missing_upload_fails(tasks_client: Any, registry: Any) -> None:
    run = schedule(tasks_client, registry, docker_build_request("source/none/missing.tar.gz", ["tests/x:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert "upload it first" in finished.run_error_message


def test_oversize_source_fails_the_build(tasks_client: Any, registry: Any, tmp_path: Path) -> None:
    import os

    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
    (tmp_path / "blob").write_bytes(os.urandom(MAX_SOURCE_BYTES + 1024))  # random: gzip cannot shrink it
    source = upload(tasks_client, registry, tmp_path)
    run = schedule(tasks_client, registry, docker_build_request(source, ["tests/huge:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert "more than the limit" in finished.run_error_message


def upload_archive(tasks_client: Any, registry: Any, members: Iterator[tuple[tarfile.TarInfo, Any]]) -> str:
    """A tar.gz made member by member, streamed through gzip (a bomb never sits expanded in memory)."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        for member, content in members:
            archive.addfile(member, content)
    target = tasks_client.registries.get_build_source_upload_url(group_of(registry.id), registry.name)
    BlobClient.from_blob_url(target.upload_url).upload_blob(packed.getvalue())
    return str(target.relative_path)


def dockerfile_member() -> tuple[tarfile.TarInfo, Any]:
    text = b"FROM scratch\nCOPY Dockerfile /Dockerfile\n"
    member = tarfile.TarInfo("Dockerfile")
    member.size = len(text)
    return member, io.BytesIO(text)


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in chunks."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def test_a_gzip_bomb_fails_the_build_before_it_fills_the_disk(tasks_client: Any, registry: Any) -> None:
    expanded_limit = 10 * MAX_SOURCE_BYTES  # DEVSTACK_MAX_SOURCE_EXPANDED_BYTES' default
    bomb = tarfile.TarInfo("zeros")
    bomb.size = expanded_limit + 1

    def members() -> Iterator[tuple[tarfile.TarInfo, Any]]:
        yield dockerfile_member()
        yield bomb, Zeros(bomb.size)

    source = upload_archive(tasks_client, registry, members())
    run = schedule(tasks_client, registry, docker_build_request(source, ["tests/bomb:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert finished.run_error_message == (f"source expands to more than the limit of {expanded_limit} bytes")


def test_a_context_of_too_many_entries_fails_the_build(tasks_client: Any, registry: Any) -> None:
    entries_limit = 100_000  # DEVSTACK_MAX_SOURCE_ENTRIES' default

    def members() -> Iterator[tuple[tarfile.TarInfo, Any]]:
        yield dockerfile_member()
        for number in range(entries_limit):
            yield tarfile.TarInfo(f"empty/{number}"), None

    source = upload_archive(tasks_client, registry, members())
    run = schedule(tasks_client, registry, docker_build_request(source, ["tests/many:v1"]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Failed"
    assert finished.run_error_message == f"source has more than the limit of {entries_limit} entries"


@pytest.mark.parametrize("reference", ["digest", "tag"])
def test_a_quarantined_image_does_not_run(
    tasks_client: Any,
    registry: Any,
    hello_context: Path,
    credential: Any,
    devstack: Any,
    reference: str,
) -> None:
    """A digest with readEnabled=false cannot be pulled from the registry, by an ACR Tasks run either: the
    run's engine pulls through the registry with the run's credentials, and the step fails as the pull's."""
    from azure.containerregistry import ContainerRegistryClient

    repository = f"tests/quarantined-{reference}"
    digest = build(tasks_client, registry, hello_context, f"{repository}:v1")
    data = ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)
    data.update_manifest_properties(repository, digest, can_read=False)
    target = f"{repository}@{digest}" if reference == "digest" else f"{repository}:v1"
    run = schedule(tasks_client, registry, encoded_cmd_request(f"$Registry/{target} echo ran"))
    _, log = refused_with(tasks_client, registry, run.run_id, DENIED_RUN)
    assert "denied" in log
    assert "Hello from Dockmaster" not in log


def test_a_run_cannot_push_over_a_locked_tag(
    tasks_client: Any, registry: Any, hello_context: Path, credential: Any, devstack: Any
) -> None:
    """writeEnabled=false refuses a push of the tag to anyone, an ACR Tasks run included."""
    from azure.containerregistry import ContainerRegistryClient

    build(tasks_client, registry, hello_context, "tests/locked:v1")
    data = ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)
    data.update_tag_properties("tests/locked", "v1", can_write=False)
    again = schedule(
        tasks_client,
        registry,
        docker_build_request(upload(tasks_client, registry, hello_context), ["tests/locked:v1"]),
    )
    assert "denied" in refused_with(tasks_client, registry, again.run_id, DENIED_PUSH)[1]


# A registry in ABAC mode (roleAssignmentMode AbacRepositoryPermissions) ----------------------------------


@pytest.fixture(scope="module")
def abac_registry(resource_client: Any, acr_client: Any) -> Iterator[Any]:
    created = new_registry(
        resource_client, acr_client, "abac", roleAssignmentMode="AbacRepositoryPermissions"
    )
    assert created.role_assignment_mode == "AbacRepositoryPermissions"
    yield created
    resource_client.resource_groups.begin_delete(group_of(created.id), polling=False)


@pytest.fixture(scope="module")
def abac_image(tasks_client: Any, abac_registry: Any, hello_context: Path) -> str:
    build(tasks_client, abac_registry, hello_context, "tests/hello:v1")
    return f"{abac_registry.login_server}/tests/hello:v1"


def without_credentials(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "credentials"}


def denied(tasks_client: Any, registry: Any, body: dict[str, Any], error: str) -> None:
    run = schedule(tasks_client, registry, body)
    finished, log = refused_with(tasks_client, registry, run.run_id, error)
    assert UNAUTHORIZED in log
    assert finished.output_images in (None, [])


def test_an_abac_registry_refuses_a_run_without_the_callers_identity(
    tasks_client: Any, abac_registry: Any, abac_image: str
) -> None:
    body = encoded_cmd_request(abac_image)
    assert body["credentials"] == {"sourceRegistry": {"identity": "[caller]"}}, "what the app sends"
    allowed = schedule(tasks_client, abac_registry, body)
    assert wait_for_run(tasks_client, abac_registry, allowed.run_id).status == "Succeeded"
    for credentials in (
        None,  # no default data-plane access in ABAC mode
        {"sourceRegistry": {"loginMode": "Default"}},
        {"sourceRegistry": {"identity": "[system]"}},  # a quick run has no identity of its own
    ):
        request = without_credentials(body) | ({"credentials": credentials} if credentials else {})
        denied(tasks_client, abac_registry, request, DENIED_RUN)


def test_an_abac_build_without_the_callers_identity_cannot_push(
    tasks_client: Any, abac_registry: Any, hello_context: Path
) -> None:
    source = upload(tasks_client, abac_registry, hello_context)
    body = without_credentials(docker_build_request(source, ["tests/denied:v1"]))
    denied(tasks_client, abac_registry, body, DENIED_PUSH)


def test_the_callers_identity_needs_a_tasks_api_version_that_has_it(
    devstack: Any, credential: Any, abac_registry: Any, abac_image: str
) -> None:
    """SourceRegistryCredentials.identity is in the Tasks API from 2025-03-01-preview: sent with an older
    api-version it is not part of the request ACR reads, and the run has no identity."""
    from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient

    old = ContainerRegistryTasksMgmtClient(
        credential, devstack.subscription, api_version="2019-06-01-preview", **devstack.arm_kwargs()
    )
    denied(old, abac_registry, encoded_cmd_request(abac_image), DENIED_RUN)


def test_a_run_that_does_not_log_in_cannot_pull(tasks_client: Any, registry: Any, hello_image: str) -> None:
    body = {**encoded_cmd_request(hello_image), "credentials": {"sourceRegistry": {"loginMode": "None"}}}
    denied(tasks_client, registry, body, DENIED_RUN)
    legacy = schedule(tasks_client, registry, without_credentials(encoded_cmd_request(hello_image)))
    assert wait_for_run(tasks_client, registry, legacy.run_id).status == "Succeeded", "default access"


def test_the_apps_smoke_run_passes_on_an_abac_registry(
    devstack: Any, tasks_client: Any, abac_registry: Any, hello_context: Path
) -> None:
    digest = build(tasks_client, abac_registry, hello_context, "verify/abac:v1")
    with app_verifier(devstack, abac_registry) as verifier:
        verdict = smoke_run_verdict(verifier, pushed(abac_registry, "verify/abac", "v1", digest))
    assert verdict.status == "passed", verdict.checks
    assert "Hello from Dockmaster" in verdict.log_excerpt


def test_a_run_id_in_use_by_another_stack_on_this_machine(
    devstack: Any, tasks_client: Any, registry: Any, hello_image: str
) -> None:
    """Run ids count from dm1 in every devstack and podman's container names are machine-wide: a second
    stack's container for the same run id and step (the names runs used to get) must not fail this run."""
    first = schedule(tasks_client, registry, encoded_cmd_request(hello_image))
    assert wait_for_run(tasks_client, registry, first.run_id).status == "Succeeded"
    following = f"dm{int(first.run_id[2:]) + 1}-acb-step-0"
    other_stack = subprocess.Popen(  # holds the name for the next run's step, as another stack's run would
        ["podman", "--runtime", "/usr/sbin/runc", "run", "--rm", "--name", following,
         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000", "--tls-verify=false",
         backend_of(devstack, registry, hello_image), "/bin/busybox", "sleep", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_container(following)
        run = schedule(tasks_client, registry, encoded_cmd_request(hello_image))
        assert run.run_id == following.split("-")[0]
        finished = wait_for_run(tasks_client, registry, run.run_id)
        assert finished.status == "Succeeded", log_of(tasks_client, registry, run.run_id)[0]
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", following], capture_output=True, check=False)
        other_stack.wait()


def backend_of(devstack: Any, registry: Any, image: str) -> str:
    """The image as docker-registry serves it (a name in the registry's own namespace), pulled as is."""
    host = str(devstack.endpoints["registryBackend"]).split("://", 1)[1]
    return f"{host}/{registry.name.lower()}/{image.split('/', 1)[1]}"


def wait_until_container(name: str) -> None:
    deadline = time.monotonic() + 60
    while subprocess.run(["podman", "container", "exists", name], check=False).returncode != 0:
        assert time.monotonic() < deadline, f"container {name} did not start"
        time.sleep(0.1)


def test_runs_leave_no_image_store_behind(devstack: Any) -> None:
    """Last in this module, after builds that failed, timed out and were canceled: every run's image
    store is gone, mounts included (a leaked overlay mount makes its directory impossible to remove)."""
    work = Path(devstack.home) / "work"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert [m for m in mounts if m.startswith(f"{work}/")] == []
    assert list(work.glob("*-store-*")) == []
