"""The labs as ARM has them: the only part of cleanup that talks to Azure Resource Manager.

`LabInventory` is what the orchestration (`service`) and the extension (`extension`) need of ARM: survey
the labs and their locks, read one group and its locks again, merge tags, send a delete. `ArmInventory`
does it with the SDK's resource and lock clients; a test can hand the orchestration an in-memory one.

A survey reads each subscription's groups and its locks page by page: the lock listing of a subscription
(ListAtSubscriptionLevel) holds the locks at every scope in it (subscription, groups, resources in them),
so a plan costs group pages + lock pages whatever the number of candidates, where reading each candidate's
locks cost one request per candidate. The subscriptions are read concurrently, at most `concurrency`
requests in flight; a throttled request (429) waits out ARM's `Retry-After` in the SDK's retry policy.

The survey fails a whole plan, so it raises the DockmasterError of
shared/errors.py's table; the single-group calls raise what ARM raised (azure.core's exceptions:
`ResourceNotFoundError` when the group is gone, an `HttpResponseError` 409 `ScopeLocked` when a lock
refuses a write), because what such a failure means (gone, blocked, a note, a failed deletion) is the
caller's decision.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from azure.core.exceptions import AzureError, HttpResponseError

from ..errors import CLEANUP_ROLE, AccessDenied, DockmasterError, from_azure
from .parallel import CONCURRENCY, each
from .planner import Group, Key, Lock, Rules
from .records import Held

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


LOCKS_SEGMENT = "/providers/microsoft.authorization/locks/"


def placed(lock_id: str) -> tuple[str, str | None, str]:
    """Where a listed lock sits, from its id: (subscription, group name or None for a lock on the
    subscription, what it is on when not the group itself — a resource's type/name, or the subscription)."""
    scope = lock_id[: lock_id.lower().rindex(LOCKS_SEGMENT)]
    parts = scope.split("/")  # '', subscriptions, {sub}[, resourceGroups, {group}[, providers, ...]]
    if len(parts) < 5 or parts[3].lower() != "resourcegroups":
        return parts[2], None, "the subscription"
    return parts[2], parts[4], "/".join(parts[6:])


class Survey(NamedTuple):
    """The labs of the subscriptions, the locks that refuse each one's delete (on it, on what it holds,
    on its subscription), and how many groups and pages were read to find them."""

    labs: list[Group]
    locks: dict[Key, list[Lock]]
    scanned: int
    pages: int
    lock_pages: int


class LabInventory(Protocol):
    def survey(self, subscriptions: Iterable[str], rules: Rules) -> Survey:
        """The labs of every subscription (every page) and their locks. Raises DockmasterError."""
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

    def resources(self, subscription: str, name: str) -> list[Held]:
        """The resources in the group now (every page). Raises AzureError."""
        ...


@dataclasses.dataclass
class GroupListing:
    labs: list[Group]
    scanned: int
    pages: int


@dataclasses.dataclass
class LockListing:
    by_scope: dict[tuple[str, str | None], list[Lock]]  # (subscription, group or None), lower-case
    pages: int


@dataclasses.dataclass
class ArmInventory:
    """`LabInventory` over the SDK's clients, one of each per subscription."""

    resource_client: Callable[[str], Any]
    lock_client: Callable[[str], Any]
    concurrency: int = CONCURRENCY

    def survey(self, subscriptions: Iterable[str], rules: Rules) -> Survey:
        wanted = list(dict.fromkeys(subscriptions))
        readings = [(sub, "groups") for sub in wanted] + [(sub, "locks") for sub in wanted]
        listed = each(lambda reading: self._read(*reading, rules), readings, self.concurrency)
        groups = [result for result in listed if isinstance(result, GroupListing)]
        locks = [result for result in listed if isinstance(result, LockListing)]
        by_scope: dict[tuple[str, str | None], list[Lock]] = {}
        for listing in locks:
            for key, held in listing.by_scope.items():
                by_scope.setdefault(key, []).extend(held)
        labs = [lab for listing in groups for lab in listing.labs]
        return Survey(
            labs=labs,
            locks={lab.key: by_scope.get(lab.key, []) + by_scope.get((lab.key[0], None), []) for lab in labs},
            scanned=sum(listing.scanned for listing in groups),
            pages=sum(listing.pages for listing in groups),
            lock_pages=sum(listing.pages for listing in locks),
        )

    def _read(self, subscription: str, what: str, rules: Rules) -> GroupListing | LockListing:
        try:
            return self._groups(subscription, rules) if what == "groups" else self._locks(subscription)
        except AzureError as exc:
            listed = "resource groups" if what == "groups" else "locks"
            raise arm_error(exc, f"listing the {listed} of subscription {subscription}") from exc

    def _groups(self, subscription: str, rules: Rules) -> GroupListing:
        listing = GroupListing([], 0, 0)
        operations = self.resource_client(subscription).resource_groups
        for page in operations.list(filter=rules.server_filter).by_page():
            listing.pages += 1
            for found in page:
                listing.scanned += 1
                group = as_group(subscription, found)
                if rules.is_lab(group):
                    listing.labs.append(group)
        return listing

    def _locks(self, subscription: str) -> LockListing:
        listing = LockListing({}, 0)
        operations = self.lock_client(subscription).management_locks
        for page in operations.list_at_subscription_level().by_page():
            listing.pages += 1
            for found in page:
                _, group, on = placed(str(found.id))
                scope = (subscription.lower(), group.lower() if group else None)
                listing.by_scope.setdefault(scope, []).append(Lock(str(found.name), str(found.level), on))
        return listing

    def group(self, subscription: str, name: str) -> Group:
        return as_group(subscription, self.resource_client(subscription).resource_groups.get(name))

    def locks(self, subscription: str, name: str) -> list[Lock]:
        operations = self.lock_client(subscription).management_locks
        return [
            Lock(str(lock.name), str(lock.level), placed(str(lock.id))[2])
            for lock in operations.list_at_resource_group_level(name)
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

    def resources(self, subscription: str, name: str) -> list[Held]:
        listing = self.resource_client(subscription).resources.list_by_resource_group(name)
        return [Held(str(found.type), str(found.name), str(found.id)) for found in listing]

    def delete(self, subscription: str, name: str) -> None:
        # polling=False: send the DELETE and return; no poller thread follows the operation.
        self.resource_client(subscription).resource_groups.begin_delete(name, polling=False)
