"""ARM's resource events for groups on subscription system topics (event-schema-subscriptions): the topic's
source rules, the event's shape, the claims of the caller, and which topics receive it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.arm.records import ResourceGroup
from devstack.emulator.callers import CURRENT, ArmCaller
from devstack.emulator.errors import ArmError
from devstack.emulator.eventgrid.engine import EventGridEngine
from devstack.emulator.eventgrid.resource_events import (
    DELETE_SUCCESS,
    WRITE_SUCCESS,
    ResourceEvents,
    event_claims,
    group_event,
)
from devstack.emulator.eventgrid.topics import TopicOperations
from devstack.emulator.store import Store
from tests.support.emulator import offline_config

SUB = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"
GROUP = ResourceGroup(
    id=f"/subscriptions/{SUB}/resourceGroups/app",
    name="app",
    type="Microsoft.Resources/resourceGroups",
    location="westeurope",
    tags={},
    properties={"provisioningState": "Succeeded"},
)
LAB = f"/subscriptions/{SUB}/resourceGroups/lab-1"
CALLER = ArmCaller(
    claims={
        "aud": "https://management.azure.com",
        "sub": "p",
        "oid": "o",
        "tid": "t",
        "client_id": "c",
        "exp": 9,
    },
    method="PATCH",
    url=f"https://arm.test{LAB}?api-version=2025-04-01",
    client_ip="127.0.0.1",
    client_request_id="r",
    correlation_id="k",
)


class World:
    def __init__(self, home: Path) -> None:
        self.store = Store(home / "emulator.sqlite")
        self.engine = EventGridEngine(offline_config(home), self.store, lambda *args: None)
        self.topics = TopicOperations(self.engine, self.store, "t", "https://arm.test", (SUB, OTHER))
        self.published: list[tuple[str, list[dict[str, Any]], str]] = []
        self.events = ResourceEvents(self.engine.records, self.publish, "tenant")

    def publish(self, topic_id: str, events: list[dict[str, Any]], schema: str) -> int:
        self.published.append((topic_id, events, schema))
        return 1

    def topic(self, name: str, source: str, location: str = "global") -> Any:
        body = {
            "location": location,
            "properties": {"source": source, "topicType": "Microsoft.Resources.Subscriptions"},
        }
        return self.topics.put_system_topic(GROUP, name, body)[0]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.store.close()


def refused(call: Any, fragment: str) -> None:
    with pytest.raises(ArmError) as caught:
        call()
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_a_subscription_topic_is_global_one_per_subscription_and_of_a_known_one(world: World) -> None:
    topic = world.topic("resources", f"/subscriptions/{SUB}")
    assert topic.properties["topicType"] == "Microsoft.Resources.Subscriptions"
    refused(lambda: world.topic("again", f"/subscriptions/{SUB}"), "Only one system topic")
    refused(lambda: world.topic("elsewhere", f"/subscriptions/{OTHER}", "westeurope"), "must be 'global'")
    refused(
        lambda: world.topic("unknown", "/subscriptions/ffffffff-0000-0000-0000-000000000000"), "was not found"
    )
    refused(lambda: world.topic("group", f"/subscriptions/{OTHER}/resourceGroups/x"), "was not found")


def test_a_create_has_no_http_request_and_an_update_has_one() -> None:
    created = group_event(WRITE_SUCCESS, LAB, "write", CALLER, "tenant", updated=False)
    assert created["subject"] == created["data"]["resourceUri"] == LAB
    assert created["topic"] == f"/subscriptions/{SUB}"
    assert (created["dataVersion"], created["metadataVersion"]) == ("2", "1")
    data = created["data"]
    assert data["operationName"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert data["authorization"] == {"scope": LAB, "action": data["operationName"]}
    assert (data["resourceProvider"], data["status"], data["subscriptionId"], data["tenantId"]) == (
        "Microsoft.Resources",
        "Succeeded",
        SUB,
        "tenant",
    )
    assert data["correlationId"] == "k"
    assert "httpRequest" not in data
    updated = group_event(WRITE_SUCCESS, LAB, "write", CALLER, "tenant", updated=True)
    assert updated["data"]["httpRequest"] == {
        "clientRequestId": "r",
        "clientIpAddress": "127.0.0.1",
        "method": "PATCH",
        "url": CALLER.url,
    }


def test_claims_are_strings_under_the_names_arm_gives_them() -> None:
    assert event_claims(CALLER.claims) == {
        "aud": "https://management.azure.com",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": "p",
        "http://schemas.microsoft.com/identity/claims/objectidentifier": "o",
        "http://schemas.microsoft.com/identity/claims/tenantid": "t",
        "appid": "c",
        "exp": "9",
        "ver": "1.0",
    }


def test_events_go_to_the_topics_of_the_groups_subscription(world: World) -> None:
    mine = world.topic("resources", f"/subscriptions/{SUB}")
    world.topic("others", f"/subscriptions/{OTHER}")
    token = CURRENT.set(CALLER)
    try:
        assert world.events.group_written(LAB, created=True) == 1
        assert world.events.group_deleted(LAB) == 1
    finally:
        CURRENT.reset(token)
    assert [(topic, events[0]["eventType"], schema) for topic, events, schema in world.published] == [
        (mine.id, WRITE_SUCCESS, "EventGridSchema"),
        (mine.id, DELETE_SUCCESS, "EventGridSchema"),
    ]
    deleted = world.published[1][1][0]["data"]
    assert deleted["operationName"] == "Microsoft.Resources/subscriptions/resourceGroups/delete"
    assert deleted["httpRequest"]["method"] == "PATCH"  # the caller's request, as set
    assert deleted["claims"]["appid"] == "c"
