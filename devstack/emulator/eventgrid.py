"""Event Grid: ARM for system topics, custom topics and their event subscriptions; topic publishing.

ARM routes follow azure-mgmt-eventgrid 10.4.0 (api-version 2025-02-15) and the REST spec: creates
and subscription updates are long-running (201 + Azure-AsyncOperation), a subscription is active
only after the webhook handshake (SubscriptionValidationEvent for the Event Grid schema, the
CloudEvents OPTIONS check otherwise). Custom topics publish at `properties.endpoint`, an HTTPS
URL on the ARM listener that azure-eventgrid's EventGridPublisherClient posts to unchanged, with
`aeg-sas-key`, `aeg-sas-token` or an Entra token (audience https://eventgrid.azure.net).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .delivery import (
    CLOUDEVENTS_SCHEMA,
    EVENTGRID_SCHEMA,
    KIND_SUBSCRIPTION,
    KIND_SYSTEM_TOPIC,
    KIND_TOPIC,
    base_url,
    expired,
)
from .errors import ArmError
from .resources import paged, parse_top, subscription_key
from .routing import ArmRouter, read_json
from .store import public

if TYPE_CHECKING:
    from .service import Emulator

EG_VERSIONS = {
    "2020-06-01",
    "2021-12-01",
    "2022-06-15",
    "2023-06-01-preview",
    "2023-12-15-preview",
    "2024-06-01-preview",
    "2024-12-15-preview",
    "2025-02-15",
    "2025-04-01-preview",
}
PUBLISH_VERSIONS = {"2018-01-01"}
PROVIDER = "/providers/Microsoft.EventGrid"
ACR_TOPIC_TYPE = "Microsoft.ContainerRegistry.Registries"
EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
SYSTEM_TOPIC_NAME = re.compile(r"[a-zA-Z0-9-]{3,128}")
TOPIC_NAME = re.compile(r"[a-zA-Z0-9-]{3,50}")
SUBSCRIPTION_NAME = re.compile(r"[a-zA-Z0-9-]{3,64}")
CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
NAME_FILTER = re.compile(
    r"\s*(?:contains\(\s*name\s*,\s*'((?:[^']|'')*)'\s*\)|name\s+eq\s+'((?:[^']|'')*)')\s*", re.IGNORECASE
)
DELIVERY_SCHEMAS = {EVENTGRID_SCHEMA, CLOUDEVENTS_SCHEMA}
MAX_PUBLISH_BYTES = 1024 * 1024
EVENTGRID_FIELDS = {
    "id",
    "topic",
    "subject",
    "data",
    "eventType",
    "eventTime",
    "metadataVersion",
    "dataVersion",
}
EVENTGRID_REQUIRED = ("id", "subject", "data", "eventType", "eventTime", "dataVersion")
CLOUDEVENT_REQUIRED = ("id", "source", "specversion", "type")
LOOPBACK_NAMES = {"localhost"}
log = logging.getLogger("devstack.eventgrid")


def audience(value: str) -> str:
    return value.rstrip("/").removesuffix("/.default").lower()


def invalid(message: str) -> ArmError:
    return ArmError(400, "InvalidRequest", message)


def group_of(resource_id: str) -> str:
    return resource_id.split("/")[4]


def eventgrid_not_found(kind: str, name: str, group: str) -> ArmError:
    return ArmError(
        404, "ResourceNotFound", f"The Resource '{kind}/{name}' under resource group '{group}' was not found."
    )


def filter_by_name(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    raw = request.query_params.get("$filter")
    if not raw:
        return items
    found = NAME_FILTER.fullmatch(raw)
    if not found:
        raise ArmError(
            400,
            "InvalidRequest",
            f"Invalid $filter '{raw}'. Supported: \"contains(name, 'text')\" and \"name eq 'text'\".",
        )
    if found.group(1) is not None:
        text = found.group(1).replace("''", "'").lower()
        return [i for i in items if text in str(i["name"]).lower()]
    exact = str(found.group(2)).replace("''", "'").lower()
    return [i for i in items if str(i["name"]).lower() == exact]


def identity_of(body: dict[str, Any], tenant: str, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    identity = body.get("identity")
    if not isinstance(identity, dict):
        return existing
    kind = str(identity.get("type") or "None")
    if kind == "None":
        return {"type": "None"}
    result: dict[str, Any] = {"type": kind}
    if "SystemAssigned" in kind:
        result["principalId"] = (existing or {}).get("principalId") or str(uuid.uuid4())
        result["tenantId"] = tenant
    if identity.get("userAssignedIdentities"):
        result["userAssignedIdentities"] = {
            key: {"principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4())}
            for key in identity["userAssignedIdentities"]
        }
    return result


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
    if raw.get("advancedFilters"):
        raise invalid("Advanced filters are not supported by devstack's Event Grid.")
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


def parse_subscription(
    properties: dict[str, Any], topic_id: str, input_schema: str
) -> tuple[dict[str, Any], str]:
    """Validate an event subscription's properties: (properties as ARM returns them, endpoint URL)."""
    if properties.get("deliveryWithResourceIdentity"):
        raise invalid("deliveryWithResourceIdentity is not supported by devstack; use 'destination'.")
    destination = properties.get("destination")
    if not isinstance(destination, dict):
        raise invalid("The event subscription destination is required.")
    endpoint_type = destination.get("endpointType")
    if endpoint_type != "WebHook":
        raise invalid(
            f"Destination endpoint type '{endpoint_type}' is not supported by devstack; use 'WebHook'."
        )
    target = destination.get("properties") or {}
    url = check_endpoint(target.get("endpointUrl"))
    out_destination: dict[str, Any] = {
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
            out_destination[key] = target[key]
    mappings = target.get("deliveryAttributeMappings")
    if mappings is not None:
        if not isinstance(mappings, list) or not all(
            isinstance(m, dict) and m.get("name") and m.get("type") in ("Static", "Dynamic") for m in mappings
        ):
            raise invalid("'deliveryAttributeMappings' items need a name and a type (Static or Dynamic).")
        out_destination["deliveryAttributeMappings"] = mappings
    default_schema = CLOUDEVENTS_SCHEMA if input_schema == CLOUDEVENTS_SCHEMA else EVENTGRID_SCHEMA
    schema = properties.get("eventDeliverySchema") or default_schema
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
    retry = properties.get("retryPolicy") or {}
    if not isinstance(retry, dict):
        raise invalid("'retryPolicy' must be an object.")
    labels = properties.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise invalid("'labels' must be a list of strings.")
    result: dict[str, Any] = {
        "topic": topic_id,
        "provisioningState": "Creating",
        "destination": {"endpointType": "WebHook", "properties": out_destination},
        "filter": parse_filter(properties.get("filter")),
        "labels": labels,
        "eventDeliverySchema": schema,
        "retryPolicy": {
            "maxDeliveryAttempts": bounded_int(
                retry.get("maxDeliveryAttempts"), "maxDeliveryAttempts", 1, 30, 30
            ),
            "eventTimeToLiveInMinutes": bounded_int(
                retry.get("eventTimeToLiveInMinutes"), "eventTimeToLiveInMinutes", 1, 1440, 1440
            ),
        },
    }
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
    expiration = properties.get("expirationTimeUtc")
    if expiration:
        try:
            moment = dt.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
        except ValueError as exc:
            raise invalid(f"'expirationTimeUtc' value '{expiration}' is not a valid date-time.") from exc
        if expired(expiration):
            raise invalid(f"The expiration time '{moment.isoformat()}' must be in the future.")
        result["expirationTimeUtc"] = expiration
    return result, url


# Publishing: validation of what EventGridPublisherClient sends ---------------------------------------
class PublishError(Exception):
    """An Event Grid data-plane error: `{"error": {"code", "message", "details"}}`."""

    def __init__(self, status: int, code: str, message: str, detail_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail_code = detail_code

    def response(self) -> JSONResponse:
        stamp = dt.datetime.now(dt.UTC)
        when = f"{stamp.month}/{stamp.day}/{stamp.year} {stamp.strftime('%I:%M:%S %p').lstrip('0')}"
        message = (
            f"{self.message} Report '{uuid.uuid4()}:{stamp.microsecond % 10}:{when} (UTC)' to our forums "
            "for assistance or raise a support ticket."
        )
        error: dict[str, Any] = {"code": self.code, "message": message}
        if self.detail_code:
            error["details"] = [{"code": self.detail_code, "message": message}]
        return JSONResponse({"error": error}, status_code=self.status)


def bad_input(message: str) -> PublishError:
    return PublishError(400, "BadRequest", message, "InputJsonInvalid")


def check_time(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise bad_input(f"Property '{field}' must be a date-time string.")
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_input(f"Property '{field}' value '{value}' is not a valid date-time.") from exc


def parse_eventgrid_events(payload: Any, topic_id: str) -> list[dict[str, Any]]:
    """Events posted to an Event Grid schema topic, completed as Event Grid stores them."""
    if not isinstance(payload, list):
        raise bad_input(
            "This resource is configured for 'EventGridEvent' schema. Unexpected token when reading JSON. "
            "Expected: StartArray, actual: StartObject."
        )
    events = []
    for item in payload:
        if not isinstance(item, dict):
            raise bad_input(
                "This resource is configured for 'EventGridEvent' schema. Each event must be an object."
            )
        for key in item:
            if key not in EVENTGRID_FIELDS:
                raise bad_input(
                    "This resource is configured for 'EventGridEvent' schema. Received unexpected property "
                    f"'{key}' in JSON which does not conform to the expected schema."
                )
        for key in EVENTGRID_REQUIRED:
            if key not in item:
                raise bad_input(
                    f"This resource is configured for 'EventGridEvent' schema. Required property '{key}' "
                    "was not found."
                )
        for key in ("id", "subject", "eventType", "dataVersion"):
            if not isinstance(item[key], str):
                raise bad_input(f"Property '{key}' must be a string.")
        if not item["id"] or not item["eventType"]:
            raise bad_input("Properties 'id' and 'eventType' must not be empty.")
        check_time(item["eventTime"], "eventTime")
        topic = item.get("topic")
        if topic not in (None, "") and str(topic).lower() != topic_id.lower():
            raise bad_input(f"Property 'topic' value '{topic}' does not match the topic '{topic_id}'.")
        if item.get("metadataVersion") not in (None, "1"):
            raise bad_input("Property 'metadataVersion' must be '1' when present.")
        events.append({**item, "topic": topic_id, "metadataVersion": "1"})
    return events


def parse_cloudevents(payload: Any, content_type: str) -> list[dict[str, Any]]:
    """Events posted to a CloudEvents 1.0 topic: a batch, or one structured-mode event."""
    single = content_type.split(";")[0].strip().lower() == "application/cloudevents+json"
    if single and isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise bad_input(
            "This resource is configured to receive event in 'CloudEventV10' schema. The JSON received does "
            "not conform to the expected schema: expected an array of events "
            "(application/cloudevents-batch+json)."
        )
    for item in payload:
        if not isinstance(item, dict):
            raise bad_input(
                "This resource is configured to receive event in 'CloudEventV10' schema. "
                "Each event must be an object."
            )
        for key in CLOUDEVENT_REQUIRED:
            if key not in item:
                raise bad_input(
                    "This resource is configured to receive event in 'CloudEventV10' schema. "
                    "The JSON received does not conform to the expected schema. "
                    f"Required property '{key}' was not found."
                )
            if not isinstance(item[key], str) or not item[key]:
                raise bad_input(f"Property '{key}' must be a non-empty string.")
        if item["specversion"] != "1.0":
            raise bad_input(
                f"Property 'specversion' value '{item['specversion']}' is not supported; use '1.0'."
            )
        if "time" in item and item["time"] is not None:
            check_time(item["time"], "time")
        if item.get("data") is not None and item.get("data_base64") is not None:
            raise bad_input("Properties 'data' and 'data_base64' cannot both be set.")
    return [dict(item) for item in payload]


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def sas_valid(token: str, keys: list[str], endpoint: str, now: dt.datetime | None = None) -> str | None:
    """Check an `r=..&e=..&s=..` token as azure-eventgrid's generate_sas makes it; None when valid."""
    unsigned, _, signature = token.rpartition("&s=")
    fields = dict(part.split("=", 1) for part in unsigned.split("&") if "=" in part)
    if not unsigned or "r" not in fields or "e" not in fields:
        return "The SAS token is malformed."
    resource = unquote(fields["r"]).split("?")[0].rstrip("/").lower()
    if resource != endpoint.split("?")[0].rstrip("/").lower():
        return "The SAS token was issued for another resource."
    try:
        expiry = dt.datetime.fromisoformat(unquote(fields["e"]).replace("Z", "+00:00"))
    except ValueError:
        return "The SAS token expiry is malformed."
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.UTC)
    if expiry < (now or dt.datetime.now(dt.UTC)):
        return "The SAS token has expired."
    for key in keys:
        digest = hmac.new(base64.b64decode(key), unsigned.encode("ascii"), hashlib.sha256).digest()
        if hmac.compare_digest(base64.b64encode(digest).decode(), unquote(signature)):
            return None
    return "The SAS token signature is not valid."


# ARM --------------------------------------------------------------------------------------------------
def register(router: ArmRouter, emu: Emulator) -> None:
    group_base = "/subscriptions/{sub}/resourcegroups/{rg}" + PROVIDER
    system_topic_path = group_base + "/systemTopics/{topic}"
    topic_path = group_base + "/topics/{topic}"
    config = emu.config

    def lro_headers(sub: str, location: str, operation: str, version: str) -> dict[str, str]:
        where = quote(location.replace(" ", "").lower(), safe="")
        url = (
            f"{config.arm_endpoint}/subscriptions/{sub}{PROVIDER}/locations/{where}/operationsStatus/"
            f"{operation}?api-version={version}"
        )
        return {"Azure-AsyncOperation": url, "Retry-After": "1"}

    def writable_group(sub: str, rg: str) -> dict[str, Any]:
        group = emu.group(sub, rg)
        if group["properties"]["provisioningState"] == "Deleting":
            raise ArmError(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{group['name']}' is in deprovisioning state and cannot perform this "
                "operation.",
            )
        emu.ensure_unlocked(sub, group["name"], "write")
        return group

    def topic_endpoint(topic: dict[str, Any]) -> str:
        parts = topic["id"].split("/")
        return (
            f"{config.arm_endpoint}/eventgrid/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/topics/"
            f"{parts[-1]}/api/events"
        )

    def topic_view(topic: dict[str, Any]) -> dict[str, Any]:
        view = public(topic)
        view["properties"] = {**topic["properties"], "endpoint": topic_endpoint(topic)}
        return view

    def get_system_topic(sub: str, rg: str, name: str) -> dict[str, Any]:
        group = emu.group(sub, rg)
        topic = emu.store.get(KIND_SYSTEM_TOPIC, f"{group['id']}{PROVIDER}/systemTopics/{name}")
        if topic is None:
            raise eventgrid_not_found("Microsoft.EventGrid/systemTopics", name, group["name"])
        return topic

    def get_topic(sub: str, rg: str, name: str) -> dict[str, Any]:
        group = emu.group(sub, rg)
        topic = emu.store.get(KIND_TOPIC, f"{group['id']}{PROVIDER}/topics/{name}")
        if topic is None:
            raise eventgrid_not_found("Microsoft.EventGrid/topics", name, group["name"])
        return topic

    # System topics ----------------------------------------------------------------------------------
    @router.add("PUT", system_topic_path, EG_VERSIONS, "systemTopics")
    async def put_system_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        group = writable_group(sub, rg)
        if not SYSTEM_TOPIC_NAME.fullmatch(topic):
            raise invalid(
                f"System topic name '{topic}' is invalid: use 3 to 128 letters, digits and hyphens."
            )
        body = await read_json(request)
        properties = body.get("properties") or {}
        topic_id = f"{group['id']}{PROVIDER}/systemTopics/{topic}"
        existing = emu.store.get(KIND_SYSTEM_TOPIC, topic_id)
        source = properties.get("source")
        if existing:
            if source and str(source).lower() != str(existing["properties"]["source"]).lower():
                raise invalid("System topic source cannot be modified.")
            existing["tags"] = body.get("tags") if "tags" in body else existing.get("tags")
            identity = identity_of(body, config.tenant_id, existing.get("identity"))
            if identity is not None:
                existing["identity"] = identity
            emu.store.put(KIND_SYSTEM_TOPIC, topic_id, group["id"], existing)
            return JSONResponse(public(existing), status_code=200)
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        topic_type = properties.get("topicType")
        if not isinstance(topic_type, str) or topic_type.lower() != ACR_TOPIC_TYPE.lower():
            raise invalid(
                f"Topic type '{topic_type}' is not supported by devstack; supported: {ACR_TOPIC_TYPE}."
            )
        if not isinstance(source, str) or not source:
            raise invalid("The source of the system topic is required.")
        registry = emu.store.get("registry", source)
        if registry is None:
            raise invalid(f"The source resource '{source}' was not found.")
        if str(registry["location"]).replace(" ", "").lower() != location.replace(" ", "").lower():
            raise invalid(
                f"System topic location '{location}' must match the location of its source "
                f"('{registry['location']}')."
            )
        for other in emu.store.list(KIND_SYSTEM_TOPIC):
            if str(other["properties"]["source"]).lower() == source.lower():
                raise invalid(
                    f"There is an existing tracked system topic for the given source {source}. Only one "
                    "system topic is allowed per source."
                )
        record: dict[str, Any] = {
            "id": topic_id,
            "name": topic,
            "type": "Microsoft.EventGrid/systemTopics",
            "location": location,
            "tags": body.get("tags"),
            "properties": {
                "source": source,
                "topicType": ACR_TOPIC_TYPE,
                "metricResourceId": str(uuid.uuid4()),
                "provisioningState": "Succeeded",
            },
        }
        identity = identity_of(body, config.tenant_id, None)
        if identity is not None:
            record["identity"] = identity
        emu.store.put(KIND_SYSTEM_TOPIC, topic_id, group["id"], record)
        operation = emu.start_operation(sub, "createSystemTopic", topic_id)
        emu.finish_operation(operation, "Succeeded")
        shown = public(record)
        shown["properties"] = {**record["properties"], "provisioningState": "Creating"}
        version = request.query_params["api-version"]
        return JSONResponse(shown, status_code=201, headers=lro_headers(sub, location, operation, version))

    @router.add("GET", system_topic_path, EG_VERSIONS, "systemTopics")
    async def get_system_topic_route(request: Request, sub: str, rg: str, topic: str) -> Response:
        return JSONResponse(public(get_system_topic(sub, rg, topic)))

    @router.add("PATCH", system_topic_path, EG_VERSIONS, "systemTopics")
    async def patch_system_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        record = get_system_topic(sub, rg, topic)
        writable_group(sub, rg)
        body = await read_json(request)
        if "tags" in body:
            record["tags"] = body["tags"]
        identity = identity_of(body, config.tenant_id, record.get("identity"))
        if identity is not None:
            record["identity"] = identity
        emu.store.put(KIND_SYSTEM_TOPIC, record["id"], emu.group(sub, rg)["id"], record)
        return JSONResponse(public(record))

    @router.add("DELETE", system_topic_path, EG_VERSIONS, "systemTopics")
    async def delete_system_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        group = emu.group(sub, rg)
        record = emu.store.get(KIND_SYSTEM_TOPIC, f"{group['id']}{PROVIDER}/systemTopics/{topic}")
        if record is None:
            return Response(status_code=204)
        emu.ensure_unlocked(sub, group["name"], "delete")
        emu.eventgrid.delete_topic(record)
        return Response(status_code=200)

    @router.add("GET", group_base + "/systemTopics", EG_VERSIONS, "systemTopics")
    async def list_system_topics(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        items = [public(t) for t in emu.store.list(KIND_SYSTEM_TOPIC, group["id"])]
        return paged(emu, request, filter_by_name(request, items), parse_top(request))

    @router.add("GET", "/subscriptions/{sub}" + PROVIDER + "/systemTopics", EG_VERSIONS, "systemTopics")
    async def list_system_topics_in_subscription(request: Request, sub: str) -> Response:
        prefix = subscription_key(sub).lower() + "/"
        items = [public(t) for t in emu.store.list(KIND_SYSTEM_TOPIC) if t["id"].lower().startswith(prefix)]
        return paged(emu, request, filter_by_name(request, items), parse_top(request))

    # Custom topics --------------------------------------------------------------------------------------
    @router.add("PUT", topic_path, EG_VERSIONS, "topics")
    async def put_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        group = writable_group(sub, rg)
        if not TOPIC_NAME.fullmatch(topic):
            raise invalid(f"Topic name '{topic}' is invalid: use 3 to 50 letters, digits and hyphens.")
        body = await read_json(request)
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        properties = body.get("properties") or {}
        topic_id = f"{group['id']}{PROVIDER}/topics/{topic}"
        existing = emu.store.get(KIND_TOPIC, topic_id)
        schema = properties.get("inputSchema") or (
            existing["properties"]["inputSchema"] if existing else EVENTGRID_SCHEMA
        )
        if schema not in DELIVERY_SCHEMAS:
            raise invalid(
                f"Input schema '{schema}' is not supported by devstack. Supported: EventGridSchema, "
                "CloudEventSchemaV1_0."
            )
        if existing and schema != existing["properties"]["inputSchema"]:
            raise invalid("The input schema of a topic cannot be changed.")
        disable_local_auth = properties.get("disableLocalAuth", False)
        if not isinstance(disable_local_auth, bool):
            raise invalid("'disableLocalAuth' must be a boolean.")
        access = properties.get("publicNetworkAccess") or "Enabled"
        if access not in ("Enabled", "Disabled"):
            raise invalid("'publicNetworkAccess' must be Enabled or Disabled.")
        record: dict[str, Any] = {
            "id": topic_id,
            "name": existing["name"] if existing else topic,
            "type": "Microsoft.EventGrid/topics",
            "location": existing["location"] if existing else location,
            "tags": body.get("tags"),
            "sku": {"name": "Basic"},
            "kind": "Azure",
            "properties": {
                "provisioningState": "Succeeded",
                "inputSchema": schema,
                "metricResourceId": existing["properties"]["metricResourceId"]
                if existing
                else str(uuid.uuid4()),
                "publicNetworkAccess": access,
                "inboundIpRules": properties.get("inboundIpRules") or [],
                "disableLocalAuth": disable_local_auth,
                "dataResidencyBoundary": properties.get("dataResidencyBoundary") or "WithinGeopair",
                "minimumTlsVersionAllowed": properties.get("minimumTlsVersionAllowed") or "1.2",
                "privateEndpointConnections": [],
            },
            "_keys": existing["_keys"] if existing else [new_key(), new_key()],
        }
        identity = identity_of(body, config.tenant_id, (existing or {}).get("identity"))
        if identity is not None:
            record["identity"] = identity
        emu.store.put(KIND_TOPIC, topic_id, group["id"], record)
        operation = emu.start_operation(sub, "createTopic", topic_id)
        emu.finish_operation(operation, "Succeeded")
        shown = topic_view(record)
        shown["properties"]["provisioningState"] = "Updating" if existing else "Creating"
        version = request.query_params["api-version"]
        headers = lro_headers(sub, record["location"], operation, version)
        return JSONResponse(shown, status_code=201, headers=headers)

    @router.add("GET", topic_path, EG_VERSIONS, "topics")
    async def get_topic_route(request: Request, sub: str, rg: str, topic: str) -> Response:
        return JSONResponse(topic_view(get_topic(sub, rg, topic)))

    @router.add("PATCH", topic_path, EG_VERSIONS, "topics")
    async def patch_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        record = get_topic(sub, rg, topic)
        writable_group(sub, rg)
        body = await read_json(request)
        if "tags" in body:
            record["tags"] = body["tags"]
        identity = identity_of(body, config.tenant_id, record.get("identity"))
        if identity is not None:
            record["identity"] = identity
        changes = body.get("properties") or {}
        if "disableLocalAuth" in changes:
            if not isinstance(changes["disableLocalAuth"], bool):
                raise invalid("'disableLocalAuth' must be a boolean.")
            record["properties"]["disableLocalAuth"] = changes["disableLocalAuth"]
        if "publicNetworkAccess" in changes:
            if changes["publicNetworkAccess"] not in ("Enabled", "Disabled"):
                raise invalid("'publicNetworkAccess' must be Enabled or Disabled.")
            record["properties"]["publicNetworkAccess"] = changes["publicNetworkAccess"]
        for key in ("inboundIpRules", "minimumTlsVersionAllowed", "dataResidencyBoundary"):
            if key in changes:
                record["properties"][key] = changes[key]
        emu.store.put(KIND_TOPIC, record["id"], emu.group(sub, rg)["id"], record)
        return JSONResponse(topic_view(record))

    @router.add("DELETE", topic_path, EG_VERSIONS, "topics")
    async def delete_topic(request: Request, sub: str, rg: str, topic: str) -> Response:
        group = emu.group(sub, rg)
        record = emu.store.get(KIND_TOPIC, f"{group['id']}{PROVIDER}/topics/{topic}")
        if record is None:
            return Response(status_code=204)
        emu.ensure_unlocked(sub, group["name"], "delete")
        emu.eventgrid.delete_topic(record)
        operation = emu.start_operation(sub, "deleteTopic", record["id"])
        emu.finish_operation(operation, "Succeeded")
        version = request.query_params["api-version"]
        return Response(status_code=202, headers=lro_headers(sub, record["location"], operation, version))

    @router.add("GET", group_base + "/topics", EG_VERSIONS, "topics")
    async def list_topics(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        items = [topic_view(t) for t in emu.store.list(KIND_TOPIC, group["id"])]
        return paged(emu, request, filter_by_name(request, items), parse_top(request))

    @router.add("GET", "/subscriptions/{sub}" + PROVIDER + "/topics", EG_VERSIONS, "topics")
    async def list_topics_in_subscription(request: Request, sub: str) -> Response:
        prefix = subscription_key(sub).lower() + "/"
        items = [topic_view(t) for t in emu.store.list(KIND_TOPIC) if t["id"].lower().startswith(prefix)]
        return paged(emu, request, filter_by_name(request, items), parse_top(request))

    @router.add("POST", topic_path + "/listKeys", EG_VERSIONS, "topics")
    async def list_keys(request: Request, sub: str, rg: str, topic: str) -> Response:
        record = get_topic(sub, rg, topic)
        return JSONResponse({"key1": record["_keys"][0], "key2": record["_keys"][1]})

    @router.add("POST", topic_path + "/regenerateKey", EG_VERSIONS, "topics")
    async def regenerate_key(request: Request, sub: str, rg: str, topic: str) -> Response:
        record = get_topic(sub, rg, topic)
        body = await read_json(request)
        name = str(body.get("keyName") or "").lower()
        if name not in ("key1", "key2"):
            raise invalid("Invalid key name. Key name must be either 'key1' or 'key2'.")
        record["_keys"][0 if name == "key1" else 1] = new_key()
        emu.store.put(KIND_TOPIC, record["id"], emu.group(sub, rg)["id"], record)
        return JSONResponse({"key1": record["_keys"][0], "key2": record["_keys"][1]})

    # Event subscriptions (on system topics and on custom topics) --------------------------------------
    def register_subscriptions(parent_path: str, sub_type: str, getter: Any) -> None:
        path = parent_path + "/eventSubscriptions/{name}"

        def find(sub: str, rg: str, topic: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
            parent = getter(sub, rg, topic)
            record = emu.store.get(KIND_SUBSCRIPTION, f"{parent['id']}/eventSubscriptions/{name}")
            if record is None:
                raise eventgrid_not_found(
                    f"{parent['type']}/eventSubscriptions", name, group_of(parent["id"])
                )
            return parent, record

        async def save(
            request: Request, sub: str, rg: str, parent: dict[str, Any], name: str, raw: dict[str, Any]
        ) -> Response:
            existing = emu.store.get(KIND_SUBSCRIPTION, f"{parent['id']}/eventSubscriptions/{name}")
            input_schema = parent["properties"].get("inputSchema") or EVENTGRID_SCHEMA
            properties, url = parse_subscription(raw, parent["id"], input_schema)
            needed = (
                existing is None
                or existing.get("_endpointUrl") != url
                or existing["properties"].get("eventDeliverySchema") != properties["eventDeliverySchema"]
                or existing["properties"]["provisioningState"] != "Succeeded"
            )
            properties["provisioningState"] = "Creating" if existing is None else "Updating"
            sub_id = existing["id"] if existing else f"{parent['id']}/eventSubscriptions/{name}"
            operation = emu.start_operation(sub, "eventSubscription", sub_id)
            record: dict[str, Any] = {
                "id": sub_id,
                "name": existing["name"] if existing else name,
                "type": sub_type,
                "properties": properties,
                "_endpointUrl": url,
                "_input": raw,
                "_operation": operation,
            }
            if existing and not needed:
                record["properties"]["provisioningState"] = "Succeeded"
            emu.store.put(KIND_SUBSCRIPTION, sub_id, parent["id"], record)
            emu.eventgrid.schedule_validation(sub_id, operation, needed)
            version = request.query_params["api-version"]
            shown = public(record)
            shown["properties"] = {
                **properties,
                "provisioningState": "Creating" if existing is None else "Updating",
            }
            return JSONResponse(
                shown, status_code=201, headers=lro_headers(sub, parent["location"], operation, version)
            )

        @router.add("PUT", path, EG_VERSIONS, "eventSubscriptions")
        async def put_subscription(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            parent = getter(sub, rg, topic)
            writable_group(sub, rg)
            if not SUBSCRIPTION_NAME.fullmatch(name):
                raise invalid(
                    f"Event subscription name '{name}' is invalid: it must be 3 to 64 characters long "
                    "and use letters, digits and hyphens only."
                )
            body = await read_json(request)
            raw = body.get("properties")
            if not isinstance(raw, dict):
                raise invalid("The event subscription properties are required.")
            return await save(request, sub, rg, parent, name, raw)

        @router.add("PATCH", path, EG_VERSIONS, "eventSubscriptions")
        async def patch_subscription(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            parent, record = find(sub, rg, topic, name)
            writable_group(sub, rg)
            body = await read_json(request)
            updatable = (
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
            merged = {**record["_input"], **{k: body[k] for k in updatable if k in body}}
            return await save(request, sub, rg, parent, record["name"], merged)

        @router.add("GET", path, EG_VERSIONS, "eventSubscriptions")
        async def get_subscription(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            return JSONResponse(public(find(sub, rg, topic, name)[1]))

        @router.add("DELETE", path, EG_VERSIONS, "eventSubscriptions")
        async def delete_subscription(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            parent = getter(sub, rg, topic)
            record = emu.store.get(KIND_SUBSCRIPTION, f"{parent['id']}/eventSubscriptions/{name}")
            if record is None:
                return Response(status_code=204)
            emu.ensure_unlocked(sub, rg, "delete")
            emu.eventgrid.cancel_subscription(record["id"])
            emu.store.delete(record["id"])
            return Response(status_code=200)

        @router.add("GET", parent_path + "/eventSubscriptions", EG_VERSIONS, "eventSubscriptions")
        async def list_subscriptions(request: Request, sub: str, rg: str, topic: str) -> Response:
            parent = getter(sub, rg, topic)
            items = [public(s) for s in emu.store.list(KIND_SUBSCRIPTION, parent["id"])]
            return paged(emu, request, filter_by_name(request, items), parse_top(request))

        @router.add("POST", path + "/getFullUrl", EG_VERSIONS, "eventSubscriptions")
        async def full_url(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            return JSONResponse({"endpointUrl": find(sub, rg, topic, name)[1]["_endpointUrl"]})

        @router.add("POST", path + "/getDeliveryAttributes", EG_VERSIONS, "eventSubscriptions")
        async def delivery_attributes(request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
            record = find(sub, rg, topic, name)[1]
            mappings = (
                record["properties"]["destination"]["properties"].get("deliveryAttributeMappings") or []
            )
            return JSONResponse({"value": mappings})

    register_subscriptions(
        system_topic_path, "Microsoft.EventGrid/systemTopics/eventSubscriptions", get_system_topic
    )
    register_subscriptions(topic_path, "Microsoft.EventGrid/eventSubscriptions", get_topic)

    @router.add(
        "GET",
        "/subscriptions/{sub}" + PROVIDER + "/locations/{location}/operationsStatus/{operation}",
        EG_VERSIONS,
        "operationsStatus",
    )
    async def operation_status(request: Request, sub: str, location: str, operation: str) -> Response:
        record = emu.store.get("operation", operation)
        if not record:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation}' was not found.")
        body: dict[str, Any] = {
            "id": request.url.path,
            "name": operation,
            "status": record["status"],
            "startTime": record["startTime"],
        }
        if record.get("endTime"):
            body["endTime"] = record["endTime"]
        if record.get("error"):
            body["error"] = record["error"]
        headers = {"Retry-After": "1"} if record["status"] == "InProgress" else {}
        return JSONResponse(body, headers=headers)


# Data plane: topic publishing and the manual validation URL ------------------------------------------
def data_routes(emu: Emulator) -> list[BaseRoute]:
    """Routes served on the ARM listener (HTTPS) outside ARM: publishing and `validationUrl`s."""

    def authenticate(request: Request, topic: dict[str, Any], endpoint: str) -> None:
        headers = request.headers
        name = topic["name"].upper()
        key = headers.get("aeg-sas-key")
        authorization = headers.get("authorization", "")
        sas = headers.get("aeg-sas-token")
        if authorization[:22].lower() == "sharedaccesssignature ":
            sas = authorization[22:].strip()
        if key is not None or sas is not None:
            if topic["properties"].get("disableLocalAuth"):
                raise PublishError(
                    401,
                    "Unauthorized",
                    f"The request authorization key is not authorized for {name}. This is due to the reason: "
                    "local authentication (key and SAS) is disabled for this topic; use a Microsoft "
                    "Entra token.",
                )
            keys: list[str] = topic["_keys"]
            if key is not None:
                if not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
                    raise PublishError(
                        401,
                        "Unauthorized",
                        f"The request authorization key is not authorized for {name}. This is due to the "
                        "reason: The key is not valid.",
                    )
                return
            problem = sas_valid(str(sas), keys, endpoint)
            if problem:
                raise PublishError(
                    401,
                    "Unauthorized",
                    f"The request authorization token is not authorized for {name}. This is due to the "
                    f"reason: {problem}",
                )
            return
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise PublishError(
                401,
                "Unauthorized",
                f"The request to {name} has no credentials: send aeg-sas-key, aeg-sas-token or a "
                "bearer token.",
            )
        try:
            claims = emu.tokens.decode(token.strip())
        except jwt.PyJWTError as exc:
            raise PublishError(
                401, "Unauthorized", f"The bearer token for {name} is not valid: {exc}."
            ) from exc
        if audience(str(claims.get("aud", ""))) != audience(EVENTGRID_AUDIENCE):
            raise PublishError(
                401,
                "Unauthorized",
                f"The bearer token for {name} has the audience '{claims.get('aud')}'; it must be "
                f"'{EVENTGRID_AUDIENCE}'.",
            )

    async def publish(request: Request) -> Response:
        try:
            return await _publish(request)
        except PublishError as exc:
            return exc.response()

    async def _publish(request: Request) -> Response:
        params = request.path_params
        topic_id = (
            f"/subscriptions/{params['sub']}/resourceGroups/{params['rg']}{PROVIDER}/topics/{params['topic']}"
        )
        topic = emu.store.get(KIND_TOPIC, topic_id)
        if topic is None:
            raise PublishError(404, "NotFound", f"The topic '{params['topic']}' was not found.")
        version = request.query_params.get("api-version")
        if not version:
            raise PublishError(
                400, "BadRequest", "The api-version query parameter is required.", "InvalidApiVersion"
            )
        if version not in PUBLISH_VERSIONS:
            raise PublishError(
                400,
                "BadRequest",
                f"The api-version '{version}' is not supported. Supported: "
                f"{', '.join(sorted(PUBLISH_VERSIONS))}.",
                "InvalidApiVersion",
            )
        endpoint = str(request.url.replace(query=""))
        authenticate(request, topic, endpoint)
        if topic["properties"].get("publicNetworkAccess") == "Disabled":
            raise PublishError(
                403, "Forbidden", f"Public network access is disabled for {topic['name'].upper()}."
            )
        raw = await request.body()
        if len(raw) > MAX_PUBLISH_BYTES:
            raise PublishError(
                413,
                "RequestEntityTooLarge",
                f"The maximum size ({MAX_PUBLISH_BYTES}) has been exceeded.",
            )
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_input(f"The request body is not valid JSON: {exc}.") from exc
        schema = topic["properties"]["inputSchema"]
        if schema == CLOUDEVENTS_SCHEMA:
            events = parse_cloudevents(payload, request.headers.get("content-type", ""))
        else:
            events = parse_eventgrid_events(payload, topic["id"])
        queued = emu.eventgrid.publish(topic["id"], events, schema)
        log.info(
            "Event Grid: %d event(s) published to topic %s, %d delivery(ies) queued",
            len(events),
            topic["name"],
            queued,
        )
        return Response(status_code=200)

    async def validate(request: Request) -> Response:
        code = request.query_params.get("id", "")
        token = request.query_params.get("token", "")
        subscription = emu.eventgrid.confirm_manual(code, token)
        if subscription is None:
            return PlainTextResponse("The validation request is invalid or has expired.", status_code=400)
        return PlainTextResponse("Webhook successfully validated as a subscription endpoint.")

    return [
        Route(
            "/eventgrid/subscriptions/{sub}/resourceGroups/{rg}/topics/{topic}/api/events",
            publish,
            methods=["POST"],
        ),
        Route("/eventgrid/eventsubscriptions/{name}/validate", validate, methods=["GET"]),
    ]
