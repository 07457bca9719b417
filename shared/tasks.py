"""ACR Tasks the way the Azure CLI drives them: `az acr run --cmd` and `az acr build`."""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pathspec
import yaml

TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Canceled", "Error", "Timeout"})
LINUX_AMD64 = {"os": "Linux", "architecture": "amd64"}
DEFAULT_TIMEOUT = 3600


def cmd_task_yaml(command: str, timeout: int | None = None) -> str:
    """The task `az acr run --cmd CMD /dev/null` sends; serialized, never string-built."""
    step: dict[str, Any] = {"cmd": command, "disableWorkingDirectoryOverride": True}
    if timeout is not None:
        step["timeout"] = timeout
    return yaml.safe_dump({"version": "v1.1.0", "steps": [step]}, sort_keys=False)


def encoded_cmd_request(command: str, timeout: int | None = None) -> dict[str, Any]:
    """The EncodedTaskRunRequest body of `az acr run --cmd CMD /dev/null`."""
    content = base64.b64encode(cmd_task_yaml(command, timeout).encode()).decode()
    return {
        "type": "EncodedTaskRunRequest",
        "encodedTaskContent": content,
        "values": [],
        "platform": dict(LINUX_AMD64),
        "timeout": max(timeout or DEFAULT_TIMEOUT, 300),
    }


def pack_context(directory: Path) -> bytes:
    """tar.gz a build context, honouring .dockerignore as `az acr build` does."""
    ignore_file = directory / ".dockerignore"
    patterns = ignore_file.read_text().splitlines() if ignore_file.exists() else []
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory).as_posix()
            if spec.match_file(relative) and relative not in ("Dockerfile", ".dockerignore"):
                continue
            if path.is_file() or path.is_symlink():
                archive.add(path, arcname=relative, recursive=False)
    return buffer.getvalue()


def docker_build_request(
    source_location: str,
    image_names: list[str],
    dockerfile: str = "Dockerfile",
    build_args: dict[str, str] | None = None,
    push: bool = True,
    timeout: int = DEFAULT_TIMEOUT,
    no_cache: bool = False,
) -> dict[str, Any]:
    """The DockerBuildRequest body of `az acr build`."""
    return {
        "type": "DockerBuildRequest",
        "imageNames": image_names,
        "isPushEnabled": push,
        "noCache": no_cache,
        "sourceLocation": source_location,
        "dockerFilePath": dockerfile,
        "arguments": [
            {"name": name, "value": value, "isSecret": False} for name, value in (build_args or {}).items()
        ],
        "platform": dict(LINUX_AMD64),
        "timeout": timeout,
    }


def smoke_command(repository: str, digest: str, args: list[str]) -> str:
    """`$Registry/repo@sha256:… args`: the pushed image by digest, never by a movable tag."""
    image = f"$Registry/{repository}@{digest}"  # validated names: nothing here needs quoting
    return f"{image} {shlex.join(args)}" if args else image


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _text(value: Any) -> str:
    """SDK enums (RunStatus.SUCCEEDED) as the wire string ("Succeeded")."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _wrap(error: Exception, what: str) -> Exception:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    from .errors import NotFound, Retryable

    if isinstance(error, ResourceNotFoundError):
        return NotFound(f"{what}: not found")
    if isinstance(error, HttpResponseError) and error.status_code is not None and error.status_code < 500:
        from .errors import InvalidInput

        return InvalidInput(f"{what}: {error.message}")
    return Retryable(f"{what}: {error}")


def schedule(client: Any, group: str, registry: str, body: dict[str, Any]) -> RunState:
    from azure.core.exceptions import AzureError

    try:
        run = client.registries.schedule_run(group, registry, body)
    except AzureError as exc:
        raise _wrap(exc, f"scheduling a run on {registry}") from exc
    return RunState(str(run.run_id), _text(run.status), None)


def get_run(client: Any, group: str, registry: str, run_id: str) -> RunState:
    from azure.core.exceptions import AzureError

    try:
        run = client.runs.get(group, registry, run_id)
    except AzureError as exc:
        raise _wrap(exc, f"reading run {run_id}") from exc
    return RunState(run_id, _text(run.status), run.run_error_message)


def cancel_run(client: Any, group: str, registry: str, run_id: str) -> None:
    from azure.core.exceptions import AzureError

    try:
        client.runs.cancel(group, registry, run_id)
    except AzureError as exc:
        raise _wrap(exc, f"canceling run {run_id}") from exc


def read_log(client: Any, group: str, registry: str, run_id: str, max_bytes: int = 64 * 1024) -> str:
    """The tail of a run's log, through the SAS link ACR hands out (no credential is sent)."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient

    try:
        link = client.runs.get_log_sas_url(group, registry, run_id).log_link
        blob = BlobClient.from_blob_url(link)
        size = blob.get_blob_properties().size
        offset = max(0, size - max_bytes)
        data: bytes = blob.download_blob(offset=offset).readall() if size else b""
    except AzureError as exc:
        raise _wrap(exc, f"reading the log of run {run_id}") from exc
    return data.decode("utf-8", "replace")
