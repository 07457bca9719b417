"""ACR Tasks through azure-mgmt-containerregistrytasks: scheduling runs, waiting for them, builds, logs."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient

from shared.tasks import TERMINAL_STATUSES, docker_build_request, pack_context, read_log
from tests.support.stack import group_of


def wait_for_run(tasks_client: Any, registry: Any, run_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = tasks_client.runs.get(group_of(registry.id), registry.name, run_id)
        if run.status in TERMINAL_STATUSES:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


def schedule(tasks_client: Any, registry: Any, body: dict[str, Any]) -> Any:
    return tasks_client.registries.schedule_run(group_of(registry.id), registry.name, body)


def log_of(tasks_client: Any, registry: Any, run_id: str) -> tuple[str, dict[str, str]]:
    link = tasks_client.runs.get_log_sas_url(group_of(registry.id), registry.name, run_id).log_link
    blob = BlobClient.from_blob_url(link)
    return blob.download_blob().readall().decode(), blob.get_blob_properties().metadata


def upload(tasks_client: Any, registry: Any, context: Path) -> str:
    target = tasks_client.registries.get_build_source_upload_url(group_of(registry.id), registry.name)
    BlobClient.from_blob_url(target.upload_url).upload_blob(pack_context(context))
    return str(target.relative_path)


def build(tasks_client: Any, registry: Any, context: Path, image: str) -> str:
    """`image` built from `context` and pushed by an ACR Tasks run (it logs in as the caller); its digest."""
    source = upload(tasks_client, registry, context)
    run = schedule(tasks_client, registry, docker_build_request(source, [image]))
    finished = wait_for_run(tasks_client, registry, run.run_id)
    if finished.status != "Succeeded":  # the run's own log says why (a message alone did not, once)
        log = read_log(tasks_client, group_of(registry.id), registry.name, run.run_id)
        raise AssertionError(f"build of {image}: {finished.run_error_message}\n{log[-4000:]}")
    return str(finished.output_images[0].digest)


def yaml_request(text: str) -> dict[str, Any]:
    return {
        "type": "EncodedTaskRunRequest",
        "encodedTaskContent": base64.b64encode(text.encode()).decode(),
        "platform": {"os": "Linux", "architecture": "amd64"},
    }
