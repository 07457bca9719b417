"""Resource groups and the management locks at their scope: the rules ARM applies, without HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from ..errors import ArmError, not_found, require_location
from ..store import Store
from .locks import Locks
from .operations import Operations
from .records import KIND_GROUP, Lock, ResourceGroup, group_id, subscription_key

RG_NAME = re.compile(r"[-\w._()]{1,90}")
TAG_FILTER = re.compile(
    r"\s*tagName\s+eq\s+'((?:[^']|'')*)'(?:\s+and\s+tagValue\s+eq\s+'((?:[^']|'')*)')?\s*",
    re.IGNORECASE,
)
TagFilter = tuple[str, str | None]
# Starts a group's deletion in the background: (subscription, group name, operation id).
DeletionScheduler = Callable[[str, str, str], None]


class GroupEvents(Protocol):
    """ARM's resource events for a group's writes and completed deletes (devstack/emulator/eventgrid)."""

    def group_written(self, group_id: str, created: bool) -> int: ...

    def group_deleted(self, group_id: str) -> int: ...


def parse_tag_filter(raw: str | None) -> TagFilter | None:
    if not raw:
        return None
    found = TAG_FILTER.fullmatch(raw)
    if not found:
        raise ArmError(
            400,
            "InvalidFilterInQueryString",
            f"Invalid $filter '{raw}' specified in the query string. Supported: "
            "\"tagName eq 'name'\" optionally followed by \"and tagValue eq 'value'\".",
        )
    name = found.group(1).replace("''", "'")
    value = found.group(2).replace("''", "'") if found.group(2) is not None else None
    return name, value


def check_group_name(rg: str) -> None:
    if not RG_NAME.fullmatch(rg) or rg.endswith("."):
        raise ArmError(
            400,
            "InvalidResourceGroup",
            f"The provided resource group name '{rg}' has these invalid characters or length. "
            "The name can only be a letter, digit, '-', '.', '(', ')' or '_', at most 90 "
            "characters, and cannot end with a period.",
        )


def ensure_not_deleting(group: ResourceGroup) -> None:
    """Nothing is created or changed in a group once its deletion is accepted."""
    if group["properties"]["provisioningState"] == "Deleting":
        raise ArmError(
            409,
            "ResourceGroupBeingDeleted",
            f"The resource group '{group['name']}' is in deprovisioning state and cannot perform this "
            "operation.",
        )


class ResourceGroups:
    def __init__(
        self,
        store: Store,
        operations: Operations,
        locks: Locks,
        subscriptions: Iterable[str],
        schedule_deletion: DeletionScheduler,
    ) -> None:
        self._store = store
        self._operations = operations
        self.locks = locks
        self._subscriptions = {sub.lower() for sub in subscriptions}
        self._schedule_deletion = schedule_deletion
        self.events: GroupEvents | None = None  # set once Event Grid is built

    # Groups ------------------------------------------------------------------------
    def check_subscription(self, sub: str) -> None:
        if sub.lower() not in self._subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def find(self, sub: str, rg: str) -> ResourceGroup | None:
        return cast(ResourceGroup | None, self._store.get(KIND_GROUP, group_id(sub, rg)))

    def resources(self, sub: str, rg: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        """The records of the given kinds directly in the group, by id; ResourceGroupNotFound without it."""
        group = self.get(sub, rg)
        found = {key: body for kind in kinds for key, body in self._store.items(kind, group["id"]).items()}
        return [found[key] for key in sorted(found)]

    def get(self, sub: str, rg: str) -> ResourceGroup:
        self.check_subscription(sub)
        group = self.find(sub, rg)
        if not group:
            raise not_found("resourceGroup", rg)
        return group

    def put(self, sub: str, rg: str, body: dict[str, Any]) -> tuple[ResourceGroup, bool]:
        """Create or update a group; returns it and whether it is new."""
        location = require_location(body)
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise ArmError(400, "InvalidTag", "Tags must be an object of string values.")
        existing = self.find(sub, rg)
        if existing:
            ensure_not_deleting(existing)
            self.ensure_unlocked(sub, existing["name"], "write")
            if existing["location"].lower() != location.lower():
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already "
                    f"exists in location '{existing['location']}' in resource group "
                    f"'{existing['name']}'.",
                )
        group = ResourceGroup(
            id=existing["id"] if existing else group_id(sub, rg),
            name=existing["name"] if existing else rg,
            type="Microsoft.Resources/resourceGroups",
            location=existing["location"] if existing else location,
            tags=tags,
            properties={"provisioningState": "Succeeded"},
        )
        if body.get("managedBy"):
            group["managedBy"] = body["managedBy"]
        self._save(sub, group)
        if self.events is not None:
            self.events.group_written(group["id"], existing is None)
        return group, existing is None

    def open_for_writes(self, sub: str, rg: str) -> ResourceGroup:
        """A group that may be changed, or a resource created or changed in: it exists, is not being
        deleted, is not locked. Checked before the change is read."""
        group = self.get(sub, rg)
        ensure_not_deleting(group)
        self.ensure_unlocked(sub, group["name"], "write")
        return group

    def update(self, sub: str, group: ResourceGroup, body: dict[str, Any]) -> ResourceGroup:
        if "tags" in body:
            group["tags"] = body["tags"] or {}
        if "managedBy" in body:
            group["managedBy"] = body["managedBy"]
        self._save(sub, group)
        if self.events is not None:
            self.events.group_written(group["id"], False)
        return group

    def begin_delete(self, sub: str, rg: str) -> str:
        """Accept a group's deletion (once: a second delete joins the first); returns its operation."""
        group = self.get(sub, rg)
        if group["properties"]["provisioningState"] != "Deleting":
            self.ensure_unlocked(sub, group["name"], "delete")
            operation = self._operations.start(sub, "deleteResourceGroup", group["id"])
            group["properties"]["provisioningState"] = "Deleting"
            group["properties"]["operationId"] = operation
            self._save(sub, group)
            self._schedule_deletion(sub, group["name"], operation)
        return group["properties"]["operationId"]

    def deleting(self) -> list[tuple[str, str, str]]:
        """(subscription, name, operation) of each group whose deletion was accepted and not done."""
        return [
            (group["id"].split("/")[2], group["name"], group["properties"]["operationId"])
            for group in cast(list[ResourceGroup], self._store.list(KIND_GROUP))
            if group["properties"]["provisioningState"] == "Deleting"
        ]

    def remove(self, scope: str) -> None:
        """The last step of a deletion, once what the group held is gone: its locks, then the group."""
        self.locks.remove_at_and_below(scope)
        self._store.delete(scope)
        if self.events is not None:
            self.events.group_deleted(scope)

    def in_subscription(
        self, sub: str, tag_filter: TagFilter | None, after: str | None, limit: int
    ) -> list[ResourceGroup]:
        """Up to `limit` groups of the subscription in id order after the id `after`, those with the tag
        only when a filter is given: read from an index, so a page costs what it returns."""
        parent = subscription_key(sub)
        if not tag_filter:
            return cast(list[ResourceGroup], self._store.children(KIND_GROUP, parent, after, limit))
        return cast(list[ResourceGroup], self._store.tagged(KIND_GROUP, parent, *tag_filter, after, limit))

    def _save(self, sub: str, group: ResourceGroup) -> None:
        self._store.put(KIND_GROUP, group["id"], subscription_key(sub), group)

    # Locks at the group's scope ----------------------------------------------------------
    def ensure_unlocked(self, sub: str, rg: str, operation: str) -> None:
        self.locks.ensure_unlocked(group_id(sub, rg), operation)

    def put_lock(self, group: ResourceGroup, name: str, body: dict[str, Any]) -> tuple[Lock, bool]:
        """Create or replace a lock on a group; returns it and whether it is new."""
        return self.locks.put(group["id"], name, body)

    def get_lock(self, sub: str, rg: str, name: str) -> Lock:
        return self.locks.get(self.get(sub, rg)["id"], name)

    def delete_lock(self, sub: str, rg: str, name: str) -> bool:
        """Remove a lock; whether there was one."""
        return self.locks.delete(self.get(sub, rg)["id"], name)

    def list_locks(self, sub: str, rg: str, after: str | None, limit: int) -> list[Lock]:
        """The locks of the group and of everything in it (ARM's ListAtResourceGroupLevel)."""
        return self.locks.at_and_below(self.get(sub, rg)["id"], after, limit)
