"""ACR's changeable attributes, stored per registry under `{registry id}|{target}`.

A target is a repository (`name`), a tag (`name:tag`) or a manifest (`name@digest`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import AcrError
from ..store import Store
from .records import ATTRIBUTES, ChangeableAttributes, FrontRegistry

KIND = "acrattributes"
AttributeTable = dict[str, dict[str, Any]]  # a registry's stored attributes by lowercased key


def tag_target(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def manifest_target(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


class AttributeStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def _key(registry: FrontRegistry, target: str) -> str:
        return f"{registry.id}|{target}"

    def get(
        self, registry: FrontRegistry, target: str, table: AttributeTable | None = None
    ) -> ChangeableAttributes:
        key = self._key(registry, target)
        stored = table.get(key.lower()) if table is not None else self._store.get(KIND, key)
        return ChangeableAttributes.from_json(stored or {})

    def table(self, registry: FrontRegistry) -> AttributeTable:
        """All of a registry's attributes at once, for listings (thousands of tags, one query)."""
        return self._store.items(KIND, registry.id)

    def update(self, registry: FrontRegistry, target: str, patch: Any) -> ChangeableAttributes:
        """Apply a PATCH body; ACR accepts `teleportEnabled` too and keeps nothing of it here."""
        if not isinstance(patch, dict) or not set(patch) <= {*ATTRIBUTES, "teleportEnabled"}:
            raise AcrError(400, "UNSUPPORTED", f"changeable attributes are {', '.join(ATTRIBUTES)}")
        if not all(isinstance(value, bool) for value in patch.values()):
            raise AcrError(400, "UNSUPPORTED", "changeable attributes take true or false")
        updated = self.get(registry, target).patched(patch)
        self._store.put(KIND, self._key(registry, target), registry.id, updated.as_json())
        return updated

    def forget(self, registry: FrontRegistry, targets: Iterable[str]) -> None:
        for target in targets:
            self._store.delete(self._key(registry, target))
