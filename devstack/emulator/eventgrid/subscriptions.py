"""Event subscriptions: their ARM properties validated, and their create, update and delete.

A subscription's PUT and PATCH are long-running: the record is stored `Creating`/`Updating` and the
engine's validator runs the webhook handshake (only when the endpoint, the delivery schema or a
failed state calls for it), then ends the operation.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import not_found
from .delivery import base_url, expired
from .engine import EventGridEngine
from .filters import parse_advanced_filters
from .model import (
    CLOUDEVENTS_SCHEMA,
    EVENTGRID_SCHEMA,
    DeliveryRetry,
    Json,
    Subscription,
    SubscriptionProperties,
    Topic,
    group_of,
    invalid,
)

SUBSCRIPTION_NAME = re.compile(r"[a-zA-Z0-9-]{3,64}")
CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
DELIVERY_SCHEMAS = {EVENTGRID_SCHEMA, CLOUDEVENTS_SCHEMA}
LOOPBACK_NAMES = {"localhost"}
UPDATABLE = (  # what a PATCH may change; the rest is kept from the subscription as last sent
    "destination",
    "filter",
    "labels",
    "expirationTimeUtc",
    "eventDeliverySchema",
    "retryPolicy",
    "deadLetterDestination",
    "deadLetterWithResourceIdentity",
    "deliveryWithResourceIdentity",
)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise invalid("The destination endpointUrl is required for a WebHook destination.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(
            f"Invalid event subscription request: Supplied URL '{base_url(url)}' is invalid. It should be "
            "a proper HTTPS URL like https://www.example.com."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise invalid(
            f"Invalid event subscription request: Supplied URL '{base_url(url)}' is invalid. Only HTTPS "
            "endpoints are allowed (devstack also accepts http on the loopback interface)."
        )
    return url


def bounded_int(value: Any, field: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"'{field}' must be an integer between {low} and {high}.")
    return value


def parse_filter(raw: Any) -> dict[str, Any]:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise invalid("'filter' must be an object.")
    included = raw.get("includedEventTypes")
    if included is not None and (
        not isinstance(included, list) or not all(isinstance(t, str) and t for t in included)
    ):
        raise invalid("'includedEventTypes' must be a list of event type names.")
    result: dict[str, Any] = {}
    for key in ("subjectBeginsWith", "subjectEndsWith"):
        value = raw.get(key) or ""
        if not isinstance(value, str):
            raise invalid(f"'{key}' must be a string.")
        result[key] = value
    if included:
        result["includedEventTypes"] = included
    sensitive = raw.get("isSubjectCaseSensitive", False)
    if not isinstance(sensitive, bool):
        raise invalid("'isSubjectCaseSensitive' must be a boolean.")
    result["isSubjectCaseSensitive"] = sensitive
    if raw.get("advancedFilters"):
        result["advancedFilters"] = parse_advanced_filters(raw["advancedFilters"])
    if "enableAdvancedFilteringOnArrays" in raw:
        result["enableAdvancedFilteringOnArrays"] = bool(raw["enableAdvancedFilteringOnArrays"])
    return result


def parse_dead_letter(raw: Any, field: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("endpointType") != "StorageBlob":
        raise invalid(f"'{field}' must be a StorageBlob dead-letter destination.")
    properties = raw.get("properties") or {}
    resource = properties.get("resourceId")
    container = properties.get("blobContainerName")
    if (
        not isinstance(resource, str)
        or "/providers/microsoft.storage/storageaccounts/" not in resource.lower()
    ):
        raise invalid(f"'{field}.properties.resourceId' must be the resource id of a storage account.")
    if not isinstance(container, str) or not CONTAINER_NAME.fullmatch(container):
        raise invalid(f"'{field}.properties.blobContainerName' is not a valid blob container name.")
    return {
        "endpointType": "StorageBlob",
        "properties": {"resourceId": resource, "blobContainerName": container},
    }


def parse_destination(destination: Any) -> tuple[Json, str]:
    """A WebHook destination: (its `properties` as ARM returns them, the full endpoint URL)."""
    if not isinstance(destination, dict):
        raise invalid("The event subscription destination is required.")
    endpoint_type = destination.get("endpointType")
    if endpoint_type != "WebHook":
        raise invalid(
            f"Destination endpoint type '{endpoint_type}' is not supported by devstack; use 'WebHook'."
        )
    target = destination.get("properties") or {}
    url = check_endpoint(target.get("endpointUrl"))
    shown: Json = {
        "endpointBaseUrl": base_url(url),
        "maxEventsPerBatch": bounded_int(target.get("maxEventsPerBatch"), "maxEventsPerBatch", 1, 5000, 1),
        "preferredBatchSizeInKilobytes": bounded_int(
            target.get("preferredBatchSizeInKilobytes"), "preferredBatchSizeInKilobytes", 1, 1024, 64
        ),
    }
    for key in (
        "azureActiveDirectoryTenantId",
        "azureActiveDirectoryApplicationIdOrUri",
        "minimumTlsVersionAllowed",
    ):
        if target.get(key) is not None:
            shown[key] = target[key]
    mappings = target.get("deliveryAttributeMappings")
    if mappings is not None:
        if not isinstance(mappings, list) or not all(
            isinstance(m, dict) and m.get("name") and m.get("type") in ("Static", "Dynamic") for m in mappings
        ):
            raise invalid("'deliveryAttributeMappings' items need a name and a type (Static or Dynamic).")
        shown["deliveryAttributeMappings"] = mappings
    return shown, url


def parse_delivery_schema(requested: Any, input_schema: str) -> str:
    default_schema = CLOUDEVENTS_SCHEMA if input_schema == CLOUDEVENTS_SCHEMA else EVENTGRID_SCHEMA
    schema = requested or default_schema
    if schema not in DELIVERY_SCHEMAS:
        raise invalid(
            f"Event delivery schema '{schema}' is not supported by devstack. Supported: "
            "EventGridSchema, CloudEventSchemaV1_0."
        )
    if input_schema == CLOUDEVENTS_SCHEMA and schema != CLOUDEVENTS_SCHEMA:
        raise invalid(
            f"Event delivery schema '{schema}' is not valid for a topic whose input schema is "
            "CloudEventSchemaV1_0; use CloudEventSchemaV1_0."
        )
    return str(schema)


def parse_retry(retry: Json) -> DeliveryRetry:
    return {
        "maxDeliveryAttempts": bounded_int(
            retry.get("maxDeliveryAttempts"), "maxDeliveryAttempts", 1, 30, 30
        ),
        "eventTimeToLiveInMinutes": bounded_int(
            retry.get("eventTimeToLiveInMinutes"), "eventTimeToLiveInMinutes", 1, 1440, 1440
        ),
    }


def parse_dead_letters(properties: Json, result: SubscriptionProperties) -> None:
    """`deadLetterDestination` and `deadLetterWithResourceIdentity`, validated into `result`."""
    if properties.get("deadLetterDestination"):
        result["deadLetterDestination"] = parse_dead_letter(
            properties["deadLetterDestination"], "deadLetterDestination"
        )
    with_identity = properties.get("deadLetterWithResourceIdentity")
    if with_identity:
        if not isinstance(with_identity, dict):
            raise invalid("'deadLetterWithResourceIdentity' must be an object.")
        result["deadLetterWithResourceIdentity"] = {
            "identity": with_identity.get("identity") or {"type": "SystemAssigned"},
            "deadLetterDestination": parse_dead_letter(
                with_identity.get("deadLetterDestination"),
                "deadLetterWithResourceIdentity.deadLetterDestination",
            ),
        }


def parse_expiration(expiration: Any) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"'expirationTimeUtc' value '{expiration}' is not a valid date-time.") from exc
    if expired(expiration):
        raise invalid(f"The expiration time '{moment.isoformat()}' must be in the future.")
    return str(expiration)


def parse_subscription(
    properties: Json, topic_id: str, input_schema: str
) -> tuple[SubscriptionProperties, str]:
    """Validate an event subscription's properties: (properties as ARM returns them, endpoint URL)."""
    if properties.get("deliveryWithResourceIdentity"):
        raise invalid("deliveryWithResourceIdentity is not supported by devstack; use 'destination'.")
    destination, url = parse_destination(properties.get("destination"))
    schema = parse_delivery_schema(properties.get("eventDeliverySchema"), input_schema)
    retry = properties.get("retryPolicy") or {}
    if not isinstance(retry, dict):
        raise invalid("'retryPolicy' must be an object.")
    labels = properties.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise invalid("'labels' must be a list of strings.")
    result: SubscriptionProperties = {
        "topic": topic_id,
        "provisioningState": "Creating",
        "destination": {"endpointType": "WebHook", "properties": destination},
        "filter": parse_filter(properties.get("filter")),
        "labels": labels,
        "eventDeliverySchema": schema,
        "retryPolicy": parse_retry(retry),
    }
    parse_dead_letters(properties, result)
    expiration = properties.get("expirationTimeUtc")
    if expiration:
        result["expirationTimeUtc"] = parse_expiration(expiration)
    return result, url


# Operations ---------------------------------------------------------------------------------------
@dataclass
class SavedSubscription:
    """A created or updated subscription and the long-running operation that follows its handshake."""

    subscription: Subscription
    operation: str
    created: bool


class SubscriptionOperations:
    def __init__(self, engine: EventGridEngine) -> None:
        self.engine = engine
        self.records = engine.records

    @staticmethod
    def subscription_id(topic: Topic, name: str) -> str:
        return f"{topic.id}/eventSubscriptions/{name}"

    def find(self, topic: Topic, name: str) -> Subscription:
        found = self.get(topic, name)
        if found is None:
            raise not_found(f"{topic.type}/eventSubscriptions", name, group_of(topic.id))
        return found

    def list(self, topic: Topic) -> list[Subscription]:
        return self.records.subscriptions.list(topic.id)

    @staticmethod
    def check_name(name: str) -> None:
        if not SUBSCRIPTION_NAME.fullmatch(name):
            raise invalid(
                f"Event subscription name '{name}' is invalid: it must be 3 to 64 characters long "
                "and use letters, digits and hyphens only."
            )

    @staticmethod
    def patched(subscription: Subscription, changes: Json) -> Json:
        """The properties a PATCH asks for: the last ones sent, with what it may change replaced."""
        return {**subscription.requested, **{k: changes[k] for k in UPDATABLE if k in changes}}

    def save(
        self,
        topic: Topic,
        name: str,
        requested: Json,
        subscription_type: str,
        start_operation: Callable[[str], str],
    ) -> SavedSubscription:
        """Create or update; the handshake runs again only when the endpoint or schema changed or failed."""
        existing = self.records.subscriptions.get(self.subscription_id(topic, name))
        properties, url = parse_subscription(requested, topic.id, topic.input_schema)
        needed = (
            existing is None
            or existing.endpoint_url != url
            or existing.properties.get("eventDeliverySchema") != properties["eventDeliverySchema"]
            or existing.state != "Succeeded"
        )
        properties["provisioningState"] = "Creating" if existing is None else "Updating"
        if existing and not needed:
            properties["provisioningState"] = "Succeeded"
        subscription_id = existing.id if existing else self.subscription_id(topic, name)
        operation = start_operation(subscription_id)
        subscription = Subscription(
            id=subscription_id,
            name=existing.name if existing else name,
            type=subscription_type,
            properties=properties,
            endpoint_url=url,
            requested=requested,
            operation=operation,
        )
        self.records.subscriptions.put(subscription)
        self.engine.schedule_validation(subscription.id, operation, needed)
        return SavedSubscription(subscription, operation, created=existing is None)

    def get(self, topic: Topic, name: str) -> Subscription | None:
        return self.records.subscriptions.get(self.subscription_id(topic, name))

    def delete(self, subscription: Subscription) -> None:
        self.engine.delete_subscription(subscription.id)
