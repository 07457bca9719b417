"""A pusher trying to get a bad image passed, unchecked or stuck: the verifier against devstack's registry
and ACR Tasks, with images put together byte by byte through the SDK's registry client (configs, layers,
indexes exactly as crafted), under tests/data/policy.yaml's `guarded/*` rule: no root, no `latest`, tags
`v<n>`, smoke run on, lock on pass, quarantine on fail.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from azure.containerregistry import ContainerRegistryClient

from shared import services
from shared.verdicts import MAX_EVENTS, MAX_PROPERTY_BYTES, Verdict
from shared.verification import Request, Verifier
from tests.support.images import BUSYBOX
from tests.support.verification import drain, pushed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


AMD64 = {"os": "linux", "architecture": "amd64"}


def layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files` (a name ending in `.wh.x` is a whiteout, as the OCI spec writes it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass(frozen=True)
class Pushed:
    repository: str
    digest: str
    raw: bytes
    media_type: str
    size: int

    def descriptor(self, **platform: str) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, "platform": platform}


class Images:
    """Puts images together blob by blob, as a pusher with a registry client can."""

    def __init__(self, data: ContainerRegistryClient) -> None:
        self.data = data

    def blob(self, repository: str, content: bytes) -> dict[str, Any]:
        digest, size = self.data.upload_blob(repository, io.BytesIO(content))
        return {"digest": digest, "size": size}

    def manifest(self, repository: str, document: dict[str, Any], tag: str, media_type: str) -> Pushed:
        raw = json.dumps(document).encode()
        return self.put(
            Pushed(repository, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, media_type, len(raw)), tag
        )

    def put(self, image: Pushed, tag: str) -> Pushed:
        """(Re)tag exactly these manifest bytes: the digest stays the same."""
        digest = self.data.set_manifest(
            image.repository, io.BytesIO(image.raw), tag=tag, media_type=image.media_type
        )
        assert digest == image.digest
        return image

    def image(
        self,
        repository: str,
        tag: str,
        *,
        user: str | None = "1000",
        env: list[str] | None = None,
        passwd: str | None = None,
        upper: dict[str, bytes] | None = None,
        config: bytes | None = None,
        config_size: int | None = None,
    ) -> Pushed:
        """busybox printing a greeting, running as `user`; `passwd` becomes /etc/passwd, `upper` a layer on
        top; `config` replaces the config blob's bytes (and `config_size` what the manifest says of it)."""
        files = {"bin/busybox": BUSYBOX.read_bytes()}
        if passwd is not None:
            files["etc/passwd"] = passwd.encode()
        tars = [layer(files), *([layer(upper)] if upper is not None else [])]
        runtime: dict[str, Any] = {
            "Entrypoint": ["/bin/busybox", "echo", "hello"],
            "Env": env or ["PATH=/bin"],
        }
        if user is not None:
            runtime["User"] = user
        document = {
            **AMD64,
            "config": runtime,
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars],
            },
        }
        config_blob = self.blob(repository, config if config is not None else json.dumps(document).encode())
        layers = [{"mediaType": GZIP_LAYER, **self.blob(repository, gzip.compress(t, mtime=0))} for t in tars]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_blob["digest"],
                "size": config_size if config_size is not None else config_blob["size"],
            },
            "layers": layers,
        }
        return self.manifest(repository, manifest, tag, OCI_MANIFEST)

    def index(self, repository: str, tag: str, children: list[dict[str, Any]]) -> Pushed:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        return self.manifest(repository, document, tag, OCI_INDEX)


@pytest.fixture(scope="module")
def images(data_client: ContainerRegistryClient) -> Images:
    return Images(data_client)


def repo(name: str) -> str:
    return f"guarded/{name}-{uuid.uuid4().hex[:6]}"


def verify(verifier: Verifier, registry: Any, image: Pushed, tag: str) -> Verdict:
    verdict = verifier.handle_event(pushed(registry, image.repository, tag, image.digest))
    assert isinstance(verdict, Verdict)
    return drain(verifier, verdict)


def reasons(verdict: Verdict) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in verdict.checks if c["status"] == "failed"}


# 1. An index is as good as its worst image ----------------------------------------------------------------


def test_an_index_wrapping_a_root_image_fails_like_the_image(
    verifier: Verifier, registry: Any, images: Images, data_client: ContainerRegistryClient
) -> None:
    name = repo("index")
    root = images.image(name, "plain", user=None)
    wrapped = images.index(name, "v1", [root.descriptor(**AMD64)])
    verdict = verify(verifier, registry, wrapped, "v1")
    assert verdict.status == "failed", verdict.checks
    assert "linux/amd64" in reasons(verdict)["user"]
    assert "runs as root" in reasons(verdict)["user"]
    assert verdict.images == {root.digest: "failed"}
    assert data_client.get_manifest_properties(name, wrapped.digest).can_read is False
    assert data_client.get_manifest_properties(name, root.digest).can_read is False
    # Its own tag's event comes after the quarantine: an image no client can pull fails, never stalls.
    plain = verify(verifier, registry, root, "plain")
    assert "quarantined" in reasons(plain)["image"]
    # Wrapping the quarantined image again: it cannot be read, and the new index fails on it.
    rewrapped = images.index(
        name, "v2", [root.descriptor(**AMD64), root.descriptor(os="linux", architecture="arm64")]
    )
    assert "quarantined" in reasons(verify(verifier, registry, rewrapped, "v2"))["image"]


def test_an_index_runs_its_runner_image_and_fails_on_any_image(
    verifier: Verifier, registry: Any, images: Images, data_client: ContainerRegistryClient
) -> None:
    name = repo("multi")
    good = images.image(name, "amd64")
    root = images.image(name, "arm64", user="0:1000")
    clean = images.index(name, "v1", [good.descriptor(**AMD64)])
    verdict = verify(verifier, registry, clean, "v1")
    assert verdict.status == "passed", verdict.checks
    assert verdict.run_digest == good.digest, "the smoke run runs the linux/amd64 image, not the index"
    assert "hello" in verdict.log_excerpt
    assert data_client.get_manifest_properties(name, good.digest).can_delete is False, (
        "the index's image is locked"
    )
    mixed = images.index(
        name, "v2", [good.descriptor(**AMD64), root.descriptor(os="linux", architecture="arm64")]
    )
    verdict = verify(verifier, registry, mixed, "v2")
    assert verdict.status == "failed"
    assert "linux/arm64" in reasons(verdict)["user"]
    assert "uid 0" in reasons(verdict)["user"]
    assert verdict.images == {good.digest: "passed", root.digest: "failed"}
    # The image that passed may be another index's too: only the failing one is quarantined.
    assert data_client.get_manifest_properties(name, root.digest).can_read is False
    assert data_client.get_manifest_properties(name, good.digest).can_read is True


# 2. Root is uid 0, whatever `User` calls it --------------------------------------------------------------

TOOR = "root:x:0:0::/:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"


@pytest.mark.parametrize(
    ("user", "passwd", "upper", "expected"),
    [
        ("0:1000", None, None, "is uid 0"),
        ("00", None, None, "is uid 0"),
        ("toor", TOOR, None, "is uid 0"),
        ("toor:1000", TOOR, None, "is uid 0"),
        ("ghost", TOOR, None, "not a user of the image's /etc/passwd"),
        # The upper layer deletes /etc/passwd (an OCI whiteout): the name no longer resolves.
        ("app", TOOR, {"etc/.wh.passwd": b""}, "not a user of the image's /etc/passwd"),
        # The upper layer's /etc/passwd replaces the lower one.
        ("app", TOOR, {"etc/passwd": b"app:x:0:0::/:/bin/sh\n"}, "is uid 0"),
    ],
)
def test_root_by_another_name_fails(
    verifier: Verifier,
    registry: Any,
    images: Images,
    user: str,
    passwd: str | None,
    upper: dict[str, bytes] | None,
    expected: str,
) -> None:
    name = repo("user")
    image = images.image(name, "v1", user=user, passwd=passwd, upper=upper)
    verdict = verify(verifier, registry, image, "v1")
    assert verdict.status == "failed"
    assert expected in reasons(verdict)["user"]


def test_a_named_user_that_is_not_root_passes(verifier: Verifier, registry: Any, images: Images) -> None:
    image = images.image(repo("user"), "v1", user="app", passwd=TOOR)
    verdict = verify(verifier, registry, image, "v1")
    assert verdict.status == "passed", verdict.checks
    assert next(c["reason"] for c in verdict.checks if c["name"] == "user") == "runs as uid 1000 (User 'app')"


# 3. Tag rules belong to each tag --------------------------------------------------------------------------


def test_each_tag_is_judged_on_the_tag_rules(
    verifier: Verifier, registry: Any, images: Images, data_client: ContainerRegistryClient
) -> None:
    name = repo("tags")
    image = images.image(name, "v1")
    assert verify(verifier, registry, image, "v1").status == "passed"
    for tag in ("latest", "nightly", "v2"):
        images.put(image, tag)
        verifier.handle_event(pushed(registry, name, tag, image.digest))
    verdict = verifier.store.get(
        *Verdict(registry.name, name, image.digest, verifier.policy.version, None).key
    )
    assert verdict.status == "passed"
    assert {t: r["status"] for t, r in verdict.tag_results.items()} == {
        "v1": "passed",
        "latest": "failed",
        "nightly": "failed",
        "v2": "passed",
    }
    assert verdict.tag_results["nightly"]["action"] == "quarantined tag nightly (readEnabled=false)"
    # Another event of a tag already judged (a redelivery, a re-push): nothing is read or written again.
    client = verifier.registry_data(verifier.settings.registries[registry.name.lower()])
    before = client.requests
    again = verifier.handle_event(pushed(registry, name, "nightly", image.digest))
    assert isinstance(again, Verdict)
    assert (again.tag_results, client.requests) == (verdict.tag_results, before)
    assert verdict.tag_results["v2"]["action"] == "locked tag v2"
    assert data_client.get_tag_properties(name, "latest").can_read is False
    assert data_client.get_tag_properties(name, "v1").can_read is True
    listing = {t.tag["name"]: t for t in services.tags(registry.name, name, 100).tags}
    assert {t: info.status for t, info in listing.items()} == {
        "v1": "passed",
        "latest": "failed",
        "nightly": "failed",
        "v2": "passed",
    }
    assert "does not match" in (listing["nightly"].tag_rules or {})["reason"]


# 4. A superseded digest tagged again is verified ----------------------------------------------------------


def test_a_superseded_digest_tagged_again_is_checked(
    verifier: Verifier, registry: Any, images: Images, data_client: ContainerRegistryClient
) -> None:
    name = repo("superseded")
    bad = images.image(name, "v1", user="0")
    images.image(name, "v1")  # a clean image takes v1 before the bad one's event is handled
    first = verifier.handle_event(pushed(registry, name, "v1", bad.digest))
    assert isinstance(first, Verdict)
    assert first.status == "superseded"
    images.put(bad, "v2")
    verdict = verify(verifier, registry, bad, "v2")
    assert verdict.status == "failed"
    assert verdict.tag == "v2"
    assert "runs as root" in reasons(verdict)["user"]
    assert data_client.get_manifest_properties(name, bad.digest).can_read is False


# 5. A malformed image is a failed verdict, never a pending one ---------------------------------------------

CONFIG = {**AMD64, "rootfs": {"type": "layers", "diff_ids": []}}


@pytest.mark.parametrize(
    ("config", "short_by", "expected"),
    [
        (json.dumps({**CONFIG, "config": {"User": "1000"}}).encode(), 5, "its descriptor says"),
        (b"[1, 2, 3]", 0, "the image config is not a JSON object"),
        (
            json.dumps({**CONFIG, "config": "User=1000"}).encode(),
            0,
            "config: Input should be a valid dictionary",
        ),
        (
            json.dumps({**CONFIG, "config": {"Env": "A=1"}}).encode(),
            0,
            "config.Env: Input should be a valid list",
        ),
        (b"{not json", 0, "is not JSON"),
    ],
    ids=["larger-than-its-descriptor", "not-an-object", "config-a-string", "env-a-string", "not-json"],
)
def test_a_crafted_config_fails_the_verdict(
    verifier: Verifier,
    registry: Any,
    images: Images,
    data_client: ContainerRegistryClient,
    config: bytes,
    short_by: int,
    expected: str,
) -> None:
    name = repo("config")
    image = images.image(name, "v1", config=config, config_size=len(config) - short_by)
    event = pushed(registry, name, "v1", image.digest)
    verdict = verifier.handle_event(event)
    assert isinstance(verdict, Verdict)
    assert verdict.status == "failed"
    assert expected in reasons(verdict)["image"]
    assert verdict.pending_actions == []
    assert data_client.get_manifest_properties(name, image.digest).can_read is False
    again = verifier.handle_event(event)  # a redelivery finds it final
    assert isinstance(again, Verdict)
    assert (again.status, again.completed_at) == ("failed", verdict.completed_at)


# 6. A verdict fits in its Table entity whatever the image says ---------------------------------------------


def utf16(value: Any) -> int:
    return len(value.encode("utf-16-le")) if isinstance(value, str) else 8


def test_a_verdict_stays_within_table_limits(verifier: Verifier, registry: Any, images: Images) -> None:
    name = repo("limits")
    secrets = [f"SECRET_{n:05}_{'X' * 40}=1" for n in range(1000)]
    image = images.image(name, "v1", env=secrets, passwd=None)
    verdict = verifier.handle_event(pushed(registry, name, "v1", image.digest))
    assert isinstance(verdict, Verdict)
    assert verdict.status == "failed"
    assert "and 990 more" in reasons(verdict)["env"]
    for _ in range(MAX_EVENTS + 20):
        verdict = verifier.verify(
            Request(
                verifier.settings.registries[registry.name.lower()],
                name,
                image.digest,
                "v1",
                f"api:{uuid.uuid4()}",
            )
        )
    stored = verifier.store.get(*verdict.key)
    assert len(stored.events) == MAX_EVENTS
    assert stored.events_recorded == MAX_EVENTS + 21
    assert all(utf16(value) <= MAX_PROPERTY_BYTES for value in stored.to_entity().values())


# 7. The lock lands only on the digest that passed -----------------------------------------------------------


def test_a_tag_moved_during_the_smoke_run_is_not_locked(
    verifier: Verifier, registry: Any, images: Images, data_client: ContainerRegistryClient
) -> None:
    name = repo("lock")
    good = images.image(name, "v1")
    running = verifier.handle_event(pushed(registry, name, "v1", good.digest))
    assert isinstance(running, Verdict)
    assert running.status == "running"
    bad = images.image(name, "v1", user="root")  # pushed to v1 while the good image's run goes on
    failed = verify(verifier, registry, bad, "v1")
    assert failed.status == "failed"
    verdict = drain(verifier, running)
    assert verdict.status == "passed"
    assert verdict.actions == [f"locked {good.digest}; tag v1 not locked: it points to {bad.digest} now"]
    assert data_client.get_manifest_properties(name, good.digest).can_write is False
    tag = data_client.get_tag_properties(name, "v1")
    assert (tag.digest, tag.can_write) == (bad.digest, True), "a fixed v1 can still be pushed"
