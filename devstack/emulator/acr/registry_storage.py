"""Read-mostly access to docker-registry's filesystem storage for one registry namespace.

docker-registry has no API for what ACR's `/acr/v1/` answers (untagged manifests,
times, untagging), but its storage layout is plain files the emulator owns:
`repositories/{ns}/{repo}/_manifests/{tags,revisions}` and `blobs/sha256/..`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


def platform_of(config: bytes | None) -> dict[str, Any]:
    """architecture and os of an image config, only those that are strings. The registry stores any
    bytes as a config (OCI artifacts carry their own config types) and ACR lists such manifests with
    their other properties: one crafted config must not fail a listing or a PATCH."""
    try:
        document = json.loads(config) if config else None
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    return {key: value for key in ("architecture", "os") if isinstance(value := document.get(key), str)}


@dataclass(frozen=True)
class TagRecord:
    name: str
    digest: str
    created: float
    updated: float


# What a manifest's bytes say (media type, size with its blobs, config media type, architecture, os,
# an index's children): read once per digest and storage, since a digest fixes its bytes.
ManifestContent = tuple[str, int, str | None, str | None, str | None, list[dict[str, Any]]]
MAX_CONTENTS = 100_000
_CONTENTS: dict[tuple[Path, str], ManifestContent] = {}
# Each repository's tags as last read, by name: (the link's mtime, inode and size, the record).
MAX_TAGGED_REPOSITORIES = 1_000
_TAGS: dict[Path, dict[str, tuple[tuple[int, int, int], TagRecord]]] = {}


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    created: float
    media_type: str
    size: int
    config_media_type: str | None
    architecture: str | None
    os: str | None
    references: list[dict[str, Any]]


class RegistryStorage:
    def __init__(self, root: Path, namespace: str) -> None:
        self.root = root / "docker" / "registry" / "v2"
        self.namespace = namespace
        self._dirs: dict[str, Path] = {}  # resolved and checked, for as long as this request lasts

    def _repo_dir(self, repo: str) -> Path:
        if (known := self._dirs.get(repo)) is not None:
            return known
        path = (self.root / "repositories" / self.namespace / repo).resolve()
        base = (self.root / "repositories" / self.namespace).resolve()
        if not path.is_relative_to(base) or path == base:
            raise ValueError(f"invalid repository name '{repo}'")
        self._dirs[repo] = path
        return path

    def repositories(self) -> list[str]:
        base = self.root / "repositories" / self.namespace
        if not base.is_dir():
            return []
        names = []
        for manifests in base.rglob("_manifests"):
            repo = manifests.parent.relative_to(base).as_posix()
            if self.manifests(repo):
                names.append(repo)
        return sorted(names)

    def exists(self, repo: str) -> bool:
        """Whether the repository holds a manifest: up to the first linked revision, not a listing."""
        try:
            revisions = self.revisions_dir(repo)
        except ValueError:
            return False
        if not revisions.is_dir():
            return False
        with os.scandir(revisions) as entries:
            return any(os.path.isfile(os.path.join(entry.path, "link")) for entry in entries)

    def tags(self, repo: str) -> list[TagRecord]:
        """Every tag: a stat of each tag's link, read again only when the link changed (a push rewrites
        it), so a listing of a repository of many tags costs no read of every tag."""
        tags_dir = self._repo_dir(repo) / "_manifests" / "tags"
        if not tags_dir.is_dir():
            return []
        if len(_TAGS) >= MAX_TAGGED_REPOSITORIES and tags_dir not in _TAGS:
            _TAGS.clear()
        known = _TAGS.setdefault(tags_dir, {})
        records: dict[str, TagRecord] = {}
        with os.scandir(tags_dir) as entries:
            for entry in entries:
                try:
                    link = os.stat(os.path.join(entry.path, "current", "link"))
                except OSError:
                    continue
                version = (link.st_mtime_ns, link.st_ino, link.st_size)
                cached = known.get(entry.name)
                if cached is not None and cached[0] == version:
                    records[entry.name] = cached[1]
                elif (record := self._record(Path(entry.path))) is not None:
                    known[entry.name] = (version, record)
                    records[entry.name] = record
        for gone in known.keys() - records.keys():
            del known[gone]
        return list(records.values())

    def tags_after(
        self, repo: str, last: str | None, limit: int, keep: Callable[[str], bool]
    ) -> list[TagRecord]:
        """Up to `limit` tags in name order after `last` that `keep` accepts: a page costs its own tags'
        reads, plus one directory listing, not a read of every tag."""
        tags_dir = self._repo_dir(repo) / "_manifests" / "tags"
        if not tags_dir.is_dir():
            return []
        records: list[TagRecord] = []
        for name in sorted(entry.name for entry in tags_dir.iterdir()):
            if len(records) >= limit:
                break
            if (last is None or name > last) and keep(name):
                record = self._record(tags_dir / name)
                if record is not None:
                    records.append(record)
        return records

    def tag(self, repo: str, tag: str) -> TagRecord | None:
        """One tag, without listing the others (a pull must not cost O(tags))."""
        if "/" in tag or tag in ("", ".", ".."):
            return None
        return self._record(self._repo_dir(repo) / "_manifests" / "tags" / tag)

    @staticmethod
    def _record(tag_dir: Path) -> TagRecord | None:
        link = tag_dir / "current" / "link"
        if not link.is_file():
            return None
        updated = link.stat().st_mtime
        # The tag's directory is made by its first push and later pushes write below it, so its
        # mtime is the creation time: one stat per tag, not a directory walk.
        created = min(tag_dir.stat().st_mtime, updated)
        return TagRecord(tag_dir.name, link.read_text().strip(), created, updated)

    def revisions_dir(self, repo: str) -> Path:
        """Where docker-registry links a repository's manifests, one directory per sha256 digest."""
        return self._repo_dir(repo) / "_manifests" / "revisions" / "sha256"

    def has_manifest(self, repo: str, digest: str) -> bool:
        """One manifest's presence, without listing the others (a delete removes its link, not its
        directory)."""
        algorithm, _, hexdigest = digest.partition(":")
        if (
            algorithm != "sha256"
            or len(hexdigest) != 64
            or not all(c in "0123456789abcdef" for c in hexdigest)
        ):
            return False
        return (self.revisions_dir(repo) / hexdigest / "link").is_file()

    def manifest_digests(self, repo: str) -> list[str]:
        """The digests of the repository's revisions, from one directory listing (no stat): a deleted
        manifest's directory stays, without its link, so `manifest` of one may be None."""
        try:
            revisions = self.revisions_dir(repo)
        except ValueError:
            return []
        return [f"sha256:{name}" for name in os.listdir(revisions)] if revisions.is_dir() else []

    def manifests(self, repo: str) -> dict[str, float]:
        """Digest → time the revision was first pushed."""
        try:
            revisions = self.revisions_dir(repo)
        except ValueError:
            return {}
        if not revisions.is_dir():
            return {}
        return {
            f"sha256:{entry.name}": (entry / "link").stat().st_mtime
            for entry in revisions.iterdir()
            if (entry / "link").is_file()
        }

    def blob(self, digest: str) -> bytes | None:
        algorithm, _, hexdigest = digest.partition(":")
        if (
            algorithm != "sha256"
            or len(hexdigest) != 64
            or not all(c in "0123456789abcdef" for c in hexdigest)
        ):
            return None
        path = self.root / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
        return path.read_bytes() if path.is_file() else None

    def manifest(self, repo: str, digest: str, created: float | None = None) -> ManifestRecord | None:
        """One manifest of the repository (`created` as `manifests` listed it, else read from its link):
        what its bytes say is read once per digest, which fixes them."""
        if created is None:
            if not self.has_manifest(repo, digest):
                return None
            created = (self.revisions_dir(repo) / digest.partition(":")[2] / "link").stat().st_mtime
        content = self._content(digest)
        return None if content is None else ManifestRecord(digest, created, *content)

    def _content(self, digest: str) -> ManifestContent | None:
        key = (self.root, digest)
        found = _CONTENTS.get(key)
        if found is None:
            found = self._read_content(digest)
            if found is not None:
                if len(_CONTENTS) >= MAX_CONTENTS:
                    _CONTENTS.clear()
                _CONTENTS[key] = found
        return found

    def _read_content(self, digest: str) -> ManifestContent | None:
        raw = self.blob(digest)
        if raw is None:
            return None
        document = json.loads(raw)  # docker-registry validated it: a manifest is a JSON object
        media_type = document.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        config = document.get("config") or {}
        # Go reads a JSON null as a zero size or no platform, so docker-registry keeps such manifests as sent.
        size = len(raw) + sum(int(layer.get("size") or 0) for layer in document.get("layers") or [])
        platform: dict[str, Any] = {}
        if config.get("digest") and media_type not in INDEX_TYPES:
            platform = platform_of(self.blob(config["digest"]))
            size += int(config.get("size") or 0)
        architecture, os_name = platform.get("architecture"), platform.get("os")
        references = [
            {
                "digest": m["digest"],
                "architecture": (m.get("platform") or {}).get("architecture"),
                "os": (m.get("platform") or {}).get("os"),
            }
            for m in document.get("manifests") or []
        ]
        return (media_type, size, config.get("mediaType"), architecture, os_name, references)

    def untag(self, repo: str, tag: str) -> bool:
        tag_dir = self._repo_dir(repo) / "_manifests" / "tags" / tag
        if not tag_dir.is_dir() or "/" in tag or tag in ("", ".", ".."):
            return False
        shutil.rmtree(tag_dir)
        return True

    def remove_repository(self, repo: str) -> None:
        shutil.rmtree(self._repo_dir(repo), ignore_errors=True)
