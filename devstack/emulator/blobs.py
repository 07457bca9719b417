"""Azurite-backed blobs ACR Tasks hands out: build-source uploads and run logs (with SAS)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    generate_blob_sas,
)

SOURCES = "sources"
LOGS = "logs"
# The status words the Azure CLI reads from a finished log blob's `Complete` metadata.
COMPLETE_STATUS = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Timeout": "timedout",
    "Canceled": "canceled",
    "Error": "internalerror",
}
SAS_LIFETIME = dt.timedelta(hours=1)


class SourceError(Exception):
    """An uploaded build context that cannot be used."""


@dataclass(frozen=True)
class SourceLimits:
    """What an uploaded build context may be: `max_bytes` as uploaded (compressed), and once extracted at
    most `max_expanded_bytes` of file content in `max_entries` entries. The upload limit alone let 100 MiB
    of gzipped zeros become 100 GiB on the executor's disk."""

    max_bytes: int
    max_expanded_bytes: int
    max_entries: int


def extract_archive(data: bytes, target: Path, limits: SourceLimits) -> None:
    """Extract a tar(.gz) member by member, refusing it before the member that would pass a limit is
    written: sizes come from each member's header, read before its content is inflated."""
    totals = {"bytes": 0, "entries": 0}

    def checked(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for member in archive:
            totals["entries"] += 1
            if totals["entries"] > limits.max_entries:
                raise SourceError(f"source has more than the limit of {limits.max_entries} entries")
            totals["bytes"] += member.size
            if totals["bytes"] > limits.max_expanded_bytes:
                raise SourceError(
                    f"source expands to more than the limit of {limits.max_expanded_bytes} bytes"
                )
            yield member

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            # extractall takes the members lazily, one checked header at a time.
            archive.extractall(target, members=checked(archive), filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"source is not a usable tar.gz archive: {exc}") from exc


class Blobs:
    def __init__(self, connection_string: str) -> None:
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self._account_key = self._service.credential.account_key
        for container in (SOURCES, LOGS):
            with contextlib.suppress(ResourceExistsError):
                self._service.create_container(container)

    def _sas_url(self, container: str, blob: str, permission: BlobSasPermissions) -> str:
        sas = generate_blob_sas(
            account_name=self._service.account_name or "",
            container_name=container,
            blob_name=blob,
            account_key=self._account_key,
            permission=permission,
            expiry=dt.datetime.now(dt.UTC) + SAS_LIFETIME,
        )
        return f"{self._service.url.rstrip('/')}/{container}/{blob}?{sas}"

    def upload_url(self, registry_name: str) -> tuple[str, str]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H00")
        relative = f"source/{stamp}/{uuid.uuid4()}.tar.gz"
        blob = f"{registry_name.lower()}/{relative}"
        url = self._sas_url(SOURCES, blob, BlobSasPermissions(read=True, write=True, create=True))
        return url, relative

    def log_url(self, registry_name: str, run_id: str) -> str:
        return self._sas_url(LOGS, self.log_blob(registry_name, run_id), BlobSasPermissions(read=True))

    @staticmethod
    def log_blob(registry_name: str, run_id: str) -> str:
        return f"{registry_name.lower()}/{run_id}/rawtext.log"

    def extract_source(self, registry_name: str, relative: str, target: Path, limits: SourceLimits) -> None:
        if relative.startswith(("http://", "https://", "git@")):
            raise SourceError(
                "devstack builds only from uploaded sources (listBuildSourceUploadUrl's relativePath)"
            )
        client = self._service.get_blob_client(SOURCES, f"{registry_name.lower()}/{relative}")
        try:
            size = client.get_blob_properties().size
        except ResourceNotFoundError as exc:
            raise SourceError(f"source '{relative}' was not found; upload it first") from exc
        if size > limits.max_bytes:
            raise SourceError(f"source is {size} bytes, more than the limit of {limits.max_bytes}")
        extract_archive(client.download_blob().readall(), target, limits)

    def delete_registry_data(self, registry_name: str) -> None:
        prefix = f"{registry_name.lower()}/"
        for container in (SOURCES, LOGS):
            client = self._service.get_container_client(container)
            for blob in client.list_blobs(name_starts_with=prefix):
                with contextlib.suppress(ResourceNotFoundError):
                    client.delete_blob(blob.name)

    def open_log(self, registry_name: str, run_id: str) -> BlobLog:
        client = self._service.get_blob_client(LOGS, self.log_blob(registry_name, run_id))
        client.create_append_blob()
        return BlobLog(client)


class BlobLog:
    """A run log streamed to an append blob; `Complete` metadata marks the end, as ACR does."""

    FLUSH_SECONDS = 0.3
    MAX_BLOCK = 4 * 1024 * 1024 - 1

    def __init__(self, client: object) -> None:
        self._client = client
        self._buffer: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def write(self, text: str) -> None:
        self._buffer.append(text)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            data = "".join(self._buffer).encode()
            self._buffer.clear()
            for start in range(0, len(data), self.MAX_BLOCK):
                chunk = data[start : start + self.MAX_BLOCK]
                await asyncio.to_thread(self._client.append_block, chunk)  # type: ignore[attr-defined]

    async def close(self, status: str) -> None:
        await self.flush()
        await asyncio.to_thread(
            self._client.set_blob_metadata,  # type: ignore[attr-defined]
            {"Complete": COMPLETE_STATUS.get(status, status.lower())},
        )
