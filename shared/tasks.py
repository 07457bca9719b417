"""ACR Tasks the way the Azure CLI drives them: `az acr run --cmd` and `az acr build`."""

from __future__ import annotations

import base64
import io
import tarfile
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
