"""ACR's metadata of repositories, tags and manifests (what `/acr/v1/` serves), without HTTP.

docker-registry has no API for it (untagged manifests, times, untagging): it is read from the
registry's storage, with the changeable attributes kept beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import AcrError
from ..timeutil import iso
from .attributes import AttributeStore, AttributeTable, manifest_target, tag_target
from .backend import RegistryBackend
from .names import DIGEST, denied
from .records import DeletedRepository, FrontRegistry, ManifestView, RepositoryView, TagView
from .registry_storage import ManifestRecord, RegistryStorage, TagRecord

View = TypeVar("View", TagView, ManifestView)


def ordered(views: list[View], orderby: str, key: Callable[[View], str]) -> list[View]:
    """A listing in the `orderby` asked (by last update, either way), else by its key."""
    if orderby == "timedesc":
        return sorted(views, key=lambda v: v["lastUpdateTime"], reverse=True)
    if orderby == "timeasc":
        return sorted(views, key=lambda v: v["lastUpdateTime"])
    if orderby:
        raise AcrError(400, "UNSUPPORTED", "orderby must be timedesc or timeasc")
    return sorted(views, key=key)


def after(views: list[View], key: Callable[[View], str], last: str | None) -> list[View]:
    """What follows `last` in a listing: after its position when it is listed, else after it by key."""
    if not last:
        return views
    keys = [key(v) for v in views]
    return views[keys.index(last) + 1 :] if last in keys else [v for v in views if key(v) > last]


def tag_name(view: TagView) -> str:
    return view["name"]


def manifest_digest(view: ManifestView) -> str:
    return view["digest"]


class RepositoryMetadata:
    def __init__(self, storage_root: Path, attributes: AttributeStore, backend: RegistryBackend) -> None:
        self._root = storage_root
        self.attributes = attributes
        self._backend = backend

    def storage(self, registry: FrontRegistry) -> RegistryStorage:
        return RegistryStorage(self._root, registry.namespace)

    def existing(self, registry: FrontRegistry, name: str) -> RegistryStorage:
        """The registry's storage, once `name` is known to hold a manifest."""
        storage = self.storage(registry)
        if not storage.exists(name):
            raise AcrError(
                404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": name}
            )
        return storage

    # Repositories -----------------------------------------------------------------------------
    def listed_repositories(self, registry: FrontRegistry) -> list[str]:
        names = self.storage(registry).repositories()
        table = self.attributes.table(registry)
        return [n for n in names if self.attributes.get(registry, n, table).list_enabled]

    async def repository(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str
    ) -> RepositoryView:
        tags = await asyncio.to_thread(storage.tags, name)
        manifests = await asyncio.to_thread(storage.manifests, name)
        times = [*manifests.values(), *(t.updated for t in tags)]
        return {
            "registry": registry.login_server,
            "imageName": name,
            "createdTime": iso(min(times)),
            "lastUpdateTime": iso(max(times)),
            "manifestCount": len(manifests),
            "tagCount": len(tags),
            "changeableAttributes": self.attributes.get(registry, name).as_json(),
        }

    async def delete_repository(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str
    ) -> DeletedRepository:
        """Every manifest deleted through the backend (so that it notifies), then the repository's files
        and attributes; refused while the repository or any image in it is delete- or write-locked
        (stricter: `ACR-LOCK` speaks of images' deletion, not of their repository's). A manifest the
        backend does not delete fails the whole (its error, as a /v2/ delete answers it): what was
        deleted by then loses its attributes, the rest keeps its own."""
        tags = await asyncio.to_thread(storage.tags, name)
        manifests = await asyncio.to_thread(storage.manifests, name)
        table = self.attributes.table(registry)
        locked = [
            name,
            *(manifest_target(name, d) for d in manifests),
            *(tag_target(name, t.name) for t in tags),
        ]
        # `ACR-LOCK`: a delete- or write-locked image blocks its deletion; this one deletes them all.
        if not all(self.attributes.get(registry, target, table).deletable for target in locked):
            raise denied()
        deleted: list[str] = []
        for digest in manifests:
            path = f"/v2/{registry.namespace}/{name}/manifests/{digest}"
            try:
                await self._backend.delete(path, registry.namespace)  # False: gone already, as wanted
            except AcrError:
                self._forget(registry, name, deleted, tags)
                raise
            deleted.append(digest)
        await asyncio.to_thread(storage.remove_repository, name)
        self._backend.forget_blobs()
        self.attributes.forget(
            registry,
            [name, *(tag_target(name, t.name) for t in tags), *(manifest_target(name, d) for d in manifests)],
        )
        return {"manifestsDeleted": sorted(manifests), "tagsDeleted": sorted(t.name for t in tags)}

    def _forget(self, registry: FrontRegistry, name: str, digests: list[str], tags: list[TagRecord]) -> None:
        """The attributes of deleted manifests and of their tags (docker-registry untags what it deletes)."""
        gone = set(digests)
        self.attributes.forget(
            registry,
            [
                *(manifest_target(name, d) for d in digests),
                *(tag_target(name, t.name) for t in tags if t.digest in gone),
            ],
        )

    # Tags ---------------------------------------------------------------------------------------
    def tag_view(
        self, registry: FrontRegistry, name: str, tag: TagRecord, table: AttributeTable | None = None
    ) -> TagView:
        return {
            "name": tag.name,
            "digest": tag.digest,
            "createdTime": iso(tag.created),
            "lastUpdateTime": iso(tag.updated),
            "signed": False,
            "changeableAttributes": self.attributes.get(
                registry, tag_target(name, tag.name), table
            ).as_json(),
        }

    async def tag_page(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str, last: str | None, limit: int
    ) -> list[TagView]:
        """Listed tags by name after `last`, at most `limit`: reads only those tags."""
        table = self.attributes.table(registry)

        def listed(tag: str) -> bool:
            return self.attributes.get(registry, tag_target(name, tag), table).list_enabled

        records = await asyncio.to_thread(storage.tags_after, name, last, limit, listed)
        return [self.tag_view(registry, name, t, table) for t in records]

    async def tags(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str, digest: str | None
    ) -> list[TagView]:
        """Every listed tag (on `digest`, if given), unordered."""
        table = self.attributes.table(registry)
        records = await asyncio.to_thread(storage.tags, name)
        return [
            self.tag_view(registry, name, t, table)
            for t in records
            if (digest is None or t.digest == digest)
            and self.attributes.get(registry, tag_target(name, t.name), table).list_enabled
        ]

    async def tag(self, storage: RegistryStorage, name: str, tag: str) -> TagRecord:
        found = await asyncio.to_thread(storage.tag, name, tag)
        if found is None:
            raise AcrError(404, "TAG_UNKNOWN", "the specified tag does not exist", detail={"tag": tag})
        return found

    async def untag(self, registry: FrontRegistry, storage: RegistryStorage, name: str, tag: str) -> None:
        if not self.attributes.get(registry, tag_target(name, tag)).deletable or (
            not self.attributes.get(registry, name).write_enabled  # a write-locked repository's images too
        ):
            raise denied()
        await asyncio.to_thread(storage.untag, name, tag)
        self.attributes.forget(registry, [tag_target(name, tag)])

    # Manifests ----------------------------------------------------------------------------------
    def manifest_view(
        self,
        registry: FrontRegistry,
        name: str,
        manifest: ManifestRecord,
        tags: list[TagRecord],
        table: AttributeTable | None = None,
    ) -> ManifestView:
        target = manifest_target(name, manifest.digest)
        view: ManifestView = {
            "digest": manifest.digest,
            "imageSize": manifest.size,
            "createdTime": iso(manifest.created),
            "lastUpdateTime": iso(
                max([manifest.created, *(t.updated for t in tags if t.digest == manifest.digest)])
            ),
            "mediaType": manifest.media_type,
            "tags": sorted(t.name for t in tags if t.digest == manifest.digest),
            "changeableAttributes": self.attributes.get(registry, target, table).as_json(),
        }
        if manifest.config_media_type:
            view["configMediaType"] = manifest.config_media_type
        if manifest.architecture:
            view["architecture"] = manifest.architecture
        if manifest.os:
            view["os"] = manifest.os
        if manifest.references:
            view["references"] = manifest.references
        return view

    async def manifests(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str
    ) -> list[ManifestView]:
        """Every listed manifest of a repository, unordered."""
        return await self.manifest_page(registry, storage, name, None, None)

    async def manifest_page(
        self,
        registry: FrontRegistry,
        storage: RegistryStorage,
        name: str,
        last: str | None,
        limit: int | None,
    ) -> list[ManifestView]:
        """Listed manifests by digest after `last`, at most `limit` (None: all): a page reads its own
        manifests, the revisions' links and the tags (to name each manifest's), not every manifest."""
        table = self.attributes.table(registry)

        def listed(digest: str) -> bool:
            return self.attributes.get(registry, manifest_target(name, digest), table).list_enabled

        def read() -> tuple[list[ManifestRecord], list[TagRecord]]:
            records: list[ManifestRecord] = []
            for digest in sorted(storage.manifest_digests(name)):
                if limit is not None and len(records) >= limit:
                    break
                wanted = (last is None or digest > last) and listed(digest)
                if wanted and (record := storage.manifest(name, digest)) is not None:
                    records.append(record)
            return records, storage.tags(name) if records else []

        records, tags = await asyncio.to_thread(read)
        by_digest: dict[str, list[TagRecord]] = {}
        for tag in tags:
            by_digest.setdefault(tag.digest, []).append(tag)
        return [self.manifest_view(registry, name, m, by_digest.get(m.digest, []), table) for m in records]

    async def manifest(self, storage: RegistryStorage, name: str, digest: str) -> ManifestRecord:
        if not DIGEST.fullmatch(digest):
            raise AcrError(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        found = await asyncio.to_thread(storage.manifest, name, digest)
        if found is None:
            raise AcrError(404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"digest": digest})
        return found

    async def manifest_of(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str, manifest: ManifestRecord
    ) -> ManifestView:
        """One manifest's view, with the tags on it."""
        tags = await asyncio.to_thread(storage.tags, name)
        return self.manifest_view(registry, name, manifest, tags)
