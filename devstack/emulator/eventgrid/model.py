"""Event Grid's typed records and their place in the emulator's store.

Topics, system topics, event subscriptions and pending deliveries are dataclasses here; the store
keeps them as the JSON it always kept (ARM's shape, plus the emulator's own fields under `_` keys),
so a state directory written by one version of the emulator is read by the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from ..arm.records import parent_group
from ..errors import ArmError
from ..store import Store

KIND_SYSTEM_TOPIC = "egsystemtopic"
KIND_TOPIC = "egtopic"
KIND_SUBSCRIPTION = "egsubscription"
KIND_DELIVERY = "egdelivery"
KIND_SEEN = "egseen"  # registry notification ids already turned into events
KIND_MANIFEST = "egmanifest"  # media types of pushed manifests, for the delete events

EVENTGRID_SCHEMA = "EventGridSchema"
CLOUDEVENTS_SCHEMA = "CloudEventSchemaV1_0"
PROVIDER = "/providers/Microsoft.EventGrid"

Json = dict[str, Any]  # a JSON object Event Grid passes through: an event, an identity, a filter


def parent_of(resource_id: str, levels: int = 2) -> str:
    return resource_id.rsplit("/", levels)[0]


def group_of(resource_id: str) -> str:
    return resource_id.split("/")[4]


# The refusal topics and subscriptions share -----------------------------------------------------
def invalid(message: str) -> ArmError:
    return ArmError(400, "InvalidRequest", message)


# Topics ------------------------------------------------------------------------------------------
class TopicProperties(TypedDict, total=False):
    """ARM `properties` of a custom topic (`inputSchema`…) or a system topic (`source`, `topicType`)."""

    source: str
    topicType: str
    provisioningState: str
    inputSchema: str
    metricResourceId: str
    publicNetworkAccess: str
    inboundIpRules: list[Any]
    disableLocalAuth: bool
    dataResidencyBoundary: str
    minimumTlsVersionAllowed: str
    privateEndpointConnections: list[Any]


@dataclass
class Topic:
    """A custom topic (`sku`, `kind` and access keys) or a system topic (neither)."""

    id: str
    name: str
    type: str
    location: str
    tags: Any
    properties: TopicProperties
    identity: Json | None = None
    sku: Json | None = None
    kind: str | None = None
    keys: list[str] | None = None  # custom topics: key1, key2

    @property
    def parent_id(self) -> str:
        return parent_group(self.id)

    @property
    def input_schema(self) -> str:
        return self.properties.get("inputSchema") or EVENTGRID_SCHEMA

    @property
    def source(self) -> str:
        return str(self.properties.get("source", ""))

    def view(self) -> Json:
        """The topic as ARM shows it (no keys)."""
        shown: Json = {"id": self.id, "name": self.name, "type": self.type, "location": self.location}
        shown["tags"] = self.tags
        if self.sku is not None:
            shown["sku"] = self.sku
        if self.kind is not None:
            shown["kind"] = self.kind
        shown["properties"] = dict(self.properties)
        if self.identity is not None:
            shown["identity"] = self.identity
        return shown

    def to_json(self) -> Json:
        stored = self.view()
        if self.keys is not None:
            stored["_keys"] = self.keys
        return stored

    @classmethod
    def from_json(cls, stored: Json) -> Topic:
        return cls(
            id=stored["id"],
            name=stored["name"],
            type=stored["type"],
            location=stored["location"],
            tags=stored.get("tags"),
            properties=stored["properties"],
            identity=stored.get("identity"),
            sku=stored.get("sku"),
            kind=stored.get("kind"),
            keys=stored.get("_keys"),
        )


# Event subscriptions -------------------------------------------------------------------------------
class DeliveryRetry(TypedDict):
    maxDeliveryAttempts: int
    eventTimeToLiveInMinutes: int


class SubscriptionProperties(TypedDict, total=False):
    """ARM `properties` of an event subscription, as validated by `parse_subscription`."""

    topic: str
    provisioningState: str
    destination: Json
    filter: Json
    labels: list[str] | None
    eventDeliverySchema: str
    retryPolicy: DeliveryRetry
    deadLetterDestination: Json
    deadLetterWithResourceIdentity: Json
    expirationTimeUtc: str


@dataclass
class Validation:
    """The handshake of a subscription: the code sent, the manual `validationUrl`, its deadline."""

    code: str | None = None
    token: str | None = None
    url: str | None = None
    expires: float | None = None  # epoch seconds; set while the subscription awaits manual action

    def to_json(self) -> Json:
        stored = {"code": self.code, "token": self.token, "url": self.url, "expires": self.expires}
        return {k: v for k, v in stored.items() if v is not None}

    @classmethod
    def from_json(cls, stored: Json) -> Validation:
        expires = stored.get("expires")
        return cls(stored.get("code"), stored.get("token"), stored.get("url"), expires)


@dataclass
class Subscription:
    id: str
    name: str
    type: str
    properties: SubscriptionProperties
    endpoint_url: str  # with its query string (often a key): never shown but by getFullUrl
    requested: Json = field(default_factory=dict)  # the properties as sent, the base of a PATCH
    operation: str | None = None  # the create/update operation until validation ends
    validation: Validation | None = None

    @property
    def parent_id(self) -> str:
        return parent_of(self.id)

    @property
    def state(self) -> str:
        return self.properties.get("provisioningState", "")

    @state.setter
    def state(self, value: str) -> None:
        self.properties["provisioningState"] = value

    @property
    def delivery_schema(self) -> str:
        return self.properties.get("eventDeliverySchema") or EVENTGRID_SCHEMA

    @property
    def destination(self) -> Json:
        """The WebHook destination's `properties` (batching, delivery attribute mappings)."""
        return dict(self.properties.get("destination", {}).get("properties") or {})

    @property
    def dead_letter_container(self) -> str | None:
        destination = self.properties.get("deadLetterDestination") or (
            self.properties.get("deadLetterWithResourceIdentity") or {}
        ).get("deadLetterDestination")
        container = ((destination or {}).get("properties") or {}).get("blobContainerName")
        return str(container) if container else None

    def view(self) -> Json:
        return {"id": self.id, "name": self.name, "type": self.type, "properties": dict(self.properties)}

    def to_json(self) -> Json:
        stored = self.view()
        stored["_endpointUrl"] = self.endpoint_url
        stored["_input"] = self.requested
        if self.operation is not None:
            stored["_operation"] = self.operation
        if self.validation is not None:
            stored["_validation"] = self.validation.to_json()
        return stored

    @classmethod
    def from_json(cls, stored: Json) -> Subscription:
        validation = stored.get("_validation")
        return cls(
            id=stored["id"],
            name=stored["name"],
            type=stored["type"],
            properties=stored["properties"],
            endpoint_url=str(stored.get("_endpointUrl") or ""),
            requested=stored.get("_input") or {},
            operation=stored.get("_operation"),
            validation=Validation.from_json(validation) if isinstance(validation, dict) else None,
        )


# Pending deliveries ---------------------------------------------------------------------------------
@dataclass
class Delivery:
    """Events (a batch) on their way to one subscription; persisted until delivered or dead-lettered."""

    id: str
    subscription: str
    schema: str
    events: list[Json]
    attempts: int
    publishTime: str
    publishEpoch: float
    nextAttempt: float
    lastDeliveryAttemptTime: str | None = None
    lastDeliveryOutcome: str | None = None
    lastHttpStatusCode: int | None = None

    @property
    def parent_id(self) -> str:
        return self.subscription

    def to_json(self) -> Json:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, stored: Json) -> Delivery:
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})


# The store -----------------------------------------------------------------------------------------
class Stored(Protocol):
    id: str

    @property
    def parent_id(self) -> str: ...

    def to_json(self) -> Json: ...


R = TypeVar("R", bound=Stored)


class Table(Generic[R]):
    """The records of one kind, typed: read from and written to the store as their JSON."""

    def __init__(self, store: Store, kind: str, load: Callable[[Json], R]) -> None:
        self.store = store
        self.kind = kind
        self.load = load

    def get(self, key: str) -> R | None:
        stored = self.store.get(self.kind, key)
        return self.load(stored) if stored is not None else None

    def list(self, parent: str | None = None) -> list[R]:
        return [self.load(stored) for stored in self.store.list(self.kind, parent)]

    def put(self, record: R) -> None:
        self.store.put(self.kind, record.id, record.parent_id, record.to_json())


class EventGridStore:
    """Event Grid's tables in the emulator's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.system_topics = Table(store, KIND_SYSTEM_TOPIC, Topic.from_json)
        self.custom_topics = Table(store, KIND_TOPIC, Topic.from_json)
        self.subscriptions = Table(store, KIND_SUBSCRIPTION, Subscription.from_json)
        self.deliveries = Table(store, KIND_DELIVERY, Delivery.from_json)

    def topics(self, kind: str) -> Table[Topic]:
        return self.system_topics if kind == KIND_SYSTEM_TOPIC else self.custom_topics

    def delete(self, key: str) -> bool:
        return self.store.delete(key)
