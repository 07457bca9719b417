"""Event Grid topics: system topics (a registry's events) and custom topics (the app's own events).

Both are ARM resources of one shape, stored as `Topic` records and handled by one set of operations;
a `TopicKind` says what differs: the resource type and name rule, and whether the topic is custom
(it then has an input schema, access keys, a publishing endpoint and properties a PATCH may change),
or a system topic (one per source registry, in the registry's location, its source fixed).
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, cast

from ..arm.records import ResourceGroup
from ..errors import not_found, require_location
from ..store import Store
from .engine import EventGridEngine
from .model import (
    CLOUDEVENTS_SCHEMA,
    EVENTGRID_SCHEMA,
    KIND_SYSTEM_TOPIC,
    KIND_TOPIC,
    PROVIDER,
    Json,
    Topic,
    invalid,
)

ACR_TOPIC_TYPE = "Microsoft.ContainerRegistry.Registries"
# An Azure subscription's resource events (ARM writes, deletes, actions); source /subscriptions/{id}, location
# global (learn.microsoft.com/azure/event-grid/event-schema-subscriptions, system-topics).
SUBSCRIPTION_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"
TOPIC_TYPES = {t.lower(): t for t in (ACR_TOPIC_TYPE, SUBSCRIPTION_TOPIC_TYPE)}
SYSTEM_TOPIC_NAME = re.compile(r"[a-zA-Z0-9-]{3,128}")
TOPIC_NAME = re.compile(r"[a-zA-Z0-9-]{3,50}")
INPUT_SCHEMAS = {EVENTGRID_SCHEMA, CLOUDEVENTS_SCHEMA}


@dataclass(frozen=True)
class TopicKind:
    store_kind: str
    segment: str  # of the resource id and the ARM path: `topics` or `systemTopics`
    arm_type: str
    subscription_type: str  # the ARM type of its event subscriptions
    name_pattern: re.Pattern[str]
    name_rule: str  # the refusal of a name the pattern does not match; `{name}` is filled in
    custom: bool


SYSTEM_TOPICS = TopicKind(
    KIND_SYSTEM_TOPIC,
    "systemTopics",
    "Microsoft.EventGrid/systemTopics",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions",
    SYSTEM_TOPIC_NAME,
    "System topic name '{name}' is invalid: use 3 to 128 letters, digits and hyphens.",
    custom=False,
)
CUSTOM_TOPICS = TopicKind(
    KIND_TOPIC,
    "topics",
    "Microsoft.EventGrid/topics",
    "Microsoft.EventGrid/eventSubscriptions",
    TOPIC_NAME,
    "Topic name '{name}' is invalid: use 3 to 50 letters, digits and hyphens.",
    custom=True,
)


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def identity_of(body: Json, tenant: str, existing: Json | None) -> Json | None:
    identity = body.get("identity")
    if not isinstance(identity, dict):
        return existing
    kind = str(identity.get("type") or "None")
    if kind == "None":
        return {"type": "None"}
    result: Json = {"type": kind}
    if "SystemAssigned" in kind:
        result["principalId"] = (existing or {}).get("principalId") or str(uuid.uuid4())
        result["tenantId"] = tenant
    if identity.get("userAssignedIdentities"):
        result["userAssignedIdentities"] = {
            key: {"principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4())}
            for key in identity["userAssignedIdentities"]
        }
    return result


def check_access(properties: Json) -> None:
    """`disableLocalAuth` and `publicNetworkAccess` of a custom topic, where given."""
    if "disableLocalAuth" in properties and not isinstance(properties["disableLocalAuth"], bool):
        raise invalid("'disableLocalAuth' must be a boolean.")
    if "publicNetworkAccess" in properties and properties["publicNetworkAccess"] not in (
        "Enabled",
        "Disabled",
    ):
        raise invalid("'publicNetworkAccess' must be Enabled or Disabled.")


class TopicOperations:
    def __init__(
        self,
        engine: EventGridEngine,
        store: Store,
        tenant_id: str,
        arm_endpoint: str,
        subscriptions: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.subscriptions = {s.lower() for s in subscriptions}  # the sources a subscription topic may name
        self.records = engine.records
        self.store = store  # the registries a system topic's source names
        self.tenant_id = tenant_id
        self.arm_endpoint = arm_endpoint

    # Reading -----------------------------------------------------------------------------------
    @staticmethod
    def topic_id(kind: TopicKind, group_id: str, name: str) -> str:
        return f"{group_id}{PROVIDER}/{kind.segment}/{name}"

    def find(self, kind: TopicKind, group: ResourceGroup, name: str) -> Topic | None:
        return self.records.topics(kind.store_kind).get(self.topic_id(kind, group["id"], name))

    def get(self, kind: TopicKind, group: ResourceGroup, name: str) -> Topic:
        topic = self.find(kind, group, name)
        if topic is None:
            raise not_found(kind.arm_type, name, group["name"])
        return topic

    def list(self, kind: TopicKind, group_id: str | None = None, id_prefix: str = "") -> list[Topic]:
        """The topics of a group, or (no group) those whose id starts with `id_prefix`."""
        topics = self.records.topics(kind.store_kind).list(group_id)
        return [t for t in topics if t.id.lower().startswith(id_prefix.lower())]

    def view(self, topic: Topic) -> Json:
        """As ARM shows it: a custom topic with its publishing `endpoint`."""
        shown = topic.view()
        if topic.keys is not None:
            shown["properties"]["endpoint"] = self.endpoint(topic)
        return shown

    def endpoint(self, topic: Topic) -> str:
        parts = topic.id.split("/")
        return (
            f"{self.arm_endpoint}/eventgrid/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/topics/"
            f"{parts[-1]}/api/events"
        )

    # Writing -----------------------------------------------------------------------------------
    @staticmethod
    def check_name(kind: TopicKind, name: str) -> None:
        if not kind.name_pattern.fullmatch(name):
            raise invalid(kind.name_rule.format(name=name))

    def put_system_topic(self, group: ResourceGroup, name: str, body: Json) -> tuple[Topic, bool]:
        """Create, or update the tags and identity of, a registry's system topic: (topic, created)."""
        properties = body.get("properties") or {}
        topic_id = self.topic_id(SYSTEM_TOPICS, group["id"], name)
        existing = self.records.topics(KIND_SYSTEM_TOPIC).get(topic_id)
        source = properties.get("source")
        if existing:
            if source and str(source).lower() != existing.source.lower():
                raise invalid("System topic source cannot be modified.")
            existing.tags = body.get("tags") if "tags" in body else existing.tags
            existing.identity = identity_of(body, self.tenant_id, existing.identity)
            self.records.topics(KIND_SYSTEM_TOPIC).put(existing)
            return existing, False
        location = require_location(body)
        topic_type = self._check_source(properties.get("topicType"), source, location)
        topic = Topic(
            id=topic_id,
            name=name,
            type=SYSTEM_TOPICS.arm_type,
            location=location,
            tags=body.get("tags"),
            properties={
                "source": str(source),
                "topicType": topic_type,
                "metricResourceId": str(uuid.uuid4()),
                "provisioningState": "Succeeded",
            },
            identity=identity_of(body, self.tenant_id, None),
        )
        self.records.topics(KIND_SYSTEM_TOPIC).put(topic)
        return topic, True

    def _check_source(self, topic_type: Any, source: Any, location: str) -> str:
        """A new system topic's source: an existing registry in the topic's location, or an Azure
        subscription (location global), without a topic yet. Returns the topic type as spelled."""
        known = TOPIC_TYPES.get(topic_type.lower()) if isinstance(topic_type, str) else None
        if known is None:
            supported = ", ".join(TOPIC_TYPES.values())
            raise invalid(f"Topic type '{topic_type}' is not supported by devstack; supported: {supported}.")
        if not isinstance(source, str) or not source:
            raise invalid("The source of the system topic is required.")
        if known == SUBSCRIPTION_TOPIC_TYPE:
            self._check_subscription_source(source, location)
        else:
            self._check_registry_source(source, location)
        for other in self.records.topics(KIND_SYSTEM_TOPIC).list():
            if other.source.lower() == source.lower():
                raise invalid(
                    f"There is an existing tracked system topic for the given source {source}. Only one "
                    "system topic is allowed per source."
                )
        return known

    def _check_subscription_source(self, source: str, location: str) -> None:
        parts = source.split("/")
        if (
            len(parts) != 3
            or parts[:2] != ["", "subscriptions"]
            or parts[2].lower() not in self.subscriptions
        ):
            raise invalid(f"The source resource '{source}' was not found.")
        if location.lower() != "global":  # not documented as refused: devstack is stricter
            raise invalid(
                f"System topic location '{location}' must be 'global' for an Azure subscription source."
            )

    def _check_registry_source(self, source: str, location: str) -> None:
        registry = self.store.get("registry", source)
        if registry is None:
            raise invalid(f"The source resource '{source}' was not found.")
        if str(registry["location"]).replace(" ", "").lower() != location.replace(" ", "").lower():
            raise invalid(
                f"System topic location '{location}' must match the location of its source "
                f"('{registry['location']}')."
            )

    def put_topic(self, group: ResourceGroup, name: str, body: Json) -> tuple[Topic, bool]:
        """Create or replace a custom topic (its keys and input schema kept): (topic, created)."""
        location = require_location(body)
        properties = body.get("properties") or {}
        topic_id = self.topic_id(CUSTOM_TOPICS, group["id"], name)
        existing = self.records.topics(KIND_TOPIC).get(topic_id)
        schema = properties.get("inputSchema") or (existing.input_schema if existing else EVENTGRID_SCHEMA)
        if schema not in INPUT_SCHEMAS:
            raise invalid(
                f"Input schema '{schema}' is not supported by devstack. Supported: EventGridSchema, "
                "CloudEventSchemaV1_0."
            )
        if existing and schema != existing.input_schema:
            raise invalid("The input schema of a topic cannot be changed.")
        check_access({"disableLocalAuth": properties.get("disableLocalAuth", False)})
        access = properties.get("publicNetworkAccess") or "Enabled"
        check_access({"publicNetworkAccess": access})
        topic = Topic(
            id=topic_id,
            name=existing.name if existing else name,
            type=CUSTOM_TOPICS.arm_type,
            location=existing.location if existing else location,
            tags=body.get("tags"),
            sku={"name": "Basic"},
            kind="Azure",
            properties={
                "provisioningState": "Succeeded",
                "inputSchema": str(schema),
                "metricResourceId": existing.properties["metricResourceId"]
                if existing
                else str(uuid.uuid4()),
                "publicNetworkAccess": access,
                "inboundIpRules": properties.get("inboundIpRules") or [],
                "disableLocalAuth": properties.get("disableLocalAuth", False),
                "dataResidencyBoundary": properties.get("dataResidencyBoundary") or "WithinGeopair",
                "minimumTlsVersionAllowed": properties.get("minimumTlsVersionAllowed") or "1.2",
                "privateEndpointConnections": [],
            },
            keys=existing.keys if existing and existing.keys else [new_key(), new_key()],
            identity=identity_of(body, self.tenant_id, existing.identity if existing else None),
        )
        self.records.topics(KIND_TOPIC).put(topic)
        return topic, existing is None

    def patch(self, kind: TopicKind, topic: Topic, body: Json) -> Topic:
        """Tags and identity; for a custom topic also its access and network properties."""
        if "tags" in body:
            topic.tags = body["tags"]
        topic.identity = identity_of(body, self.tenant_id, topic.identity)
        if kind.custom:
            changes = body.get("properties") or {}
            check_access(changes)
            updatable: tuple[str, ...] = (
                "disableLocalAuth",
                "publicNetworkAccess",
                "inboundIpRules",
                "minimumTlsVersionAllowed",
                "dataResidencyBoundary",
            )
            properties = cast(Json, topic.properties)
            properties.update({key: changes[key] for key in updatable if key in changes})
        self.records.topics(kind.store_kind).put(topic)
        return topic

    def regenerate_key(self, topic: Topic, key_name: str) -> Topic:
        name = key_name.lower()
        if name not in ("key1", "key2"):
            raise invalid("Invalid key name. Key name must be either 'key1' or 'key2'.")
        keys = list(topic.keys or [])
        keys[0 if name == "key1" else 1] = new_key()
        topic.keys = keys
        self.records.topics(KIND_TOPIC).put(topic)
        return topic

    def delete(self, topic: Topic) -> None:
        self.engine.delete_topic(topic)
