"""Event Grid: ARM for system topics, custom topics and their event subscriptions; topic publishing.

ARM routes follow azure-mgmt-eventgrid 10.4.0 (api-version 2025-02-15) and the REST spec: creates
and subscription updates are long-running (201 + Azure-AsyncOperation), a subscription is active
only after the webhook handshake (SubscriptionValidationEvent for the Event Grid schema, the
CloudEvents OPTIONS check otherwise). Custom topics publish at `properties.endpoint`, an HTTPS
URL on the ARM listener that azure-eventgrid's EventGridPublisherClient posts to unchanged, with
`aeg-sas-key`, `aeg-sas-token` or an Entra token (audience https://eventgrid.azure.net).

This module is the HTTP layer only: one handler class per resource kind, one method per route, over
the operations of `eventgrid_topics`, `eventgrid_subscriptions` and `eventgrid_publish`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..arm.groups import ResourceGroups
from ..arm.operations import Operations, polling_headers
from ..arm.paging import page, parse_top
from ..arm.records import subscription_key
from ..arm.routing import ArmRouter, read_json
from ..config import EmulatorConfig
from ..errors import ArmError
from ..store import Store
from .engine import EventGridEngine
from .model import KIND_TOPIC, PROVIDER, Json, Topic, invalid
from .publish import PublishError, TokenDecoder, authorize, read_events
from .subscriptions import SubscriptionOperations
from .topics import CUSTOM_TOPICS, SYSTEM_TOPICS, TopicKind, TopicOperations

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
GROUP_PATH = "/subscriptions/{sub}/resourcegroups/{rg}" + PROVIDER
NAME_FILTER = re.compile(
    r"\s*(?:contains\(\s*name\s*,\s*'((?:[^']|'')*)'\s*\)|name\s+eq\s+'((?:[^']|'')*)')\s*", re.IGNORECASE
)
log = logging.getLogger("devstack.eventgrid")


def filter_by_name(request: Request, items: list[Json]) -> list[Json]:
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


class ArmContext:
    """What every Event Grid ARM handler needs beyond its own records: groups, locks, operations, lists."""

    def __init__(self, groups: ResourceGroups, operations: Operations, config: EmulatorConfig) -> None:
        self.groups = groups
        self.operations = operations
        self.config = config

    def lro_headers(self, request: Request, sub: str, location: str, operation: str) -> dict[str, str]:
        where = quote(location.replace(" ", "").lower(), safe="")
        version = request.query_params["api-version"]
        url = (
            f"{self.config.arm_endpoint}/subscriptions/{sub}{PROVIDER}/locations/{where}/operationsStatus/"
            f"{operation}?api-version={version}"
        )
        return {"Azure-AsyncOperation": url, "Retry-After": "1"}

    def page(self, request: Request, items: list[Json]) -> Response:
        return page(self.config, request, filter_by_name(request, items), parse_top(request))


class TopicHandlers:
    """System topics and custom topics: one ARM contract, their differences in the `TopicKind`."""

    def __init__(self, arm: ArmContext, topics: TopicOperations, kind: TopicKind) -> None:
        self.arm = arm
        self.groups = arm.groups
        self.topics = topics
        self.kind = kind
        self.path = f"{GROUP_PATH}/{kind.segment}/{{topic}}"

    def register(self, router: ArmRouter) -> None:
        segment = self.kind.segment
        for method, path, handler in (
            ("PUT", self.path, self.put),
            ("GET", self.path, self.get),
            ("PATCH", self.path, self.patch),
            ("DELETE", self.path, self.delete),
            ("GET", f"{GROUP_PATH}/{segment}", self.list),
            ("GET", f"/subscriptions/{{sub}}{PROVIDER}/{segment}", self.list_in_subscription),
        ):
            router.add(method, path, EG_VERSIONS, segment)(handler)
        if self.kind.custom:
            router.add("POST", self.path + "/listKeys", EG_VERSIONS, segment)(self.list_keys)
            router.add("POST", self.path + "/regenerateKey", EG_VERSIONS, segment)(self.regenerate_key)

    async def put(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        group = self.groups.open_for_writes(sub, rg)
        self.topics.check_name(self.kind, topic)
        body = await read_json(request)
        if self.kind.custom:
            record, created = self.topics.put_topic(group, topic, body)
        else:
            record, created = self.topics.put_system_topic(group, topic, body)
            if not created:  # a system topic's update is synchronous
                return JSONResponse(self.topics.view(record), status_code=200)
        create = "createTopic" if self.kind.custom else "createSystemTopic"
        operation = self.arm.operations.finished(sub, create, record.id)
        shown = self.topics.view(record)
        shown["properties"]["provisioningState"] = "Creating" if created else "Updating"
        headers = self.arm.lro_headers(request, sub, record.location, operation)
        return JSONResponse(shown, status_code=201, headers=headers)

    async def get(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        return JSONResponse(self.topics.view(self.topics.get(self.kind, self.groups.get(sub, rg), topic)))

    async def patch(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        record = self.topics.get(self.kind, self.groups.get(sub, rg), topic)
        self.groups.open_for_writes(sub, rg)
        body = await read_json(request)
        return JSONResponse(self.topics.view(self.topics.patch(self.kind, record, body)))

    async def delete(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        group = self.groups.get(sub, rg)
        record = self.topics.find(self.kind, group, topic)
        if record is None:
            return Response(status_code=204)
        self.groups.ensure_unlocked(sub, group["name"], "delete")
        self.topics.delete(record)
        if not self.kind.custom:  # a system topic's delete is synchronous
            return Response(status_code=200)
        operation = self.arm.operations.finished(sub, "deleteTopic", record.id)
        return Response(
            status_code=202, headers=self.arm.lro_headers(request, sub, record.location, operation)
        )

    async def list(self, request: Request, sub: str, rg: str) -> Response:
        group = self.groups.get(sub, rg)
        return self.arm.page(request, [self.topics.view(t) for t in self.topics.list(self.kind, group["id"])])

    async def list_in_subscription(self, request: Request, sub: str) -> Response:
        prefix = subscription_key(sub) + "/"
        return self.arm.page(
            request, [self.topics.view(t) for t in self.topics.list(self.kind, None, prefix)]
        )

    async def list_keys(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        record = self.topics.get(self.kind, self.groups.get(sub, rg), topic)
        return JSONResponse(keys_of(record.keys))

    async def regenerate_key(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        record = self.topics.get(self.kind, self.groups.get(sub, rg), topic)
        body = await read_json(request)
        record = self.topics.regenerate_key(record, str(body.get("keyName") or ""))
        return JSONResponse(keys_of(record.keys))


def keys_of(keys: list[str] | None) -> Json:
    return {"key1": (keys or [])[0], "key2": (keys or [])[1]}


class EventSubscriptionHandlers:
    """Event subscriptions of one kind of topic (system or custom): same routes under each."""

    def __init__(
        self, arm: ArmContext, topics: TopicOperations, subscriptions: SubscriptionOperations, kind: TopicKind
    ) -> None:
        self.arm = arm
        self.groups = arm.groups
        self.topics = topics
        self.subscriptions = subscriptions
        self.kind = kind
        self.parent_path = f"{GROUP_PATH}/{kind.segment}/{{topic}}"
        self.path = self.parent_path + "/eventSubscriptions/{name}"

    def register(self, router: ArmRouter) -> None:
        for method, path, handler in (
            ("PUT", self.path, self.put),
            ("PATCH", self.path, self.patch),
            ("GET", self.path, self.get),
            ("DELETE", self.path, self.delete),
            ("GET", self.parent_path + "/eventSubscriptions", self.list),
            ("POST", self.path + "/getFullUrl", self.full_url),
            ("POST", self.path + "/getDeliveryAttributes", self.delivery_attributes),
        ):
            router.add(method, path, EG_VERSIONS, "eventSubscriptions")(handler)

    def parent(self, sub: str, rg: str, topic: str) -> Topic:
        return self.topics.get(self.kind, self.groups.get(sub, rg), topic)

    async def save(self, request: Request, sub: str, parent: Topic, name: str, requested: Json) -> Response:
        saved = self.subscriptions.save(
            parent,
            name,
            requested,
            self.kind.subscription_type,
            lambda target: self.arm.operations.start(sub, "eventSubscription", target),
        )
        shown = saved.subscription.view()
        shown["properties"]["provisioningState"] = "Creating" if saved.created else "Updating"
        headers = self.arm.lro_headers(request, sub, parent.location, saved.operation)
        return JSONResponse(shown, status_code=201, headers=headers)

    async def put(self, request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
        parent = self.parent(sub, rg, topic)
        self.groups.open_for_writes(sub, rg)
        self.subscriptions.check_name(name)
        body = await read_json(request)
        requested = body.get("properties")
        if not isinstance(requested, dict):
            raise invalid("The event subscription properties are required.")
        return await self.save(request, sub, parent, name, requested)

    async def patch(self, request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
        parent = self.parent(sub, rg, topic)
        record = self.subscriptions.find(parent, name)
        self.groups.open_for_writes(sub, rg)
        body = await read_json(request)
        return await self.save(request, sub, parent, record.name, self.subscriptions.patched(record, body))

    async def get(self, request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
        return JSONResponse(self.subscriptions.find(self.parent(sub, rg, topic), name).view())

    async def delete(self, request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
        record = self.subscriptions.get(self.parent(sub, rg, topic), name)
        if record is None:
            return Response(status_code=204)
        self.groups.ensure_unlocked(sub, rg, "delete")
        self.subscriptions.delete(record)
        return Response(status_code=200)

    async def list(self, request: Request, sub: str, rg: str, topic: str) -> Response:
        items = [s.view() for s in self.subscriptions.list(self.parent(sub, rg, topic))]
        return self.arm.page(request, items)

    async def full_url(self, request: Request, sub: str, rg: str, topic: str, name: str) -> Response:
        record = self.subscriptions.find(self.parent(sub, rg, topic), name)
        return JSONResponse({"endpointUrl": record.endpoint_url})

    async def delivery_attributes(
        self, request: Request, sub: str, rg: str, topic: str, name: str
    ) -> Response:
        record = self.subscriptions.find(self.parent(sub, rg, topic), name)
        return JSONResponse({"value": record.destination.get("deliveryAttributeMappings") or []})


class OperationStatusHandlers:
    """`Azure-AsyncOperation` polling of Event Grid's long-running operations."""

    path = "/subscriptions/{sub}" + PROVIDER + "/locations/{location}/operationsStatus/{operation}"

    def __init__(self, operations: Operations) -> None:
        self.operations = operations

    def register(self, router: ArmRouter) -> None:
        router.add("GET", self.path, EG_VERSIONS, "operationsStatus")(self.get)

    async def get(self, request: Request, sub: str, location: str, operation: str) -> Response:
        status = self.operations.status(operation, request.url.path, name=operation)
        return JSONResponse(status, headers=polling_headers(status))


def register(
    router: ArmRouter,
    groups: ResourceGroups,
    operations: Operations,
    engine: EventGridEngine,
    store: Store,
    config: EmulatorConfig,
) -> None:
    """Event Grid's ARM routes; `store` holds the registries a system topic's source names."""
    arm = ArmContext(groups, operations, config)
    topics = TopicOperations(engine, store, config.tenant_id, config.arm_endpoint, config.subscriptions)
    subscriptions = SubscriptionOperations(engine)
    for kind in (SYSTEM_TOPICS, CUSTOM_TOPICS):
        TopicHandlers(arm, topics, kind).register(router)
    for kind in (SYSTEM_TOPICS, CUSTOM_TOPICS):
        EventSubscriptionHandlers(arm, topics, subscriptions, kind).register(router)
    OperationStatusHandlers(operations).register(router)


# Data plane: topic publishing and the manual validation URL ------------------------------------------
class PublishHandlers:
    """Served on the ARM listener (HTTPS) outside ARM: publishing and `validationUrl`s."""

    def __init__(self, engine: EventGridEngine, decode_token: TokenDecoder) -> None:
        self.engine = engine
        self.decode_token = decode_token

    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                "/eventgrid/subscriptions/{sub}/resourceGroups/{rg}/topics/{topic}/api/events",
                self.publish,
                methods=["POST"],
            ),
            Route("/eventgrid/eventsubscriptions/{name}/validate", self.validate, methods=["GET"]),
        ]

    async def publish(self, request: Request) -> Response:
        try:
            return await self._publish(request)
        except PublishError as exc:
            return exc.response()

    async def _publish(self, request: Request) -> Response:
        params = request.path_params
        topic_id = (
            f"/subscriptions/{params['sub']}/resourceGroups/{params['rg']}{PROVIDER}/topics/{params['topic']}"
        )
        topic = self.engine.records.topics(KIND_TOPIC).get(topic_id)
        if topic is None:
            raise PublishError(404, "NotFound", f"The topic '{params['topic']}' was not found.")
        endpoint = str(request.url.replace(query=""))
        version = request.query_params.get("api-version")
        authorize(topic, version, request.headers, endpoint, self.decode_token)
        events = read_events(topic, await request.body(), request.headers.get("content-type", ""))
        queued = self.engine.publish(topic.id, events, topic.input_schema)
        log.info(
            "Event Grid: %d event(s) published to topic %s, %d delivery(ies) queued",
            len(events),
            topic.name,
            queued,
        )
        return Response(status_code=200)

    async def validate(self, request: Request) -> Response:
        code = request.query_params.get("id", "")
        token = request.query_params.get("token", "")
        subscription = self.engine.confirm_manual(code, token)
        if subscription is None:
            return PlainTextResponse("The validation request is invalid or has expired.", status_code=400)
        return PlainTextResponse("Webhook successfully validated as a subscription endpoint.")


def data_routes(engine: EventGridEngine, decode_token: TokenDecoder) -> list[BaseRoute]:
    return PublishHandlers(engine, decode_token).routes()
