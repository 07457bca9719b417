"""OCI 1.1 referrers, which docker-registry 2.8 neither serves nor indexes: built from the manifests it
stores (it keeps a pushed manifest's bytes as sent, `subject` and `artifactType` included).

The distribution spec v1.1 (`opencontainers/distribution-spec` `spec.md`, "Listing Referrers"): the
referrers of a digest are the image manifests and indexes of the same repository whose `subject` names it,
each listed as a descriptor carrying its `artifactType` (else, for an image manifest, its config's media
type) and its annotations.

A repository's index is read lazily and kept per repository: a manifest's content never changes under its
digest, so what was read of one is known for good, and only a digest not seen before is read. Two cheap
checks keep it true to the storage without reading every manifest again: the revisions directory's
modification time (a push adds an entry there: its listing is read again, names only) and, for each
referrer answered, whether its revision link is still there (a delete removes the link, not the entry).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AcrError
from .names import DIGEST
from .registry_storage import INDEX_TYPES, RegistryStorage

IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# docker-registry's `maxManifestBodySize` (distribution `registry/handlers/manifests.go`): past it a PUT is
# 400 MANIFEST_INVALID "http: request body too large".
MANIFEST_LIMIT = 4 * 1024 * 1024
# A directory modified this recently may change again within the same timestamp: its listing is not trusted.
RACY_NS = 1_000_000_000


def manifest_invalid(detail: Any) -> AcrError:
    return AcrError(400, "MANIFEST_INVALID", "manifest invalid", detail=detail)


def pushed_subject(raw: bytes) -> str | None:
    """The subject digest of a manifest being pushed; None when it names none (or is no JSON, which
    docker-registry refuses in its own words). A `subject` that is not a descriptor with a valid digest is
    refused: docker-registry 2.8 ignores the field and would keep it."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("subject") is None:
        return None
    subject = document["subject"]
    digest = subject.get("digest") if isinstance(subject, dict) else None
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise manifest_invalid({"subject": "the subject must be a descriptor with a valid digest"})
    return digest


@dataclass(frozen=True)
class Referrer:
    subject: str
    descriptor: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def artifact_type(self) -> str | None:
        value = self.descriptor.get("artifactType")
        return str(value) if value is not None else None


def referrer_of(digest: str, raw: bytes) -> Referrer | None:
    """The referrer a stored manifest is (its descriptor, as the spec lists it), or None if it names no
    subject."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    target = subject.get("digest") if isinstance(subject, dict) else None
    if not isinstance(target, str) or not DIGEST.fullmatch(target):
        return None
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        media_type = IMAGE_INDEX if "manifests" in document else IMAGE_MANIFEST
    descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(raw)}
    artifact_type = document.get("artifactType")
    config = document.get("config")
    if not artifact_type and media_type not in INDEX_TYPES and isinstance(config, dict):
        artifact_type = config.get("mediaType")  # "If the artifactType is empty or missing" (the spec)
    if isinstance(artifact_type, str) and artifact_type:
        descriptor["artifactType"] = artifact_type
    annotations = document.get("annotations")
    if isinstance(annotations, dict) and annotations:
        descriptor["annotations"] = annotations
    return Referrer(target, descriptor)


@dataclass
class RepositoryReferrers:
    """What is known of one repository's manifests: every digest read, and its referrer if it is one."""

    listed_mtime: int | None = None  # of the revisions directory when it was last listed and trusted
    read: dict[str, Referrer | None] = field(default_factory=dict)
    by_subject: dict[str, dict[str, Referrer]] = field(default_factory=dict)

    def learn(self, digest: str, referrer: Referrer | None) -> None:
        self.read[digest] = referrer
        if referrer is not None:
            self.by_subject.setdefault(referrer.subject, {})[digest] = referrer


class ReferrersIndex:
    """Per repository (by backend namespace and name): subject digest → referrers. Its methods read files;
    call them off the event loop."""

    def __init__(self) -> None:
        self._repositories: dict[tuple[str, str], RepositoryReferrers] = {}
        self._lock = threading.Lock()

    def touched(self, namespace: str, repository: str) -> None:
        """A push through the front: the next query lists the repository's manifests again (names only)."""
        with self._lock:
            known = self._repositories.get((namespace, repository))
            if known is not None:
                known.listed_mtime = None

    def referrers(self, storage: RegistryStorage, repository: str, subject: str) -> list[Referrer]:
        """The present referrers of `subject`, by digest."""
        with self._lock:
            known = self._current(storage, repository)
            found = list(known.by_subject.get(subject, {}).values())
        present = [r for r in found if storage.has_manifest(repository, r.digest)]
        return sorted(present, key=lambda r: r.digest)

    def closure(self, storage: RegistryStorage, repository: str, subject: str) -> list[str]:
        """Every present referrer of `subject`, of those, and so on (a signature of an SBOM of an image),
        the farthest first: the order to delete them in."""
        order: list[str] = []
        seen = {subject}
        level = [subject]
        while level:
            found = [r.digest for s in level for r in self.referrers(storage, repository, s)]
            level = [d for d in dict.fromkeys(found) if d not in seen]
            seen.update(level)
            order.extend(level)
        return order[::-1]

    def _current(self, storage: RegistryStorage, repository: str) -> RepositoryReferrers:
        key = (storage.namespace, repository)
        known = self._repositories.setdefault(key, RepositoryReferrers())
        revisions = storage.revisions_dir(repository)
        try:
            mtime = revisions.stat().st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            known.listed_mtime = None
            return known
        if known.listed_mtime == mtime:
            return known
        names = self._names(revisions)
        for digest in names:
            if digest not in known.read and storage.has_manifest(repository, digest):
                raw = storage.blob(digest)
                if raw is not None:
                    known.learn(digest, referrer_of(digest, raw))
        # A listing taken while the directory may still change within its timestamp is read again next time.
        known.listed_mtime = mtime if time.time_ns() - mtime > RACY_NS else None
        return known

    @staticmethod
    def _names(revisions: os.PathLike[str]) -> Iterable[str]:
        with os.scandir(revisions) as entries:
            return [f"sha256:{entry.name}" for entry in entries if DIGEST.fullmatch(f"sha256:{entry.name}")]
