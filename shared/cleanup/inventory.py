"""The labs as ARM has them: the only part of cleanup that talks to Azure Resource Manager.

`LabInventory` is what the orchestration (`service`) and the extension (`extension`) need of ARM: list
the labs, read their locks, read one group and its locks again, merge tags, send a delete. `ArmInventory`
does it with the SDK's resource and lock clients; a test can hand the orchestration an in-memory one.

The batch reads (`list_labs`, `locks_of`) fail a whole plan, so they raise the DockmasterError of
shared/errors.py's table; the single-group calls raise what ARM raised (azure.core's exceptions:
`ResourceNotFoundError` when the group is gone, an `HttpResponseError` 409 `ScopeLocked` when a lock
refuses a write), because what such a failure means (gone, blocked, a note, a failed deletion) is the
caller's decision.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from ..errors import CLEANUP_ROLE, AccessDenied, DockmasterError, from_azure
from .parallel import CONCURRENCY, each
from .planner import Group, Key, Lock, Rules

log = logging.getLogger("dockmaster.cleanup")


def arm_code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "code", None) or exc.reason or exc.status_code)


def arm_error(exc: AzureError, doing: str) -> DockmasterError:
    """An ARM failure through the one table in shared/errors.py: Retryable when trying later can help.
    A refusal of the app's identity is logged as an error where it happens, whoever handles it."""
    error = from_azure(exc, doing, service="Azure Resource Manager", role=CLEANUP_ROLE)
    if isinstance(error, AccessDenied):
        log.error("%s", error.message)
    return error


def scope_locked(exc: HttpResponseError) -> bool:
    return exc.status_code == 409 and arm_code(exc) == "ScopeLocked"


def as_group(subscription: str, found: Any) -> Group:
    properties = getattr(found, "properties", None)
    return Group(
        subscription=subscription,
        name=str(found.name),
        tags=dict(found.tags or {}),
        managed_by=found.managed_by or None,
        state=str(getattr(properties, "provisioning_state", None) or "Succeeded"),
    )


class Listing(NamedTuple):
    """The labs of a listing, and how many groups and pages were read to find them."""

    labs: list[Group]
    scanned: int
    pages: int


class LabInventory(Protocol):
    def list_labs(self, subscriptions: Iterable[str], rules: Rules) -> Listing:
        """The labs of every subscription (every page). Raises DockmasterError."""
        ...

    def locks_of(self, groups: Sequence[Group]) -> dict[Key, list[Lock]]:
        """The locks of each group (none for a group gone meanwhile). Raises DockmasterError."""
        ...

    def group(self, subscription: str, name: str) -> Group:
        """The group as ARM has it now. Raises AzureError."""
        ...

    def locks(self, subscription: str, name: str) -> list[Lock]:
        """The group's locks now. Raises AzureError."""
        ...

    def merge_tags(
        self, group: Group, updates: Mapping[str, str], expected: Mapping[str, str | None] | None = None
    ) -> dict[str, str]:
        """Write `updates` into the group's tags, leaving every other tag as it is; a tag whose value is
        no longer the `expected` one (changed since the listing) is not written. Returns what was.
        Raises AzureError."""
        ...

    def delete(self, subscription: str, name: str) -> None:
        """Send the group's delete and return, without waiting for it. Raises AzureError."""
        ...


@dataclasses.dataclass
class ArmInventory:
    """`LabInventory` over the SDK's clients, one of each per subscription."""

    resource_client: Callable[[str], Any]
    lock_client: Callable[[str], Any]
    concurrency: int = CONCURRENCY

    def list_labs(self, subscriptions: Iterable[str], rules: Rules) -> Listing:
        labs: list[Group] = []
        scanned = pages = 0
        for subscription in subscriptions:
            doing = f"listing the resource groups of subscription {subscription}"
            try:
                for page in (
                    self.resource_client(subscription)
                    .resource_groups.list(filter=rules.server_filter)
                    .by_page()
                ):
                    pages += 1
                    for found in page:
                        scanned += 1
                        group = as_group(subscription, found)
                        if rules.is_lab(group):
                            labs.append(group)
            except AzureError as exc:
                raise arm_error(exc, doing) from exc
        return Listing(labs, scanned, pages)

    def locks_of(self, groups: Sequence[Group]) -> dict[Key, list[Lock]]:
        def one(group: Group) -> list[Lock]:
            try:
                return self.locks(group.subscription, group.name)
            except ResourceNotFoundError:
                return []  # gone meanwhile: the delete will find it gone
            except AzureError as exc:
                raise arm_error(exc, f"reading the locks of {group.name}") from exc

        return dict(zip((g.key for g in groups), each(one, groups, self.concurrency), strict=True))

    def group(self, subscription: str, name: str) -> Group:
        return as_group(subscription, self.resource_client(subscription).resource_groups.get(name))

    def locks(self, subscription: str, name: str) -> list[Lock]:
        operations = self.lock_client(subscription).management_locks
        return [
            Lock(str(lock.name), str(lock.level)) for lock in operations.list_at_resource_group_level(name)
        ]

    def merge_tags(
        self, group: Group, updates: Mapping[str, str], expected: Mapping[str, str | None] | None = None
    ) -> dict[str, str]:
        # Known race, left as is: the read and the write below carry no ETag (If-Match), so a tag written
        # by someone else between the two is lost. Every tag write of cleanup goes through here.
        operations = self.resource_client(group.subscription).resource_groups
        current = as_group(group.subscription, operations.get(group.name))
        tags = dict(current.tags)
        written: dict[str, str] = {}
        for name, value in updates.items():
            found = current.tag(name)
            if expected is not None and name in expected and (found[1] if found else None) != expected[name]:
                continue
            tags[found[0] if found else name] = value
            written[name] = value
        if written:
            operations.update(group.name, {"tags": tags})
        return written

    def delete(self, subscription: str, name: str) -> None:
        # polling=False: send the DELETE and return; no poller thread follows the operation.
        self.resource_client(subscription).resource_groups.begin_delete(name, polling=False)
