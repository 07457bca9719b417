"""YAML and shell injection through tags, repositories, run arguments and image labels.

Threat: text an attacker controls (an event's tag or repository, a caller's run arguments, the labels
of a pushed image) ends up in the ACR task YAML or in a command line, where it could add task steps,
run a shell command or point the run at another image. Guarantee: names are validated against the OCI
grammar before anything is called (refused events store no verdict and schedule no run); arguments
travel as YAML data (serialized, never string-built) and reach the container as literal argv entries,
with control characters refused; labels are only read by the policy checks and never reach the task.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.containerregistry import ContainerRegistryClient

from shared.api.auth import OPERATE, READ
from tests.support.api import follow_log, wait_for
from tests.support.faults import requests_seen
from tests.support.hostile import Target, assert_refused, error_shape
from tests.support.stack import group_of, unique
from tests.support.tasks import build

# What an injected command would create on this machine (the executor's host); unique per session.
MARKER = f"/tmp/dockmaster-hostile-{uuid.uuid4().hex[:12]}"
SHELLISH = [
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"; touch {MARKER}",
    f"&& touch {MARKER} ||",
    f"| tee {MARKER}",
    f"> {MARKER}",
    "'\"\\ unbalanced",
    "--entrypoint=/bin/sh",  # after the image: an argument of the container, not an option of podman
    "-v=/:/host",
    "steps: [{cmd: 'busybox touch /x'}]",
    "- cmd: busybox touch /x",
    "#",
    "",
]


def runs_of(tasks_client: Any, registry: Any) -> set[str]:
    return {run.run_id for run in tasks_client.runs.list(group_of(registry.id), registry.name)}


def test_hostile_tags_and_repositories_in_events_are_refused(
    target: Target, admin: httpx.Client, tasks_client: Any, registry: Any
) -> None:
    runs = runs_of(tasks_client, registry)
    tags = [
        "v1\nsteps:\n  - cmd: busybox touch /x",
        "v1\n",  # `$` in a regex also matches before a final newline
        f"$(touch {MARKER})",
        "v1;id",
        "`id`",
        "v1 && id",
        "v1|id",
        "${IFS}",
        "'v1'",
        "{{.Run.ID}}",
        "$Registry",
        "-v1",
        ".v1",
        "t" * 129,
    ]
    repositories = [
        "team/app\nsteps: []",
        "team/app\n",
        "team/$(id)",
        "team/app;id",
        "team/`id`",
        "team/app id",
        "Team/App",
        "$Registry/app",
        "team/app:v1",
        "team/app@sha256:" + "0" * 64,
    ]
    events = [target.pushed("hostile/app", tag) for tag in tags]
    events += [target.pushed(repository, "v1") for repository in repositories]
    log = assert_refused(target, admin, events)
    assert "is not a valid OCI tag" in log
    assert "is not a valid OCI repository name" in log
    assert "\nsteps:" not in log, "a refused value is quoted with its control characters escaped"
    assert runs_of(tasks_client, registry) == runs
    assert not Path(MARKER).exists()


def test_run_arguments_reach_the_container_verbatim(
    target: Target, admin: httpx.Client, echo_image: str
) -> None:
    runs = f"/api/registries/{target.api.registry}/runs"
    with target.api.client(OPERATE, READ) as client:
        accepted = client.post(runs, json={"image": f"hostile/echo@{echo_image}", "args": SHELLISH})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["runId"]
        log = follow_log(client, f"{runs}/{run_id}/log")
        assert wait_for(client, accepted.headers["location"], "finished")["status"] == "Succeeded"
    # busybox echo joins its argv with spaces: every argument arrived as one literal string.
    assert "Hello from Dockmaster " + " ".join(SHELLISH) in log, log
    assert not Path(MARKER).exists()


def test_control_characters_in_run_arguments_are_refused(target: Target, admin: httpx.Client) -> None:
    runs = f"/api/registries/{target.api.registry}/runs"
    before = requests_seen(admin)
    with target.api.client(OPERATE, READ) as client:
        for argument in ("x\nsteps:\n  - cmd: busybox touch /x", "x\r\n- cmd: id", "x\x00y", "\x1b[2J"):
            answer = client.post(runs, json={"image": "hostile/echo:v1", "args": [argument]})
            assert error_shape(answer.status_code, answer.content)["code"] == "InvalidInput"
            assert answer.status_code == 400
    after = requests_seen(admin)
    assert after["arm"] == before["arm"], "nothing was scheduled"


def test_labels_with_yaml_and_shell_text_are_only_read(
    target: Target,
    tasks_client: Any,
    registry: Any,
    credential: Any,
    devstack: Any,
    tmp_path: Path,
    hello_context: Path,
) -> None:
    labels = {
        "org.opencontainers.image.source": "https://example.invalid/src",
        "evil": f"$(touch {MARKER}); `touch {MARKER}` | touch {MARKER}",
        "yaml": "steps: [{cmd: 'busybox touch /x'}] # {{.Run.ID}}",
    }
    context = tmp_path / "labelled"
    context.mkdir()
    shutil.copy(hello_context / "busybox", context / "busybox")
    # JSON strings are valid Dockerfile double-quoted values here: no `$name`, no escapes but \" and \\.
    label_line = " ".join(f"{name}={json.dumps(value)}" for name, value in labels.items())
    (context / "Dockerfile").write_text(
        (hello_context / "Dockerfile").read_text().replace("ENTRYPOINT", f"LABEL {label_line}\nENTRYPOINT")
    )
    repository = unique("labels/app")
    digest = build(tasks_client, registry, context, f"{repository}:v1")
    data = ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)
    manifest = data.get_manifest(repository, digest).manifest
    assert manifest is not None
    config = json.loads(b"".join(data.download_blob(repository, manifest["config"]["digest"])))
    assert config["config"]["Labels"].items() >= labels.items(), "the image carries the labels as written"
    runs = runs_of(tasks_client, registry)
    with target.api.client(OPERATE, READ) as client:
        accepted = client.post(
            "/api/verifications",
            json={"registry": target.api.registry, "repository": repository, "tag": "v1"},
        )
        assert accepted.status_code == 202, accepted.text
        verdict = wait_for(client, accepted.headers["location"], "final")
        log = client.get(f"/api/registries/{target.api.registry}/runs/{verdict['runId']}/log").text
    checks = {check["name"]: check for check in verdict["checks"]}
    assert verdict["status"] == "passed", checks
    assert checks["labels"] == {"name": "labels", "status": "passed", "reason": "all required labels present"}
    assert checks["smoke-run"]["status"] == "passed"
    # The smoke run ran the image by digest with no arguments: the label text went nowhere.
    assert runs_of(tasks_client, registry) - runs == {verdict["runId"]}
    assert "Hello from Dockmaster\n" in log, log
    assert not Path(MARKER).exists()


@pytest.mark.parametrize(
    "source",
    [
        "https://169.254.169.254/metadata/instance?api-version=2021-02-01",
        "https://[::ffff:169.254.169.254]/metadata/instance",
        "https://localhost:8443/ctx.tar.gz",
        "https://127.1/ctx.tar.gz",
        "https://[::1]/ctx.tar.gz",
        "https://10.0.0.4/ctx.tar.gz",
        "https://[fd12:3456::1]/ctx.tar.gz",
    ],
)
def test_a_build_source_at_an_internal_address_is_refused(
    target: Target, admin: httpx.Client, source: str
) -> None:
    """Issue 14 (18): ACR's build agent would fetch the sourceUrl from inside Azure. An address that is
    not public, named or resolved, is refused before anything is scheduled."""
    before = requests_seen(admin)
    with target.api.client(OPERATE, READ) as client:
        answer = client.post(
            f"/api/registries/{target.api.registry}/builds",
            json={"sourceUrl": source, "images": ["hostile/fromurl:v1"]},
        )
    error = error_shape(answer.status_code, answer.content)
    assert (answer.status_code, error["code"]) == (400, "InvalidInput")
    assert "an internal address" in error["message"], error
    assert requests_seen(admin)["arm"] == before["arm"], "nothing was scheduled"
