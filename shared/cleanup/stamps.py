"""Creation stamps: a resource group's `createdAt` and `createdBy` tags, from ARM's own write event.

The app's Event Grid subscription to its Azure subscription's resource events (a system topic of type
Microsoft.Resources.Subscriptions) delivers `Microsoft.Resources.ResourceWriteSuccess` for every ARM write;
a resource group's (operationName `Microsoft.Resources/subscriptions/resourceGroups/write`) is stamped with
the event's time and the caller its claims name, unless the tags are there. Lab cleanup reads `createdAt`
(CLEANUP_CREATION_TAGS), so a lab's TTL counts from when it was made, not from when cleanup first saw it.

Event Grid delivers at least once and in any order, so a stamp never overwrites: a redelivery, a later
write, and the write of the stamp itself (it is a group write too) find the tags and write nothing. A
group that existed before the subscription is stamped at its first write after it: its expiry can only
move later, never earlier. Only the subscription and group are taken from the event, each validated; the
ARM endpoint is the app's own.

Schema: the sample event of learn.microsoft.com/azure/event-grid/event-schema-subscriptions
(Event Grid schema: eventType, eventTime, data; CloudEvents: type, time, data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from ..clock import stamp
from ..errors import InvalidInput
from ..events import shown
from .inventory import LabInventory, arm_error, scope_locked

log = logging.getLogger("dockmaster.cleanup.stamps")

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
CREATED_AT = "createdAt"
CREATED_BY = "createdBy"
# The claims that name the caller, the first present decides: a user's UPN, else a display name, else the
# application (a service principal or managed identity has no UPN).
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
CALLER_CLAIMS = (UPN_CLAIM, "name", "appid")
TAG_VALUE_LIMIT = 256  # ARM: a tag value has at most 256 characters

SUBSCRIPTION_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Resources_CreateOrUpdate's resourceGroupName (specs/resources/resources.json): ^[-\w\._\(\)]+$, 1-90.
GROUP_NAME = re.compile(r"[-\w._()]{1,90}")
GROUP_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)", re.IGNORECASE
)


@dataclasses.dataclass(frozen=True)
class GroupWrite:
    """A resource group's successful write, as its event tells it."""

    event_id: str
    subscription: str
    group: str
    at: dt.datetime
    by: str | None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"event {what} is missing or not a string")
    return value


def _time(raw: Any) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(_text(raw, "time").replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"event time '{shown(raw)}' is not ISO 8601") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def caller(claims: Any) -> str | None:
    """Who made the write, from the token's claims: UPN, else name, else app id; None if none is there."""
    if not isinstance(claims, Mapping):
        return None
    for claim in CALLER_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:TAG_VALUE_LIMIT]
    return None


def group_of(resource_id: str) -> tuple[str, str]:
    """(subscription, group) of a resource group's id; InvalidInput for anything else or a bad name."""
    found = GROUP_ID.fullmatch(resource_id)
    if found is None:
        raise InvalidInput(f"'{shown(resource_id)}' is not a resource group's id")
    subscription, group = found["subscription"], found["group"]
    if not SUBSCRIPTION_ID.fullmatch(subscription):
        raise InvalidInput(f"'{shown(subscription)}' is not a subscription id")
    if not GROUP_NAME.fullmatch(group) or group.endswith("."):
        raise InvalidInput(f"'{shown(group)}' is not a valid resource group name")
    return subscription, group


def group_write(event: Mapping[str, Any]) -> GroupWrite | None:
    """The group write an event reports, or None for any other event (acknowledged and ignored).
    Raises InvalidInput for a group write that does not hold together."""
    kind = event.get("eventType", event.get("type"))
    data = event.get("data")
    if kind != WRITE_SUCCESS or not isinstance(data, Mapping):
        return None
    operation = data.get("operationName")
    if not isinstance(operation, str) or operation.lower() != GROUP_WRITE.lower():
        return None
    subscription, group = group_of(_text(data.get("resourceUri"), "data.resourceUri"))
    claimed = data.get("subscriptionId")
    if isinstance(claimed, str) and claimed.lower() != subscription.lower():
        raise InvalidInput(f"event data.subscriptionId '{shown(claimed)}' is not the group's subscription")
    return GroupWrite(
        event_id=_text(event.get("id"), "id"),
        subscription=subscription,
        group=group,
        at=_time(event.get("eventTime", event.get("time"))),
        by=caller(data.get("claims")),
    )


def wanted_tags(write: GroupWrite, tags: Mapping[str, str], creation_tags: Iterable[str]) -> dict[str, str]:
    """The stamps a group lacks. No `createdAt` if any creation tag is set: the first present decides the
    lab's age (CLEANUP_CREATION_TAGS), so adding one would override the creation time a person gave."""
    present = {name.lower() for name in tags}
    wanted: dict[str, str] = {}
    if not any(name.lower() in present for name in (CREATED_AT, *creation_tags)):
        wanted[CREATED_AT] = stamp(write.at)
    if write.by is not None and CREATED_BY.lower() not in present:
        wanted[CREATED_BY] = write.by
    return wanted


@dataclasses.dataclass
class Stamper:
    """Stamps groups of the covered subscriptions through the inventory's tag merge."""

    inventory: LabInventory
    subscriptions: tuple[str, ...]
    creation_tags: tuple[str, ...] = (CREATED_AT,)

    def handle(self, event: Mapping[str, Any]) -> dict[str, str]:
        """The tags written (none for a redelivery, another event, a gone or locked group). Raises
        InvalidInput (acknowledge), Retryable and AccessDenied (fail: Event Grid redelivers)."""
        write = group_write(event)
        if write is None:
            return {}
        if write.subscription.lower() not in {s.lower() for s in self.subscriptions}:
            log.info(
                "event=%s: subscription %s is not covered; ignored", shown(write.event_id), write.subscription
            )
            return {}
        return self._stamp(write)

    def _stamp(self, write: GroupWrite) -> dict[str, str]:
        doing = f"stamping resource group {write.group} in subscription {write.subscription}"
        try:
            current = self.inventory.group(write.subscription, write.group)
            wanted = wanted_tags(write, current.tags, self.creation_tags)
            if not wanted:
                log.info("event=%s: %s: already stamped; nothing written", shown(write.event_id), doing)
                return {}
            # `expected` None: a tag that appeared since the read above is left as it is (never overwrite).
            written = self.inventory.merge_tags(current, wanted, expected=dict.fromkeys(wanted))
        except ResourceNotFoundError:
            log.info("event=%s: %s: the group is gone; nothing to stamp", shown(write.event_id), doing)
            return {}
        except HttpResponseError as exc:
            if scope_locked(exc):
                log.warning(
                    "event=%s: %s: a ReadOnly lock refuses tag writes; left unstamped",
                    shown(write.event_id),
                    doing,
                )
                return {}
            raise arm_error(exc, doing) from exc
        except AzureError as exc:
            raise arm_error(exc, doing) from exc
        log.info("event=%s: %s: wrote %s", shown(write.event_id), doing, written)
        return written
