"""Build contexts: Debian's static busybox in a FROM-scratch image."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BUSYBOX = Path("/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def image_context(tmp_path: Path, hello_context: Path, entrypoint: str) -> Path:
    """A context of its own under `tmp_path`: hello_context's busybox with another entrypoint."""
    context = tmp_path / uuid.uuid4().hex
    context.mkdir()
    shutil.copy(hello_context / "busybox", context / "busybox")  # keeps the executable bit
    (context / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT {entrypoint}\n")
    return context


def tag_many(backend: str, registry: str, repository: str, tags: list[str]) -> str:
    """One small config-only image under every tag in `tags`, written straight to docker-registry, 8 PUTs
    at a time: a big repository in seconds. Each tag's push still raises an event (docker-registry's
    notifications). Returns the image's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [],
        }
    ).encode()
    with httpx.Client(base_url=backend, timeout=60) as raw:
        started = raw.post(f"/v2/{registry}/{repository}/blobs/uploads/")
        started.raise_for_status()
        location = started.headers["location"]
        joiner = "&" if "?" in location else "?"  # the location carries the upload's state: keep it
        raw.put(f"{location}{joiner}digest={config_digest}", content=config).raise_for_status()

        def put(tag: str) -> None:
            url = f"/v2/{registry}/{repository}/manifests/{tag}"
            raw.put(url, content=manifest, headers={"Content-Type": OCI_MANIFEST}).raise_for_status()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, tags))
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}"
