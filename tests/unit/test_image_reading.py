"""Reading an image the way its runtime will: the uid `User` names, /etc/passwd through the layers'
whiteouts, an index judged by its worst image, and verdicts bounded to one Table entity."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator

import pytest

from shared import checks, oci, rootfs
from shared.verdicts import MAX_EVENTS, MAX_PROPERTY_BYTES, MAX_TAG_RESULTS, Verdict

PASSWD = b"root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"


def tar(entries: dict[str, bytes | str | None]) -> bytes:
    """A layer: bytes are files, a str is a symbolic link to it, None a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def users(*layers: bytes, media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> dict[str, int]:
    blobs = {f"sha256:{n:064x}": gzip.compress(layer) for n, layer in enumerate(layers)}
    descriptors = [oci.Descriptor(mediaType=media_type, digest=d, size=len(b)) for d, b in blobs.items()]

    def read(layer: oci.Descriptor) -> Iterator[bytes]:
        data = blobs[layer.digest]
        return iter([data[i : i + 7] for i in range(0, len(data), 7)])  # small chunks: a stream, not a blob

    return rootfs.passwd_users(descriptors, read)


def test_passwd_is_read_through_the_layers_as_the_runtime_stacks_them() -> None:
    assert users(tar({"etc/passwd": PASSWD}))["toor"] == 0
    assert users(tar({"./etc/passwd": PASSWD}), tar({"bin/x": b""}))["app"] == 1000
    # An upper layer's file replaces the lower one; a whiteout removes it; an opaque /etc hides it.
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc/passwd": b"app:x:0:0::/:/bin/sh\n"}))["app"] == 0
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc/.wh.passwd": b""})) == {}
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc/.wh..wh..opq": b""})) == {}
    assert users(tar({"etc/passwd": PASSWD}), tar({".wh.etc": b""})) == {}
    assert users(tar({"bin/sh": b""})) == {}
    # Something else in the place of /etc or /etc/passwd hides the lower file; a directory /etc does not.
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc": b"a file"})) == {}
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc/passwd": None})) == {}
    assert users(tar({"etc/passwd": PASSWD}), tar({"etc": None, "etc/hosts": b""}))["toor"] == 0
    # The first line of a name wins, as runc's lookup reads the file.
    assert rootfs.parse_passwd("app:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\nbad:x:1e3:0\n") == {
        "app": 0
    }


def test_a_layer_that_expands_past_the_bounds_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootfs, "MAX_EXPANDED_BYTES", 4096)
    with pytest.raises(rootfs.Unreadable, match="expands past"):
        users(tar({"big": b"\0" * 10_000, "etc/passwd": PASSWD}))
    monkeypatch.setattr(rootfs, "MAX_ENTRIES", 3)
    with pytest.raises(rootfs.Unreadable, match="expands past"):
        users(tar({f"f{n}": b"" for n in range(4)}))


def test_what_cannot_be_read_safely_is_not_guessed() -> None:
    with pytest.raises(rootfs.Unreadable, match="is a link"):
        users(tar({"etc/passwd": "../tmp/passwd"}))
    with pytest.raises(rootfs.Unreadable, match="not a readable tar archive"):
        users(b"not a tar at all" * 64)
    with pytest.raises(rootfs.Unreadable, match="does not read"):
        users(tar({"etc/passwd": PASSWD}), media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(rootfs.Unreadable, match="larger than"):
        users(tar({"etc/passwd": b"x" * (rootfs.MAX_PASSWD_BYTES + 1)}))


@pytest.mark.parametrize(
    ("user", "known", "status", "reason"),
    [
        (None, None, "failed", "runs as root (User unset)"),
        ("root", None, "failed", "runs as root"),
        ("0:1000", None, "failed", "is uid 0"),
        ("000", None, "failed", "is uid 0"),
        ("root:1000", None, "failed", "runs as root"),
        ("toor", rootfs.parse_passwd(PASSWD.decode()), "failed", "is uid 0"),
        ("toor:100", rootfs.parse_passwd(PASSWD.decode()), "failed", "is uid 0"),
        ("app", rootfs.parse_passwd(PASSWD.decode()), "passed", "runs as uid 1000"),
        ("1000:0", None, "passed", "runs as uid 1000"),
        ("ghost", rootfs.parse_passwd(PASSWD.decode()), "failed", "not a user of the image's /etc/passwd"),
        ("app", "layer x is not a readable tar archive", "failed", "cannot tell which uid"),
        # Look-alikes are names, not uids: they must resolve like any name.
        ("\u0660", {}, "failed", "not a user"),
        (" 0", {}, "failed", "not a user"),
        ("0_0", {}, "failed", "not a user"),
    ],
)
def test_root_is_decided_on_the_numeric_uid(
    user: str | None, known: dict[str, int] | str | None, status: str, reason: str
) -> None:
    result = checks.check_user(user, known)
    assert (result.status, reason in result.reason) == (status, True), result.reason


def test_only_names_send_the_verifier_to_passwd() -> None:
    def config(user: str) -> oci.ImageConfig:
        return oci.image_config({"config": {"User": user}})

    assert [checks.user_to_resolve(config(u)) for u in ("", "root", "0", "1000:0", "app", "app:0")] == [
        None,
        None,
        None,
        None,
        "app",
        "app",
    ]


def test_an_index_is_as_good_as_its_worst_image() -> None:
    merged = checks.merge_images(
        [
            (
                "linux/amd64 sha256:aa",
                [checks.passed("user", "runs as uid 1000"), checks.passed("env", "ok")],
            ),
            ("linux/arm64 sha256:bb", [checks.failed("user", "runs as root"), checks.passed("env", "ok")]),
        ]
    )
    assert {r.name: r.status for r in merged} == {"user": "failed", "env": "passed"}
    user = next(r for r in merged if r.name == "user")
    assert user.reason == "linux/arm64 sha256:bb: runs as root"
    children = [
        {
            "mediaType": "m",
            "digest": "sha256:" + "a" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "arm64"},
        },
        {
            "mediaType": "m",
            "digest": "sha256:" + "b" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "mediaType": "m",
            "digest": "sha256:" + "c" * 64,
            "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
    ]
    found = checks.index_children({"manifests": children})
    assert [c.digest[7] for c in found] == ["a", "b"], "buildx's attestation entry is not an image"
    runner = checks.runner_child(found)
    assert runner is not None
    assert runner.digest[7] == "b"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a JSON object"),
        ({"config": "User=0"}, "config: Input should be a valid dictionary"),
        ({"config": {"User": 0}}, "config.User: Input should be a valid string"),
        ({"config": {"Env": "A=1"}}, "config.Env: Input should be a valid list"),
        ({"config": {"Labels": ["a"]}}, "config.Labels: Input should be a valid dictionary"),
    ],
)
def test_a_malformed_config_is_malformed(document: object, message: str) -> None:
    with pytest.raises(oci.Malformed, match=message):
        oci.image_config(document)


def test_sizes_are_integers_not_booleans_or_strings() -> None:
    for size in (True, "10", -1, 1.5):
        with pytest.raises(oci.Malformed, match="size"):
            oci.image_manifest({"config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": size}})


def utf16(value: object) -> int:
    return len(value.encode("utf-16-le")) if isinstance(value, str) else 8


def test_a_verdict_fits_one_table_entity_whatever_it_holds() -> None:
    verdict = Verdict("r", "team/app", "sha256:" + "a" * 64, "1", "v1", log_excerpt="\U0001f600" * 100_000)
    many = [f"SECRET_{n}_{'X' * 60}" for n in range(5000)]
    result = checks.failed("env", f"environment names that look like secrets: {checks.names(many)}")
    assert len(result.reason) <= checks.MAX_REASON
    assert "and 4990 more" in result.reason
    verdict.checks = [checks.failed(f"c{n}", "x" * 100_000).as_dict() for n in range(20)]
    for n in range(MAX_EVENTS * 3):
        assert verdict.record_event(f"api:{n:036}")
    assert not verdict.record_event("api:" + "0" * 36), "a cause kept is recorded once"
    for n in range(MAX_TAG_RESULTS * 2):
        verdict.record_tag(f"tag-{n}", {"status": "failed", "reason": "x" * 200})
    assert (len(verdict.events), verdict.events_recorded, len(verdict.tag_results)) == (
        MAX_EVENTS,
        MAX_EVENTS * 3,
        MAX_TAG_RESULTS,
    )
    entity = verdict.to_entity()
    assert {k: utf16(v) for k, v in entity.items() if utf16(v) > MAX_PROPERTY_BYTES} == {}
    assert sum(map(utf16, entity.values())) < 1024 * 1024
