"""Management locks at every scope ARM has them (subscription, resource group, resource) and what they
refuse: the rules ARM applies, without HTTP.

A lock is stored under its id (`{scope}/providers/Microsoft.Authorization/locks/{name}`) with its scope as
parent, so the locks at a scope and everything below it are one index range, and a subscription's locks
are listed page by page whatever else the subscription holds.

What a lock refuses (LOCK-DOC: "When you apply a lock at a parent scope, all resources within that scope
inherit the same lock"): a delete of its scope, of anything below it, and of anything above it (deleting
a group deletes what it holds, so a lock on one resource refuses its group's delete: ARM's ScopeLocked);
a `ReadOnly` lock also refuses writes to its scope and below.
"""

from __future__ import annotations

from typing import Any, cast

from ..errors import ArmError
from ..store import Store
from .records import KIND_LOCK, LOCK_TYPE, Lock, LockProperties

LOCK_LEVELS = {"CanNotDelete", "ReadOnly"}
LOCKS_SEGMENT = "/providers/microsoft.authorization/locks/"


def lock_id(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/locks/{name}"


def scope_of(lock: Lock) -> str:
    """The id of what a lock sits on, as the lock's id spells it."""
    return lock["id"][: lock["id"].lower().rindex(LOCKS_SEGMENT)]


def ancestors(scope: str) -> list[str]:
    """The scopes above `scope` whose locks it inherits, outermost first: its subscription, its group,
    and for a child resource each resource above it."""
    parts = scope.rstrip("/").split("/")  # '', subscriptions, {sub}, resourceGroups, {rg}, providers, ...
    above = ["/".join(parts[:3])] if len(parts) > 3 else []
    if len(parts) > 5:
        above.append("/".join(parts[:5]))
    # /providers/{namespace}/{type}/{name}[/{childType}/{childName}...]: every type/name pair above the last
    above.extend("/".join(parts[:end]) for end in range(9, len(parts), 2))
    return above


class Locks:
    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, scope: str, name: str, body: dict[str, Any]) -> tuple[Lock, bool]:
        """Create or replace the lock `name` at `scope` (an id as stored); returns it and whether it's new."""
        properties = body.get("properties") or {}
        level = properties.get("level")
        if level not in LOCK_LEVELS:
            raise ArmError(
                400,
                "LockLevelInvalid",
                f"The lock level '{level}' is invalid. Supported levels: CanNotDelete, ReadOnly.",
            )
        key = lock_id(scope, name)
        existing = self._store.get(KIND_LOCK, key)
        lock_properties = LockProperties(level=level)
        if properties.get("notes"):
            lock_properties["notes"] = properties["notes"]
        if properties.get("owners"):
            lock_properties["owners"] = properties["owners"]
        lock = Lock(id=key, type=LOCK_TYPE, name=name, properties=lock_properties)
        self._store.put(KIND_LOCK, key, scope, lock)
        return lock, existing is None

    def get(self, scope: str, name: str) -> Lock:
        lock = self._store.get(KIND_LOCK, lock_id(scope, name))
        if not lock:
            raise ArmError(404, "LockNotFound", f"The lock '{name}' could not be found.")
        return cast(Lock, lock)

    def delete(self, scope: str, name: str) -> bool:
        """Remove a lock; whether there was one."""
        return self._store.delete(lock_id(scope, name))

    def at_and_below(self, scope: str, after: str | None = None, limit: int = -1) -> list[Lock]:
        """The locks at `scope` and below it, in id order, after the id `after`: ListAtResourceGroupLevel,
        ListAtResourceLevel ("or any level below resource"), ListAtSubscriptionLevel."""
        return cast(list[Lock], self._store.under(KIND_LOCK, scope, after, limit))

    def refusing(self, scope: str, operation: str) -> list[Lock]:
        """The locks that refuse `operation` ("write" or "delete") on `scope`."""
        inherited = [
            cast(Lock, lock) for above in ancestors(scope) for lock in self._store.list(KIND_LOCK, above)
        ]
        if operation == "delete":
            return inherited + self.at_and_below(scope)
        at_scope = cast(list[Lock], self._store.list(KIND_LOCK, scope))
        return [lock for lock in inherited + at_scope if lock["properties"]["level"] == "ReadOnly"]

    def ensure_unlocked(self, scope: str, operation: str) -> None:
        refusing = self.refusing(scope, operation)
        if refusing:
            locked = ",".join(dict.fromkeys(scope_of(lock) for lock in refusing))
            raise ArmError(
                409,
                "ScopeLocked",
                f"The scope '{scope}' cannot perform {operation} operation because following "
                f"scope(s) are locked: '{locked}'. Please remove the lock and try again.",
            )

    def remove_at_and_below(self, scope: str) -> None:
        """With what they sit on: a group's deletion removes the locks of everything it held."""
        for lock in self.at_and_below(scope):
            self._store.delete(lock["id"])
