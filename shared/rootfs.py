"""What an image's files say, read from its layers as a runtime would see them: the user names of its
/etc/passwd, to tell which uid a `User` name runs as.

Layers are read newest first, as the union filesystem stacks them, honouring the OCI image spec's
whiteouts (`.wh.<name>` removes a lower file, `.wh..wh..opq` hides a lower directory's content);
every read is bounded (compressed bytes by the caller's budget, expanded bytes and entries here).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator

from .errors import InvalidInput
from .oci import Descriptor

USERS_FILE = "etc/passwd"
MAX_PASSWD_BYTES = 1024 * 1024
MAX_EXPANDED_BYTES = 2 * 1024**3
MAX_ENTRIES = 200_000
TAR_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
)


class Unreadable(InvalidInput):
    """The file cannot be told from the layers within the bounds (or the layers are not tar archives)."""


class _Stream(io.RawIOBase):
    """A file object over an iterator of byte chunks, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _normal(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _scan(chunks: Iterator[bytes], what: str) -> bytes | bool | None:
    """In one layer: /etc/passwd's bytes; False if the layer removes it (or hides /etc); None if the
    layer says nothing about it."""
    found: bytes | None = None
    removed = False
    entries = 0
    try:
        with tarfile.open(fileobj=_Stream(chunks), mode="r|*") as archive:
            for member in archive:
                entries += 1
                if entries > MAX_ENTRIES or member.offset_data + member.size > MAX_EXPANDED_BYTES:
                    raise Unreadable(
                        f"{what} expands past {MAX_ENTRIES} entries or {MAX_EXPANDED_BYTES} bytes"
                    )
                name = _normal(member.name)
                if name in ("etc/.wh.passwd", ".wh.etc", "etc/.wh..wh..opq"):
                    removed = True
                elif name in (USERS_FILE, "etc") and (member.issym() or member.islnk()):
                    raise Unreadable(f"/{name} is a link in {what}: not followed")
                elif (name == "etc" and not member.isdir()) or (name == USERS_FILE and not member.isfile()):
                    removed = True  # something else in its place hides what the layers below hold
                elif name == USERS_FILE:
                    if member.size > MAX_PASSWD_BYTES:
                        raise Unreadable(f"/etc/passwd in {what} is larger than {MAX_PASSWD_BYTES} bytes")
                    extracted = archive.extractfile(member)
                    found = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise Unreadable(f"{what} is not a readable tar archive: {exc}") from None
    if found is not None:
        return found
    return False if removed else None


def parse_passwd(text: str) -> dict[str, int]:
    """name → uid, the first line of a name winning (as runc's user lookup reads it)."""
    users: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] and fields[2].isascii() and fields[2].isdigit():
            users.setdefault(fields[0], int(fields[2]))
    return users


def passwd_users(
    layers: Iterable[Descriptor], read: Callable[[Descriptor], Iterator[bytes]]
) -> dict[str, int]:
    """The users of the image's /etc/passwd (none when it has none), reading `layers` newest first."""
    for layer in reversed(list(layers)):
        what = f"layer {layer.digest}"
        if layer.media_type not in TAR_TYPES:
            raise Unreadable(f"{what} has media type {layer.media_type}, which verification does not read")
        chunks = read(layer)
        found = _scan(chunks, what)
        for _ in chunks:  # the archive's padding: the digest is checked once the blob has been read whole
            pass
        if found is False:
            return {}
        if isinstance(found, bytes):
            return parse_passwd(found.decode("utf-8", "replace"))
    return {}
