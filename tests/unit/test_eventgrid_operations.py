"""Event Grid's domain operations and records, without HTTP: topics, subscriptions, publishing, tasks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from devstack.emulator.arm.records import ResourceGroup
from devstack.emulator.errors import ArmError
from devstack.emulator.eventgrid.engine import EventGridEngine
from devstack.emulator.eventgrid.model import (
    CLOUDEVENTS_SCHEMA,
    KIND_SUBSCRIPTION,
    KIND_TOPIC,
    Delivery,
    Subscription,
    Topic,
    TopicProperties,
    Validation,
)
from devstack.emulator.eventgrid.publish import PublishError, authorize, read_events
from devstack.emulator.eventgrid.runtime import BackgroundTasks, TaskKey, TaskKind
from devstack.emulator.eventgrid.subscriptions import SubscriptionOperations
from devstack.emulator.eventgrid.topics import CUSTOM_TOPICS, SYSTEM_TOPICS, TopicOperations
from devstack.emulator.store import Store
from tests.support.emulator import offline_config

GROUP = ResourceGroup(
    id="/subscriptions/s/resourceGroups/g",
    name="g",
    type="Microsoft.Resources/resourceGroups",
    location="westeurope",
    tags={},
    properties={"provisioningState": "Succeeded"},
)
REGISTRY = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/reg"


def refused(call: Any, status: int, fragment: str) -> None:
    with pytest.raises(ArmError) as caught:
        call()
    assert caught.value.status == status
    assert fragment in caught.value.message


class World:
    def __init__(self, home: Path) -> None:
        self.config = offline_config(home)
        self.store = Store(home / "emulator.sqlite")
        self.operations: dict[str, str] = {}
        self.engine = EventGridEngine(self.config, self.store, self.finish_operation)
        self.topics = TopicOperations(self.engine, self.store, "t", "https://arm.test")
        self.subscriptions = SubscriptionOperations(self.engine)

    def finish_operation(self, operation: str, status: str, error: dict[str, str] | None = None) -> None:
        self.operations[operation] = status


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.store.close()


def test_a_custom_topic_keeps_its_keys_and_schema_across_puts(world: World) -> None:
    topic, created = world.topics.put_topic(
        GROUP, "orders", {"location": "westeurope", "properties": {"inputSchema": CLOUDEVENTS_SCHEMA}}
    )
    assert created
    assert len(topic.keys or []) == 2
    shown = world.topics.view(topic)
    assert "_keys" not in shown
    assert shown["properties"]["endpoint"] == (
        "https://arm.test/eventgrid/subscriptions/s/resourceGroups/g/topics/orders/api/events"
    )
    again, created = world.topics.put_topic(GROUP, "orders", {"location": "westeurope"})
    assert not created
    assert again.keys == topic.keys
    assert again.input_schema == CLOUDEVENTS_SCHEMA
    refused(
        lambda: world.topics.put_topic(
            GROUP, "orders", {"location": "westeurope", "properties": {"inputSchema": "EventGridSchema"}}
        ),
        400,
        "The input schema of a topic cannot be changed.",
    )
    refused(lambda: world.topics.put_topic(GROUP, "orders", {}), 400, "The location property is required")


def test_custom_topic_keys_and_patch(world: World) -> None:
    topic, _ = world.topics.put_topic(GROUP, "orders", {"location": "westeurope"})
    before = list(topic.keys or [])
    after = world.topics.regenerate_key(topic, "KEY2").keys or []
    assert after[0] == before[0]
    assert after[1] != before[1]
    refused(lambda: world.topics.regenerate_key(topic, "key3"), 400, "Invalid key name.")
    patched = world.topics.patch(CUSTOM_TOPICS, topic, {"properties": {"disableLocalAuth": True}})
    assert patched.properties["disableLocalAuth"] is True
    refused(
        lambda: world.topics.patch(CUSTOM_TOPICS, topic, {"properties": {"publicNetworkAccess": "Maybe"}}),
        400,
        "'publicNetworkAccess' must be Enabled or Disabled.",
    )
    stored = world.topics.get(CUSTOM_TOPICS, GROUP, "ORDERS")
    assert stored.properties["disableLocalAuth"] is True
    assert stored.properties["publicNetworkAccess"] == "Enabled"


def test_a_system_topic_is_one_per_registry_in_its_location(world: World) -> None:
    world.store.put("registry", REGISTRY, GROUP["id"], {"id": REGISTRY, "location": "West Europe"})
    body = {
        "location": "westeurope",
        "properties": {"source": REGISTRY, "topicType": "Microsoft.ContainerRegistry.Registries"},
    }
    topic, created = world.topics.put_system_topic(GROUP, "events", body)
    assert created
    assert world.topics.view(topic)["properties"]["source"] == REGISTRY
    refused(lambda: world.topics.put_system_topic(GROUP, "other", body), 400, "Only one system topic")
    elsewhere = {**body, "location": "northeurope"}
    world.store.delete(topic.id)
    refused(lambda: world.topics.put_system_topic(GROUP, "events", elsewhere), 400, "must match the location")
    world.topics.put_system_topic(GROUP, "events", body)
    updated, created = world.topics.put_system_topic(GROUP, "events", {"tags": {"a": "b"}})
    assert not created
    assert updated.tags == {"a": "b"}
    moved = {"properties": {"source": REGISTRY + "2"}}
    refused(lambda: world.topics.put_system_topic(GROUP, "events", moved), 400, "cannot be modified")
    refused(lambda: world.topics.get(SYSTEM_TOPICS, GROUP, "nope"), 404, "systemTopics/nope")


def webhook(url: str = "https://hooks.test/api?code=secret") -> dict[str, Any]:
    return {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}}


def test_a_subscription_is_validated_again_only_when_it_must_be(world: World) -> None:
    topic, _ = world.topics.put_topic(GROUP, "orders", {"location": "westeurope"})
    scheduled: list[tuple[str, str | None, bool]] = []
    world.engine.schedule_validation = lambda *args: scheduled.append(args)  # type: ignore[method-assign]
    type_ = CUSTOM_TOPICS.subscription_type
    saved = world.subscriptions.save(topic, "sub", webhook(), type_, lambda target: "op1")
    assert saved.created
    assert saved.subscription.state == "Creating"
    assert saved.subscription.endpoint_url.endswith("?code=secret")
    assert "secret" not in str(saved.subscription.view())
    assert scheduled == [(saved.subscription.id, "op1", True)]
    # Active, then saved unchanged: no new handshake, still active.
    stored = world.subscriptions.find(topic, "SUB")
    stored.state = "Succeeded"
    world.engine.records.subscriptions.put(stored)
    again = world.subscriptions.save(topic, "sub", webhook(), type_, lambda target: "op2")
    assert not again.created
    assert again.subscription.state == "Succeeded"
    assert scheduled[-1] == (saved.subscription.id, "op2", False)
    moved = world.subscriptions.save(
        topic, "sub", webhook("https://other.test/"), type_, lambda target: "op3"
    )
    assert moved.subscription.state == "Updating"
    assert scheduled[-1][2] is True
    patched = world.subscriptions.patched(moved.subscription, {"labels": ["x"], "topic": "ignored"})
    assert patched["labels"] == ["x"]
    assert "topic" not in patched


def test_an_invalid_subscription_starts_no_operation(world: World) -> None:
    topic, _ = world.topics.put_topic(GROUP, "orders", {"location": "westeurope"})
    started: list[str] = []

    def start(target: str) -> str:
        started.append(target)
        return "op"

    refused(
        lambda: world.subscriptions.save(topic, "sub", {}, CUSTOM_TOPICS.subscription_type, start),
        400,
        "The event subscription destination is required.",
    )
    assert started == []
    assert world.store.list(KIND_SUBSCRIPTION) == []


def test_deleting_a_topic_takes_its_subscriptions_and_deliveries(world: World) -> None:
    topic, _ = world.topics.put_topic(GROUP, "orders", {"location": "westeurope"})

    async def scenario() -> None:
        saved = world.subscriptions.save(
            topic, "sub", webhook(), CUSTOM_TOPICS.subscription_type, lambda target: "op"
        )
        subscription = saved.subscription
        subscription.state = "Succeeded"
        world.engine.records.subscriptions.put(subscription)
        event = {"id": "1", "eventType": "A", "subject": "s", "data": {}, "eventTime": "2026-01-01T00:00:00Z"}
        assert world.engine.publish(topic.id, [event], "EventGridSchema") == 1
        world.topics.delete(topic)
        await world.engine.stop()

    asyncio.run(scenario())
    assert world.store.list(KIND_TOPIC) == []
    assert world.store.list(KIND_SUBSCRIPTION) == []
    assert world.engine.records.deliveries.list() == []


def test_records_keep_the_stored_shape() -> None:
    subscription = Subscription(
        id="/t/eventSubscriptions/s",
        name="s",
        type="Microsoft.EventGrid/eventSubscriptions",
        properties={"topic": "/t", "provisioningState": "AwaitingManualAction"},
        endpoint_url="https://hooks.test/?k=1",
        requested={"destination": {}},
        operation="op",
        validation=Validation(code="C", token="T", url="https://v", expires=5.0),
    )
    stored = subscription.to_json()
    assert set(stored) == {
        "id",
        "name",
        "type",
        "properties",
        "_endpointUrl",
        "_input",
        "_operation",
        "_validation",
    }
    assert stored["_validation"] == {"code": "C", "token": "T", "url": "https://v", "expires": 5.0}
    assert Subscription.from_json(stored) == subscription
    assert subscription.parent_id == "/t"
    topic = Topic("/x/providers/Microsoft.EventGrid/topics/t", "t", "T", "l", None, {}, keys=["a", "b"])
    assert topic.to_json()["_keys"] == ["a", "b"]
    assert "_keys" not in topic.view()
    assert Topic.from_json(topic.to_json()) == topic
    assert topic.parent_id == "/x"
    delivery = Delivery(
        "/t/eventSubscriptions/s/deliveries/d", "/t/eventSubscriptions/s", "S", [], 0, "p", 1.0, 2.0
    )
    assert "lastHttpStatusCode" not in delivery.to_json()
    assert Delivery.from_json(delivery.to_json()) == delivery


def test_tasks_are_keyed_by_kind_and_id_and_replace_their_predecessor() -> None:
    assert TaskKey.of(TaskKind.DELIVERY, "/A/b") == TaskKey.of(TaskKind.DELIVERY, "/a/B")
    assert TaskKey.of(TaskKind.DELIVERY, "/a") != TaskKey.of(TaskKind.VALIDATION, "/a")
    assert str(TaskKey.of(TaskKind.EXPIRY, "/A")) == "expire:/a"

    async def scenario() -> tuple[bool, bool]:
        tasks = BackgroundTasks()
        key = TaskKey.of(TaskKind.VALIDATION, "/s")
        tasks.spawn(key, asyncio.sleep(10))
        await asyncio.sleep(0)
        replaced = tasks._tasks[key]
        tasks.spawn(key, asyncio.sleep(10))
        await asyncio.sleep(0)
        cancelled = replaced.cancelled()
        tasks.cancel(key)
        await tasks.stop()
        return cancelled, key in tasks._tasks

    assert asyncio.run(scenario()) == (True, False)


def publish_topic(**properties: Any) -> Topic:
    return Topic(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/orders",
        "orders",
        "Microsoft.EventGrid/topics",
        "westeurope",
        None,
        cast(TopicProperties, {"inputSchema": "EventGridSchema", **properties}),
        keys=["a2V5MQ==", "a2V5Mg=="],
    )


def no_tokens(token: str) -> dict[str, Any]:
    raise AssertionError("no bearer token expected")


@pytest.mark.parametrize(
    ("topic", "version", "headers", "status", "fragment"),
    [
        (publish_topic(), None, {"aeg-sas-key": "a2V5MQ=="}, 400, "api-version query parameter is required"),
        (publish_topic(), "2018-01-01", {"aeg-sas-key": "wrong"}, 401, "The key is not valid."),
        (publish_topic(), "2018-01-01", {}, 401, "has no credentials"),
        (publish_topic(disableLocalAuth=True), "2018-01-01", {"aeg-sas-key": "a2V5MQ=="}, 401, "disabled"),
        (
            publish_topic(publicNetworkAccess="Disabled"),
            "2018-01-01",
            {"aeg-sas-key": "a2V5Mg=="},
            403,
            "ORDERS",
        ),
    ],
)
def test_publishing_is_authorized_before_the_body_is_read(
    topic: Topic, version: str | None, headers: dict[str, str], status: int, fragment: str
) -> None:
    with pytest.raises(PublishError) as caught:
        authorize(topic, version, headers, "https://arm.test/x/api/events", no_tokens)
    assert caught.value.status == status
    assert fragment in caught.value.message


def test_published_bodies_are_read_in_the_topics_schema() -> None:
    topic = publish_topic()
    authorize(topic, "2018-01-01", {"aeg-sas-key": "a2V5MQ=="}, "https://arm.test/x", no_tokens)
    with pytest.raises(PublishError) as caught:
        read_events(topic, b"[" + b" " * (1024 * 1024) + b"]", "application/json")
    assert caught.value.status == 413
    event = {"id": "1", "subject": "s", "data": {}, "eventType": "A", "eventTime": "2026-01-01T00:00:00Z"}
    [read] = read_events(topic, json.dumps([{**event, "dataVersion": "1"}]).encode(), "application/json")
    assert read["topic"] == topic.id
