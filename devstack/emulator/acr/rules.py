"""ACR's changeable attributes enforced on `/v2/`: what a pull, push or delete may touch."""

from __future__ import annotations

import asyncio

from ..errors import AcrError
from .attributes import AttributeStore, AttributeTable, manifest_target, tag_target
from .names import DIGEST, TAG, denied
from .records import Attribute, FrontRegistry
from .registry_storage import RegistryStorage, TagRecord


def v2_action(method: str) -> str:
    """The scope action a `/v2/` request needs."""
    return {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")


class ImageRules:
    def __init__(self, attributes: AttributeStore) -> None:
        self._attributes = attributes

    def _allowed(self, registry: FrontRegistry, target: str, attribute: Attribute) -> bool:
        return self._attributes.get(registry, target).allows(attribute)

    def check_repository(self, registry: FrontRegistry, name: str, action: str) -> None:
        """A repository's readEnabled gates its pulls, its writeEnabled its pushes and deletes: `ACR-LOCK`
        locks "the repository and all images in it" with writeEnabled=false, while its deleteEnabled=false
        protects the repository alone ("Individual images can still be updated or deleted")."""
        attributes = self._attributes.get(registry, name)
        if (action == "pull" and not attributes.read_enabled) or (
            action in ("push", "delete") and not attributes.write_enabled
        ):
            raise denied()

    def check_subject_read(self, registry: FrontRegistry, name: str, digest: str) -> None:
        """Listing a digest's referrers reads about it: refused, as its pull is, while it is not
        readEnabled (stricter: ACR documents no attribute for the referrers API)."""
        if not self._allowed(registry, manifest_target(name, digest), "readEnabled"):
            raise denied()

    async def check_manifest(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str, ref: str, method: str
    ) -> None:
        """A manifest reference's own attributes and its tag's: read for a pull, write for a push that
        moves a tag, delete and write (of the manifest and every tag on it) for a delete by digest."""
        is_digest = DIGEST.fullmatch(ref) is not None
        if not is_digest and not TAG.fullmatch(ref):
            raise AcrError(400, "MANIFEST_INVALID", "invalid manifest reference", detail={"reference": ref})
        tag = None if is_digest else await asyncio.to_thread(storage.tag, name, ref)
        if method in ("GET", "HEAD"):
            digest = ref if is_digest else tag.digest if tag else None
            if digest and not self._allowed(registry, manifest_target(name, digest), "readEnabled"):
                raise denied()
            if tag and not self._allowed(registry, tag_target(name, ref), "readEnabled"):
                raise denied()
        elif method == "PUT" and tag is not None:
            if not self._allowed(registry, tag_target(name, ref), "writeEnabled") or not self._allowed(
                registry, manifest_target(name, tag.digest), "writeEnabled"
            ):
                raise denied()
        elif method == "DELETE" and is_digest:
            tags = await asyncio.to_thread(storage.tags, name)
            if not self.deletable(registry, name, ref, tags):
                raise denied()

    def deletable(
        self,
        registry: FrontRegistry,
        name: str,
        digest: str,
        tags: list[TagRecord],
        table: AttributeTable | None = None,
    ) -> bool:
        """Whether neither the manifest nor a tag on it is delete- or write-locked."""
        targets = [
            manifest_target(name, digest),
            *(tag_target(name, t.name) for t in tags if t.digest == digest),
        ]
        return all(self._attributes.get(registry, target, table).deletable for target in targets)
