"""ACR Tasks the way the Azure CLI drives them: `az acr run --cmd` and `az acr build`."""

from __future__ import annotations

import base64
import io
import itertools
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pathspec
import yaml

from .clock import exact

TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Canceled", "Error", "Timeout"})
LINUX_AMD64 = {"os": "Linux", "architecture": "amd64"}
DEFAULT_TIMEOUT = 3600
# How a run logs in to its own registry: as the caller (the app's identity), as `az acr run/build
# --source-acr-auth-id [caller]` asks. On a registry in ABAC mode (roleAssignmentMode
# AbacRepositoryPermissions) quick runs and builds have no default access to it; elsewhere the caller's
# AcrPull/AcrPush grant the same access. `identity` is in the Tasks API from 2025-03-01-preview.
CALLER = "[caller]"


def caller_credentials() -> dict[str, Any]:
    """The `credentials` of a run request: log in to the source registry as the caller."""
    return {"sourceRegistry": {"identity": CALLER}}


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
        "credentials": caller_credentials(),
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
    platform: dict[str, str] | None = None,
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
        "platform": dict(platform or LINUX_AMD64),
        "timeout": timeout,
        "credentials": caller_credentials(),
    }


def smoke_command(repository: str, digest: str, args: list[str]) -> str:
    """`$Registry/repo@sha256:… args`: the pushed image by digest, never by a movable tag."""
    return image_command(repository, args, digest=digest)


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
    """An ACR Tasks (ARM) failure through the one table in shared/errors.py."""
    from .errors import TASKS_ROLE, from_azure

    return from_azure(error, what, service="ACR Tasks", role=TASKS_ROLE)


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


# API helpers: which image a run names, what a run looks like, its log, a build source upload -------------

MAX_IMAGE_REFERENCE = 512
UPLOAD_BLOCK_BYTES = 4 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ImageRef:
    """An image reference as a caller writes it: [host/]repository(:tag|@digest)."""

    host: str | None
    repository: str
    tag: str | None
    digest: str | None


def parse_image(reference: str, *, require_version: bool = True) -> ImageRef:
    """Split and validate `[host/]repo:tag`, `[host/]repo@sha256:…` (Docker's rules for what a host is)."""
    from .errors import InvalidInput
    from .events import validate_digest, validate_repository, validate_tag

    if not isinstance(reference, str) or not reference or len(reference) > MAX_IMAGE_REFERENCE:
        raise InvalidInput(f"an image reference is 1 to {MAX_IMAGE_REFERENCE} characters")
    if any(ch.isspace() for ch in reference):
        raise InvalidInput(f"'{reference}' is not an image reference: it contains white space")
    name, _, digest = reference.partition("@")
    tag = None
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name, tag = name.rsplit(":", 1)
    host = None
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, name = first.lower(), rest
    if require_version and not tag and not digest:
        raise InvalidInput(f"'{reference}' names no version: write repository:tag or repository@sha256:…")
    return ImageRef(
        host=host,
        repository=validate_repository(name),
        tag=validate_tag(tag) if tag else None,
        digest=validate_digest(digest) if digest else None,
    )


def image_command(
    repository: str, args: list[str], *, tag: str | None = None, digest: str | None = None
) -> str:
    """`$Registry/repo@sha256:… args` (or `:tag`): an image of the run's own registry, never another host."""
    version = f"@{digest}" if digest else f":{tag}"
    image = f"$Registry/{repository}{version}"  # validated names: nothing here needs quoting
    return f"{image} {shlex.join(args)}" if args else image


@dataclass(frozen=True)
class RunDetail:
    """A run as the API shows it: status, times, the images it produced, why it failed."""

    run_id: str
    status: str
    run_type: str | None
    created: str | None
    started: str | None
    finished: str | None
    updated: str | None
    error: str | None
    platform: dict[str, str] | None
    output_images: list[dict[str, str | None]]

    @property
    def finished_running(self) -> bool:
        return self.status in TERMINAL_STATUSES


def describe_run(client: Any, group: str, registry: str, run_id: str) -> RunDetail:
    from azure.core.exceptions import AzureError

    try:
        run = client.runs.get(group, registry, run_id)
    except AzureError as exc:
        raise _wrap(exc, f"reading run {run_id}") from exc
    return _detail(run, run_id)


def recent_runs(client: Any, group: str, registry: str, top: int) -> list[RunDetail]:
    """The registry's newest `top` runs (Runs_List with `$top`, newest first as ACR lists them). The pager is
    left after `top` runs: no page is read beyond them."""
    from azure.core.exceptions import AzureError

    try:
        return [
            _detail(run, run.run_id)
            for run in itertools.islice(client.runs.list(group, registry, top=top), top)
        ]
    except AzureError as exc:
        raise _wrap(exc, f"listing the runs of {registry}") from exc


def _detail(run: Any, run_id: str) -> RunDetail:
    platform = None
    if run.platform is not None:
        platform = {
            key: _text(value)
            for key, value in (
                ("os", run.platform.os),
                ("architecture", run.platform.architecture),
                ("variant", run.platform.variant),
            )
            if value
        }
    return RunDetail(
        run_id=run_id,
        status=_text(run.status),
        run_type=_text(run.run_type) if run.run_type else None,
        created=exact(run.create_time),
        started=exact(run.start_time),
        finished=exact(run.finish_time),
        updated=exact(run.last_updated_time),
        error=run.run_error_message,
        platform=platform,
        output_images=[
            {"registry": i.registry, "repository": i.repository, "tag": i.tag, "digest": i.digest}
            for i in run.output_images or []
        ],
    )


class RunLog:
    """A run's log through the SAS link ACR hands out (no credential is sent to the blob).

    ACR appends to the blob while the run goes and marks the end with `Complete` metadata,
    which is what `az acr run` waits for; `chunks(follow=True)` does the same.
    """

    def __init__(self, client: Any, group: str, registry: str, run_id: str) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobClient

        self.run_id = run_id
        try:
            link = client.runs.get_log_sas_url(group, registry, run_id).log_link
        except AzureError as exc:
            raise _wrap(exc, f"reading the log of run {run_id}") from exc
        if not link:
            from .errors import NotFound

            raise NotFound(f"run {run_id} has no log")
        self._blob = BlobClient.from_blob_url(link)

    def _state(self) -> tuple[int, bool]:
        """(size, complete); a blob not written yet is empty and not complete."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            properties = self._blob.get_blob_properties()
        except ResourceNotFoundError:
            return 0, False
        complete = any(key.lower() == "complete" for key in properties.metadata or {})
        return int(properties.size), complete

    def chunks(
        self,
        *,
        offset: int = 0,
        follow: bool = False,
        max_seconds: float = 240,
        poll_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[bytes]:
        """The log from `offset`; following, more as it grows until it is complete (or `max_seconds`)."""
        from azure.core.exceptions import AzureError

        deadline = time.monotonic() + max_seconds
        try:
            while True:
                size, complete = self._state()
                if size > offset:
                    yield from self._blob.download_blob(offset=offset, length=size - offset).chunks()
                    offset = size
                if not follow or complete or time.monotonic() >= deadline:
                    return
                sleep(poll_seconds)
        except AzureError as exc:
            raise _wrap(exc, f"reading the log of run {self.run_id}") from exc


def source_upload_target(client: Any, group: str, registry: str) -> tuple[str, str]:
    """(upload URL with SAS, relative path for `sourceLocation`), as `az acr build` asks for them."""
    from azure.core.exceptions import AzureError

    try:
        target = client.registries.get_build_source_upload_url(group, registry)
    except AzureError as exc:
        raise _wrap(exc, f"getting a build source upload URL on {registry}") from exc
    return str(target.upload_url), str(target.relative_path)


class SourceUpload:
    """Streams a tar.gz build context to its upload URL in blocks: at most one block is held in memory."""

    def __init__(self, upload_url: str, relative_path: str, block_bytes: int = UPLOAD_BLOCK_BYTES) -> None:
        from azure.storage.blob import BlobClient

        self.relative_path = relative_path
        self.size = 0
        self._blob = BlobClient.from_blob_url(upload_url)
        self._block_bytes = block_bytes
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._checked = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._buffer += data
        if not self._checked and len(self._buffer) >= 2:  # nothing is staged before this check
            self._check_gzip()
        while len(self._buffer) >= self._block_bytes:
            self._stage(bytes(self._buffer[: self._block_bytes]))
            del self._buffer[: self._block_bytes]

    def _check_gzip(self) -> None:
        from .errors import InvalidInput

        if bytes(self._buffer[:2]) != GZIP_MAGIC:
            raise InvalidInput("the build context is not gzip-compressed: send a tar.gz archive")
        self._checked = True

    def _stage(self, block: bytes) -> None:
        from azure.core.exceptions import AzureError

        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        try:
            self._blob.stage_block(block_id, block)
        except AzureError as exc:
            raise _wrap(exc, "uploading the build context") from exc
        self._blocks.append(block_id)

    def finish(self) -> str:
        """Commit what was written; returns the relative path to build from."""
        from azure.core.exceptions import AzureError

        from .errors import InvalidInput

        if self.size < 2:
            raise InvalidInput("the build context is empty: send a tar.gz archive")
        if not self._checked:
            self._check_gzip()
        try:
            if not self._blocks:
                self._blob.upload_blob(bytes(self._buffer), overwrite=True)
            else:
                if self._buffer:
                    self._stage(bytes(self._buffer))
                from azure.storage.blob import BlobBlock

                self._blob.commit_block_list([BlobBlock(block_id=b) for b in self._blocks])
        except AzureError as exc:
            raise _wrap(exc, "uploading the build context") from exc
        self._buffer.clear()
        return self.relative_path
