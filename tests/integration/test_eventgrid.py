"""Event Grid on devstack through azure-mgmt-eventgrid and azure-eventgrid, with real webhooks.

Registry events come from real pushes to docker-registry (its notifications reach the emulator);
subscribers are small HTTP servers on 127.0.0.1 that record what they get and can be told to
fail, to refuse the handshake or to never answer.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from devstack import stack
from tests.support.eventgrid import dead_letter_to, dead_letters
from tests.support.stack import Devstack, error_code, unique

LOCATION = "westeurope"
ACR_TYPE = "Microsoft.ContainerRegistry.Registries"
PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"


# Webhook receivers -------------------------------------------------------------------------------------
@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any

    @property
    def kind(self) -> str:
        return self.headers.get("aeg-event-type", "")


class Receiver:
    """A webhook on 127.0.0.1.

    validation: "echo" answers the handshake with the code, "manual" with an empty 200, "fail" with 500.
    fail_times: notifications answered `fail_status` before answering `status`. hang: never answer.
    allow_origin: answer the CloudEvents OPTIONS check.
    """

    def __init__(
        self,
        validation: str = "echo",
        fail_times: int = 0,
        fail_status: int = 500,
        status: int = 200,
        hang: bool = False,
        allow_origin: bool = True,
    ) -> None:
        self.validation = validation
        self.fail_times = fail_times
        self.fail_status = fail_status
        self.status = status
        self.hang = hang
        self.allow_origin = allow_origin
        self.requests: list[Received] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> Received:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                item = Received(self.command, self.path, headers, body)
                with receiver._lock:
                    receiver.requests.append(item)
                return item

            def do_OPTIONS(self) -> None:
                item = self._record()
                if receiver.allow_origin:
                    origin = item.headers.get("webhook-request-origin", "")
                    self._reply(200, headers={"WebHook-Allowed-Origin": origin})
                else:
                    self._reply(403)

            def do_POST(self) -> None:
                item = self._record()
                if item.kind == "SubscriptionValidation":
                    if receiver.validation == "fail":
                        self._reply(500)
                    elif receiver.validation == "manual":
                        self._reply(200)
                    else:
                        code = item.body[0]["data"]["validationCode"]
                        self._reply(200, json.dumps({"validationResponse": code}).encode())
                    return
                if receiver.hang:
                    receiver.release.wait(120)
                    return
                with receiver._lock:
                    seen = sum(1 for r in receiver.requests if r.kind == "Notification")
                self._reply(receiver.fail_status if seen <= receiver.fail_times else receiver.status)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/events?code=secret-key"

    def notifications(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.kind == "Notification"]

    def events(self) -> list[dict[str, Any]]:
        """Every event delivered, in arrival order (arrays flattened, a single CloudEvent as one)."""
        found: list[dict[str, Any]] = []
        for item in self.notifications():
            found += item.body if isinstance(item.body, list) else [item.body]
        return found

    def wait_for(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if check(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"not received in {timeout}s; got {self.requests}")

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**behaviour: Any) -> Receiver:
        made.append(Receiver(**behaviour))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


# Azure resources -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eventgrid_client(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.eventgrid import EventGridManagementClient

    return EventGridManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())


@pytest.fixture(scope="module")
def eg_group(resource_client: Any) -> Iterator[str]:
    name = unique("rg-eventgrid-")
    resource_client.resource_groups.create_or_update(name, {"location": LOCATION})
    yield name
    resource_client.resource_groups.begin_delete(name, polling=False)


@pytest.fixture(scope="module")
def acr(acr_client: Any, eg_group: str) -> Any:
    return acr_client.registries.begin_create(
        eg_group, unique("egreg"), {"location": LOCATION, "sku": {"name": "Basic"}}
    ).result()


@pytest.fixture(scope="module")
def system_topic(eventgrid_client: Any, eg_group: str, acr: Any) -> Any:
    return eventgrid_client.system_topics.begin_create_or_update(
        eg_group,
        "acr-events",
        {
            "location": LOCATION,
            "source": acr.id,
            "topic_type": ACR_TYPE,
            "identity": {"type": "SystemAssigned"},
        },
    ).result()


def create_topic(eventgrid_client: Any, group: str, schema: str, disable_local_auth: bool = False) -> Any:
    return eventgrid_client.topics.begin_create_or_update(
        group,
        unique("topic-"),
        {
            "location": LOCATION,
            "input_schema": schema,
            "disable_local_auth": disable_local_auth,
        },
    ).result()


@pytest.fixture(scope="module")
def eg_topic(eventgrid_client: Any, eg_group: str) -> Any:
    return create_topic(eventgrid_client, eg_group, "EventGridSchema")


@pytest.fixture(scope="module")
def ce_topic(eventgrid_client: Any, eg_group: str) -> Any:
    return create_topic(eventgrid_client, eg_group, "CloudEventSchemaV1_0")


def webhook(receiver: Receiver, **properties: Any) -> dict[str, Any]:
    return {"destination": {"endpoint_type": "WebHook", "endpoint_url": receiver.url}, **properties}


# Subscriptions made by a test are deleted after it, so that later events do not reach them.
_created: list[tuple[str, str, str, str]] = []


def new_subscription(kind: str, group: str, topic: str) -> str:
    name = unique("sub-")
    _created.append((kind, group, topic, name))
    return name


@pytest.fixture(autouse=True)
def _drop_subscriptions(eventgrid_client: Any) -> Iterator[None]:
    yield
    while _created:
        kind, group, topic, name = _created.pop()
        operations = (
            eventgrid_client.system_topic_event_subscriptions
            if kind == "system"
            else eventgrid_client.topic_event_subscriptions
        )
        with contextlib.suppress(HttpResponseError):
            operations.begin_delete(group, topic, name).result()


def subscribe_system(eventgrid_client: Any, group: str, receiver: Receiver, **properties: Any) -> Any:
    return eventgrid_client.system_topic_event_subscriptions.begin_create_or_update(
        group, "acr-events", new_subscription("system", group, "acr-events"), webhook(receiver, **properties)
    ).result()


def subscribe_topic(eventgrid_client: Any, topic: Any, receiver: Receiver, **properties: Any) -> Any:
    group = topic.id.split("/")[4]
    return eventgrid_client.topic_event_subscriptions.begin_create_or_update(
        group, topic.name, new_subscription("topic", group, topic.name), webhook(receiver, **properties)
    ).result()


def topic_key(eventgrid_client: Any, topic: Any) -> str:
    return str(eventgrid_client.topics.list_shared_access_keys(topic.id.split("/")[4], topic.name).key1)


# Images --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_image(hello_context: Path) -> Iterator[str]:
    if not shutil.which("buildah"):
        pytest.fail("buildah is required (make installs it)")
    name = f"localhost/dockmaster-egtest:{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["buildah", "bud", "--runtime", "/usr/sbin/runc", "-q", "-t", name, str(hello_context)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield name
    subprocess.run(["buildah", "rmi", "-f", name], check=False, capture_output=True, timeout=60)


def push(devstack: Devstack, registry: Any, image: str, repository: str, tag: str, tmp_path: Path) -> str:
    """Push straight to docker-registry under the registry's namespace; returns the manifest digest."""
    backend = str(devstack.endpoints["registryBackend"]).split("://", 1)[1]
    digest_file = tmp_path / f"{uuid.uuid4().hex}.digest"
    target = f"docker://{backend}/{registry.name.lower()}/{repository}:{tag}"
    subprocess.run(
        ["buildah", "push", "--tls-verify=false", "--digestfile", str(digest_file), image, target],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return digest_file.read_text().strip()


def delete_manifest(devstack: Devstack, registry: Any, repository: str, digest: str) -> None:
    url = (
        f"{devstack.endpoints['registryBackend']}/v2/{registry.name.lower()}/{repository}/manifests/{digest}"
    )
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10) as response:  # noqa: S310
        assert response.status == 202


@dataclass
class RegistryEvents:
    """The module's registry behind its system topic: each push and delete here raises an event there."""

    devstack: Devstack
    registry: Any
    image: str
    tmp_path: Path

    def push(self, repository: str, tag: str) -> str:
        return push(self.devstack, self.registry, self.image, repository, tag, self.tmp_path)

    def delete(self, repository: str, digest: str) -> None:
        delete_manifest(self.devstack, self.registry, repository, digest)


@pytest.fixture
def registry_events(
    devstack: Devstack, acr: Any, system_topic: Any, local_image: str, tmp_path: Path
) -> RegistryEvents:
    return RegistryEvents(devstack, acr, local_image, tmp_path)


def subjects(events: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("subject")) for e in events]


# System topics and subscriptions --------------------------------------------------------------------------
def test_system_topic_is_an_arm_resource(
    eventgrid_client: Any, eg_group: str, acr: Any, system_topic: Any
) -> None:
    assert system_topic.provisioning_state == "Succeeded"
    assert system_topic.source == acr.id
    assert system_topic.topic_type == ACR_TYPE
    assert system_topic.identity.principal_id
    assert system_topic.metric_resource_id
    got = eventgrid_client.system_topics.get(eg_group, "acr-events")
    assert got.id == system_topic.id
    assert got.type == "Microsoft.EventGrid/systemTopics"
    assert [t.name for t in eventgrid_client.system_topics.list_by_resource_group(eg_group)] == ["acr-events"]
    assert system_topic.id in {t.id for t in eventgrid_client.system_topics.list_by_subscription()}


@pytest.mark.parametrize(
    ("name", "properties", "code"),
    [
        ("second", {}, "InvalidRequest"),  # one system topic per source
        ("other-type", {"topic_type": "Microsoft.Storage.StorageAccounts"}, "InvalidRequest"),
        (
            "no-source",
            {"source": "/subscriptions/x/resourceGroups/y/providers/x/registries/z"},
            "InvalidRequest",
        ),
        ("x", {}, "InvalidRequest"),  # name too short
    ],
)
def test_system_topic_refusals(
    eventgrid_client: Any,
    eg_group: str,
    acr: Any,
    system_topic: Any,
    name: str,
    properties: dict[str, Any],
    code: str,
) -> None:
    body = {"location": LOCATION, "source": acr.id, "topic_type": ACR_TYPE, **properties}
    with pytest.raises(HttpResponseError) as caught:
        eventgrid_client.system_topics.begin_create_or_update(eg_group, name, body)
    assert caught.value.status_code == 400
    assert error_code(caught.value) == code


def test_subscription_creation_performs_the_validation_handshake(
    eventgrid_client: Any, eg_group: str, system_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    created = subscribe_system(eventgrid_client, eg_group, receiver)
    assert created.provisioning_state == "Succeeded"
    assert created.topic == system_topic.id
    assert created.destination.endpoint_base_url == receiver.url.split("?")[0]
    assert created.event_delivery_schema == "EventGridSchema"
    assert (
        created.retry_policy.max_delivery_attempts,
        created.retry_policy.event_time_to_live_in_minutes,
    ) == (
        30,
        1440,
    )
    assert created.destination.max_events_per_batch == 1
    [handshake] = [r for r in receiver.requests if r.kind == "SubscriptionValidation"]
    assert handshake.headers["aeg-subscription-name"] == created.name.upper()
    assert handshake.path.endswith("?code=secret-key")
    [event] = handshake.body
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert event["topic"] == system_topic.id
    assert event["data"]["validationCode"]
    assert event["data"]["validationUrl"].startswith("https://")
    operations = eventgrid_client.system_topic_event_subscriptions
    assert operations.get_full_url(eg_group, "acr-events", created.name).endpoint_url == receiver.url
    assert created.name in {s.name for s in operations.list_by_system_topic(eg_group, "acr-events")}
    update = {"filter": {"included_event_types": [PUSHED]}, "labels": ["dockmaster"]}
    updated = operations.begin_update(eg_group, "acr-events", created.name, update).result()
    assert updated.provisioning_state == "Succeeded"
    assert updated.filter.included_event_types == [PUSHED]
    assert updated.labels == ["dockmaster"]
    assert len([r for r in receiver.requests if r.kind == "SubscriptionValidation"]) == 1  # same endpoint
    operations.begin_delete(eg_group, "acr-events", created.name).result()
    with pytest.raises(ResourceNotFoundError):
        operations.get(eg_group, "acr-events", created.name)


def test_a_refused_handshake_fails_the_subscription(
    eventgrid_client: Any, eg_group: str, system_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(validation="fail")
    name = new_subscription("system", eg_group, "acr-events")
    poller = eventgrid_client.system_topic_event_subscriptions.begin_create_or_update(
        eg_group, "acr-events", name, webhook(receiver)
    )
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert "Webhook validation handshake failed" in str(caught.value)
    assert "secret-key" not in str(caught.value)
    failed = eventgrid_client.system_topic_event_subscriptions.get(eg_group, "acr-events", name)
    assert failed.provisioning_state == "Failed"


def awaiting_manual_validation(
    eventgrid_client: Any, eg_group: str, receivers: Callable[..., Receiver]
) -> tuple[Any, str]:
    """A subscription whose endpoint answers the handshake by hand: it and the validation URL it was sent."""
    receiver = receivers(validation="manual")
    created = subscribe_system(eventgrid_client, eg_group, receiver)
    assert created.provisioning_state == "AwaitingManualAction"
    [handshake] = [r for r in receiver.requests if r.kind == "SubscriptionValidation"]
    return created, handshake.body[0]["data"]["validationUrl"]


def test_manual_validation_through_the_validation_url(
    devstack: Devstack,
    eventgrid_client: Any,
    eg_group: str,
    system_topic: Any,
    receivers: Callable[..., Receiver],
) -> None:
    created, url = awaiting_manual_validation(eventgrid_client, eg_group, receivers)
    assert requests.get(url, timeout=10).status_code == 200
    operations = eventgrid_client.system_topic_event_subscriptions
    assert operations.get(eg_group, "acr-events", created.name).provisioning_state == "Succeeded"
    assert requests.get(url, timeout=10).status_code == 400


def test_a_validation_token_outside_ascii_is_a_wrong_token(
    eventgrid_client: Any,
    eg_group: str,
    system_topic: Any,
    receivers: Callable[..., Receiver],
) -> None:
    created, url = awaiting_manual_validation(eventgrid_client, eg_group, receivers)
    forged = re.sub(r"([?&]token=)[^&]*", r"\g<1>%C3%A9", url)
    assert forged != url
    answer = requests.get(forged, timeout=10)
    assert (answer.status_code, answer.text) == (400, "The validation request is invalid or has expired.")
    operations = eventgrid_client.system_topic_event_subscriptions
    assert operations.get(eg_group, "acr-events", created.name).provisioning_state == "AwaitingManualAction"
    assert requests.get(url, timeout=10).status_code == 200


# Registry events -----------------------------------------------------------------------------------------
def test_a_push_is_one_image_pushed_event(
    eventgrid_client: Any,
    eg_group: str,
    acr: Any,
    registry_events: RegistryEvents,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    subscription = subscribe_system(eventgrid_client, eg_group, receiver)
    repository = unique("push-")
    digest = registry_events.push(repository, "v1")
    events = receiver.wait_for(lambda got: f"{repository}:v1" in subjects(got))
    time.sleep(1)  # the layer and config blob pushes must not add events
    mine = [e for e in receiver.events() if str(e["subject"]).startswith(repository)]
    assert len(mine) == 1, mine
    [event] = mine
    assert event["eventType"] == PUSHED
    assert event["topic"] == acr.id
    assert event["subject"] == f"{repository}:v1"
    assert (event["dataVersion"], event["metadataVersion"]) == ("1.0", "1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", event["eventTime"])
    data = event["data"]
    assert data["action"] == "push"
    assert data["location"] == LOCATION
    target = data["target"]
    assert set(target) == {"mediaType", "size", "digest", "length", "repository", "tag"}
    assert target["digest"] == digest
    assert (target["repository"], target["tag"]) == (repository, "v1")
    assert target["size"] == target["length"] > 0
    assert target["mediaType"].startswith("application/vnd.")
    assert data["request"]["host"] == acr.login_server
    assert data["request"]["method"] == "PUT"
    assert set(data) >= {"id", "timestamp", "action", "location", "target", "request", "actor", "source"}
    [notification] = [n for n in receiver.notifications() if n.body[0]["subject"] == f"{repository}:v1"]
    assert notification.headers["aeg-event-type"] == "Notification"
    assert notification.headers["aeg-subscription-name"] == subscription.name.upper()
    assert notification.headers["aeg-delivery-count"] == "0"
    assert notification.headers["aeg-data-version"] == "1.0"
    assert notification.headers["aeg-metadata-version"] == "1"
    assert notification.headers["content-type"].startswith("application/json")
    assert events


def test_a_manifest_delete_is_image_deleted(
    eventgrid_client: Any,
    eg_group: str,
    acr: Any,
    registry_events: RegistryEvents,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    subscribe_system(eventgrid_client, eg_group, receiver)
    repository = unique("gone-")
    digest = registry_events.push(repository, "v1")
    receiver.wait_for(lambda got: f"{repository}:v1" in subjects(got))
    registry_events.delete(repository, digest)
    events = receiver.wait_for(lambda got: any(e["eventType"] == DELETED for e in got))
    [deleted] = [e for e in events if e["eventType"] == DELETED]
    assert deleted["subject"] == repository
    assert deleted["topic"] == acr.id
    assert deleted["data"]["action"] == "delete"
    assert deleted["data"]["target"] == {
        "mediaType": deleted["data"]["target"]["mediaType"],
        "digest": digest,
        "repository": repository,
    }
    assert deleted["data"]["target"]["mediaType"].startswith("application/vnd.")
    assert deleted["data"]["request"]["method"] == "DELETE"


def test_filters_on_registry_events(
    eventgrid_client: Any, eg_group: str, registry_events: RegistryEvents, receivers: Callable[..., Receiver]
) -> None:
    prefix = unique("filt-")
    deletes_only = receivers()
    subscribe_system(
        eventgrid_client,
        eg_group,
        deletes_only,
        filter={"included_event_types": [DELETED], "subject_begins_with": f"{prefix}/keep"},
    )
    tagged_v2 = receivers()
    subscribe_system(
        eventgrid_client,
        eg_group,
        tagged_v2,
        filter={"subject_begins_with": prefix, "subject_ends_with": ":V2"},  # case-insensitive
    )
    kept = registry_events.push(f"{prefix}/keep", "v1")
    registry_events.push(f"{prefix}/keep", "v2")
    other = registry_events.push(f"{prefix}/other", "v1")
    registry_events.delete(f"{prefix}/other", other)
    registry_events.delete(f"{prefix}/keep", kept)
    got = deletes_only.wait_for(lambda events: len(events) >= 1)
    v2 = tagged_v2.wait_for(lambda events: len(events) >= 1)
    time.sleep(1.5)
    assert subjects(deletes_only.events()) == [f"{prefix}/keep"]
    assert [e["eventType"] for e in got] == [DELETED]
    assert subjects(tagged_v2.events()) == [f"{prefix}/keep:v2"]
    assert v2[0]["eventType"] == PUSHED


def test_cloudevents_delivery_uses_the_options_check(
    eventgrid_client: Any,
    eg_group: str,
    acr: Any,
    registry_events: RegistryEvents,
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    created = subscribe_system(
        eventgrid_client, eg_group, receiver, event_delivery_schema="CloudEventSchemaV1_0"
    )
    assert created.provisioning_state == "Succeeded"
    [check] = receiver.requests
    assert check.method == "OPTIONS"
    assert check.headers["webhook-request-origin"] == "eventgrid.azure.net"
    repository = unique("ce-")
    digest = registry_events.push(repository, "v1")
    receiver.wait_for(lambda got: f"{repository}:v1" in subjects(got))
    [notification] = [n for n in receiver.notifications() if n.body.get("subject") == f"{repository}:v1"]
    assert notification.headers["content-type"].startswith("application/cloudevents+json")
    assert notification.headers["aeg-metadata-version"] == "1.0"
    cloud = notification.body
    assert cloud["specversion"] == "1.0"
    assert cloud["source"] == acr.id
    assert cloud["type"] == PUSHED
    assert cloud["id"]
    assert cloud["time"]
    assert cloud["data"]["target"]["digest"] == digest


def test_a_refused_options_check_fails_the_subscription(
    eventgrid_client: Any, eg_group: str, system_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(allow_origin=False)
    with pytest.raises(HttpResponseError, match="OPTIONS"):
        subscribe_system(eventgrid_client, eg_group, receiver, event_delivery_schema="CloudEventSchemaV1_0")


# Delivery: retries, dead letters, isolation --------------------------------------------------------------
def publish_one(eventgrid_client: Any, topic: Any, subject: str = "orders/1", **data: Any) -> str:
    event = EventGridEvent(
        subject=subject, event_type="Contoso.Order.Placed", data=data or {"n": 1}, data_version="1.0"
    )
    with EventGridPublisherClient(
        topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, topic))
    ) as client:
        client.send([event])
    return str(event.id)


def test_a_failing_subscriber_gets_the_event_on_a_later_attempt(
    eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(fail_times=3)
    subscribe_topic(eventgrid_client, eg_topic, receiver)
    event_id = publish_one(eventgrid_client, eg_topic)
    receiver.wait_for(lambda got: len(got) >= 4)
    deliveries = receiver.notifications()
    assert [n.headers["aeg-delivery-count"] for n in deliveries] == ["0", "1", "2", "3"]
    assert {n.body[0]["id"] for n in deliveries} == {event_id}
    time.sleep(1)
    assert len(receiver.notifications()) == 4


def test_a_subscriber_that_always_fails_is_dead_lettered(
    devstack: Devstack, eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(fail_times=1000)
    container = unique("dead-")
    subscription = subscribe_topic(
        eventgrid_client,
        eg_topic,
        receiver,
        retry_policy={"max_delivery_attempts": 3, "event_time_to_live_in_minutes": 60},
        dead_letter_destination=dead_letter_to(container),
    )
    event_id = publish_one(eventgrid_client, eg_topic, subject="orders/dead")
    [(name, body)] = dead_letters(devstack, container)
    date = r"\d{4}/\d{1,2}/\d{1,2}/\d{1,2}"
    pattern = rf"{eg_topic.name.upper()}/{subscription.name.upper()}/{date}/[0-9a-f-]{{36}}\.json"
    assert re.fullmatch(pattern, name), name
    [event] = body
    assert event["id"] == event_id
    assert event["subject"] == "orders/dead"
    assert event["topic"] == eg_topic.id
    assert event["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert event["deliveryAttempts"] == 3
    assert event["lastHttpStatusCode"] == 500
    assert event["lastDeliveryOutcome"]
    assert event["publishTime"]
    assert event["lastDeliveryAttemptTime"]
    assert len(receiver.notifications()) == 3


def test_a_400_is_dead_lettered_without_retry(
    devstack: Devstack, eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(status=400)
    container = unique("bad-")
    subscribe_topic(eventgrid_client, eg_topic, receiver, dead_letter_destination=dead_letter_to(container))
    publish_one(eventgrid_client, eg_topic)
    [(_, [event])] = dead_letters(devstack, container)
    assert event["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert (event["deliveryAttempts"], event["lastHttpStatusCode"]) == (1, 400)
    assert len(receiver.notifications()) == 1


def test_a_subscriber_that_never_answers_does_not_delay_another(
    eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    stuck, healthy = receivers(hang=True), receivers()
    subscribe_topic(eventgrid_client, eg_topic, stuck)
    subscribe_topic(eventgrid_client, eg_topic, healthy)
    events = [
        EventGridEvent(subject=f"burst/{i}", event_type="Contoso.Burst", data={"i": i}, data_version="1.0")
        for i in range(12)
    ]
    started = time.monotonic()
    with EventGridPublisherClient(
        eg_topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, eg_topic))
    ) as c:
        c.send(events)
    healthy.wait_for(lambda got: len([e for e in got if e["eventType"] == "Contoso.Burst"]) == 12, timeout=10)
    assert time.monotonic() - started < 5
    assert stuck.notifications()  # it got requests; they are still hanging


def test_batching_when_asked(
    eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    destination = {"endpoint_type": "WebHook", "endpoint_url": receiver.url, "max_events_per_batch": 10}
    group = eg_topic.id.split("/")[4]
    eventgrid_client.topic_event_subscriptions.begin_create_or_update(
        group, eg_topic.name, new_subscription("topic", group, eg_topic.name), {"destination": destination}
    ).result()
    events = [
        EventGridEvent(subject=f"batch/{i}", event_type="Contoso.Batch", data={}, data_version="1")
        for i in range(3)
    ]
    with EventGridPublisherClient(
        eg_topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, eg_topic))
    ) as c:
        c.send(events)
    receiver.wait_for(lambda got: len([e for e in got if e["eventType"] == "Contoso.Batch"]) == 3)
    [delivery] = [n for n in receiver.notifications() if n.body[0]["eventType"] == "Contoso.Batch"]
    assert len(delivery.body) == 3


# Custom topics and publishing ----------------------------------------------------------------------------
def test_custom_topics_are_arm_resources(eventgrid_client: Any, eg_group: str, eg_topic: Any) -> None:
    assert eg_topic.provisioning_state == "Succeeded"
    assert eg_topic.input_schema == "EventGridSchema"
    assert eg_topic.endpoint.startswith("https://")
    assert eg_topic.endpoint.endswith("/api/events")
    assert eventgrid_client.topics.get(eg_group, eg_topic.name).endpoint == eg_topic.endpoint
    assert eg_topic.name in {t.name for t in eventgrid_client.topics.list_by_resource_group(eg_group)}
    assert eg_topic.id in {t.id for t in eventgrid_client.topics.list_by_subscription()}
    temporary = create_topic(eventgrid_client, eg_group, "EventGridSchema")
    eventgrid_client.topics.begin_delete(eg_group, temporary.name).result()
    with pytest.raises(ResourceNotFoundError):
        eventgrid_client.topics.get(eg_group, temporary.name)


def test_topic_keys_can_be_listed_and_regenerated(eventgrid_client: Any, eg_group: str) -> None:
    topic = create_topic(eventgrid_client, eg_group, "EventGridSchema")
    before = eventgrid_client.topics.list_shared_access_keys(eg_group, topic.name)
    assert before.key1 != before.key2
    after = eventgrid_client.topics.begin_regenerate_key(eg_group, topic.name, {"key_name": "key1"}).result()
    assert after.key1 != before.key1
    assert after.key2 == before.key2
    event = EventGridEvent(subject="s", event_type="T", data={}, data_version="1")
    old = EventGridPublisherClient(topic.endpoint, AzureKeyCredential(before.key1))
    with old, pytest.raises(ClientAuthenticationError):
        old.send([event])
    with EventGridPublisherClient(topic.endpoint, AzureKeyCredential(after.key1)) as client:
        client.send([event])


@pytest.mark.parametrize("auth", ["key", "token"])
@pytest.mark.parametrize("schema", ["EventGridSchema", "CloudEventSchemaV1_0"])
def test_publishing_reaches_subscribers(
    eventgrid_client: Any,
    eg_topic: Any,
    ce_topic: Any,
    credential: Any,
    receivers: Callable[..., Receiver],
    schema: str,
    auth: str,
) -> None:
    topic = eg_topic if schema == "EventGridSchema" else ce_topic
    receiver = receivers()
    marker = unique("pub-")
    subscribe_topic(eventgrid_client, topic, receiver, filter={"subject_begins_with": marker})
    auth_credential = AzureKeyCredential(topic_key(eventgrid_client, topic)) if auth == "key" else credential
    if schema == "EventGridSchema":
        sent: Any = EventGridEvent(
            subject=f"{marker}/1", event_type="Contoso.Published", data={"a": 1}, data_version="2.0"
        )
    else:
        sent = CloudEvent(
            source="/dockmaster/tests", type="Contoso.Published", data={"a": 1}, subject=f"{marker}/1"
        )
    with EventGridPublisherClient(topic.endpoint, auth_credential) as client:
        client.send([sent])
    [event] = receiver.wait_for(lambda got: len(got) == 1)
    assert event["id"] == str(sent.id)
    assert event["data"] == {"a": 1}
    if schema == "EventGridSchema":
        assert (event["topic"], event["eventType"], event["dataVersion"]) == (
            topic.id,
            "Contoso.Published",
            "2.0",
        )
        assert receiver.notifications()[0].headers["aeg-data-version"] == "2.0"
    else:
        assert (event["source"], event["type"], event["specversion"]) == (
            "/dockmaster/tests",
            "Contoso.Published",
            "1.0",
        )
        assert receiver.requests[0].method == "OPTIONS"  # CloudEvents topics deliver CloudEvents


def test_local_auth_can_be_disabled(
    eventgrid_client: Any, eg_group: str, credential: Any, receivers: Callable[..., Receiver]
) -> None:
    topic = create_topic(eventgrid_client, eg_group, "CloudEventSchemaV1_0", disable_local_auth=True)
    assert topic.disable_local_auth is True
    receiver = receivers()
    subscribe_topic(eventgrid_client, topic, receiver)
    event = CloudEvent(source="/dockmaster", type="Dockmaster.Verdict", data={"verdict": "pass"})
    with (
        EventGridPublisherClient(
            topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, topic))
        ) as client,
        pytest.raises(ClientAuthenticationError),
    ):
        client.send([event])
    with EventGridPublisherClient(topic.endpoint, credential) as client:
        client.send([event])
    assert receiver.wait_for(lambda got: len(got) == 1)[0]["type"] == "Dockmaster.Verdict"


def test_sas_tokens_are_accepted(
    eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    marker = unique("sas-")
    subscribe_topic(eventgrid_client, eg_topic, receiver, filter={"subject_begins_with": marker})
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    token = generate_sas(eg_topic.endpoint, topic_key(eventgrid_client, eg_topic), expiry)
    event = EventGridEvent(subject=f"{marker}/1", event_type="T", data={}, data_version="1")
    with EventGridPublisherClient(eg_topic.endpoint, AzureSasCredential(token)) as client:
        client.send([event])
    assert receiver.wait_for(lambda got: len(got) == 1)[0]["id"] == str(event.id)
    forged = generate_sas(eg_topic.endpoint, base64.b64encode(b"x" * 32).decode(), expiry)
    client = EventGridPublisherClient(eg_topic.endpoint, AzureSasCredential(forged))
    with client, pytest.raises(ClientAuthenticationError):
        client.send([event])


def test_a_sas_token_outside_ascii_is_a_signature_that_does_not_match(
    eventgrid_client: Any, eg_topic: Any
) -> None:
    """Bytes outside ASCII in a SAS token, in its signature or in what it signs, get Event Grid's 401."""
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    token = generate_sas(eg_topic.endpoint, topic_key(eventgrid_client, eg_topic), expiry)
    unsigned, _, signature = token.rpartition("&s=")
    for forged in (f"{unsigned}&s={signature}\u00e9", f"{unsigned}&x=\u00e9&s={signature}"):
        response = requests.post(
            eg_topic.endpoint,
            params={"api-version": "2018-01-01"},
            json=[],
            headers={"aeg-sas-token": forged.encode()},
            timeout=10,
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "Unauthorized"
        assert "The SAS token signature is not valid." in response.json()["error"]["message"]


def test_a_bad_key_is_a_401(eventgrid_client: Any, eg_topic: Any) -> None:
    event = EventGridEvent(subject="s", event_type="T", data={}, data_version="1")
    client = EventGridPublisherClient(eg_topic.endpoint, AzureKeyCredential("bm90LXRoZS1rZXk="))
    with client, pytest.raises(ClientAuthenticationError) as caught:
        client.send([event])
    assert caught.value.status_code == 401
    response = requests.post(eg_topic.endpoint, params={"api-version": "2018-01-01"}, json=[], timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"


def test_malformed_input_is_a_400(eventgrid_client: Any, eg_topic: Any, ce_topic: Any) -> None:
    key = topic_key(eventgrid_client, eg_topic)
    headers = {"aeg-sas-key": key, "Content-Type": "application/json"}
    url = eg_topic.endpoint
    not_json = requests.post(
        url, params={"api-version": "2018-01-01"}, data=b"{oops", headers=headers, timeout=10
    )
    assert not_json.status_code == 400
    error = not_json.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["details"][0]["code"] == "InputJsonInvalid"
    missing = requests.post(
        url,
        params={"api-version": "2018-01-01"},
        json=[{"id": "1", "eventType": "T"}],
        headers=headers,
        timeout=10,
    )
    assert missing.status_code == 400
    assert "Required property" in missing.json()["error"]["message"]
    no_version = requests.post(url, json=[], headers=headers, timeout=10)
    assert no_version.status_code == 400
    cloud: CloudEvent[Any] = CloudEvent(source="/x", type="T", data={})
    client = EventGridPublisherClient(url, AzureKeyCredential(key))
    with client, pytest.raises(HttpResponseError) as caught:  # a CloudEvent to an Event Grid schema topic
        client.send([cloud])
    assert caught.value.status_code == 400
    with (
        EventGridPublisherClient(
            ce_topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, ce_topic))
        ) as c,
        pytest.raises(HttpResponseError) as caught,
    ):
        c.send([EventGridEvent(subject="s", event_type="T", data={}, data_version="1")])
    assert caught.value.status_code == 400


def test_filters_on_published_events(
    eventgrid_client: Any, eg_topic: Any, receivers: Callable[..., Receiver]
) -> None:
    marker = unique("f-")
    receiver = receivers()
    subscribe_topic(
        eventgrid_client,
        eg_topic,
        receiver,
        filter={
            "included_event_types": ["Contoso.Order.Placed", "Contoso.Order.Paid"],
            "subject_begins_with": f"{marker}/Orders/",
            "subject_ends_with": ".json",
            "is_subject_case_sensitive": True,
        },
    )
    cases = [
        ("Contoso.Order.Placed", f"{marker}/Orders/1.json", True),
        ("contoso.order.paid", f"{marker}/Orders/2.json", True),  # event types compare case-insensitively
        ("Contoso.Order.Shipped", f"{marker}/Orders/3.json", False),
        ("Contoso.Order.Placed", f"{marker}/orders/4.json", False),  # case-sensitive subject
        ("Contoso.Order.Placed", f"{marker}/Orders/5.xml", False),
    ]
    events = [EventGridEvent(subject=s, event_type=t, data={}, data_version="1") for t, s, _ in cases]
    with EventGridPublisherClient(
        eg_topic.endpoint, AzureKeyCredential(topic_key(eventgrid_client, eg_topic))
    ) as c:
        c.send(events)
    expected = sorted(s for _, s, wanted in cases if wanted)
    receiver.wait_for(lambda got: len(got) >= len(expected))
    time.sleep(1)
    assert sorted(subjects(receiver.events())) == expected


def test_api_version_is_checked(eventgrid_client: Any, eg_group: str, system_topic: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        eventgrid_client.system_topics.get(eg_group, "acr-events", api_version="2017-06-15-preview")
    assert caught.value.status_code == 400
    assert error_code(caught.value) == "NoRegisteredProviderFound"


def test_topics_go_with_their_registry_and_group(
    eventgrid_client: Any, acr_client: Any, resource_client: Any
) -> None:
    group = unique("rg-eg-gone-")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    registry = acr_client.registries.begin_create(
        group, unique("egtmp"), {"location": LOCATION, "sku": {"name": "Basic"}}
    ).result()
    eventgrid_client.system_topics.begin_create_or_update(
        group, "tmp-topic", {"location": LOCATION, "source": registry.id, "topic_type": ACR_TYPE}
    ).result()
    topic = create_topic(eventgrid_client, group, "EventGridSchema")
    acr_client.registries.begin_delete(group, registry.name).result()
    with pytest.raises(ResourceNotFoundError):
        eventgrid_client.system_topics.get(group, "tmp-topic")
    resource_client.resource_groups.begin_delete(group).result()
    assert topic.id not in {t.id for t in eventgrid_client.topics.list_by_subscription()}


# Durability -------------------------------------------------------------------------------------------------
def test_pending_deliveries_survive_an_emulator_restart(
    tmp_path: Path, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A separate stack: an event accepted while its subscriber is down is delivered after a restart."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.eventgrid import EventGridManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    home = tmp_path / "stack"
    receiver = receivers(fail_times=1000)

    def clients(endpoints: dict[str, Any]) -> tuple[Any, Any]:
        monkeypatch.setenv("IDENTITY_ENDPOINT", str(endpoints["identityEndpoint"]))
        monkeypatch.setenv("IDENTITY_HEADER", str(endpoints["identityHeader"]))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(endpoints["caBundle"]))
        arm = str(endpoints["armEndpoint"])
        kwargs: dict[str, Any] = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
        credential = ManagedIdentityCredential()
        sub = str(endpoints["subscriptionId"])
        return ResourceManagementClient(credential, sub, **kwargs), EventGridManagementClient(
            credential, sub, **kwargs
        )

    monkeypatch.setenv("DEVSTACK_EVENTGRID_RETRY_MAX", "2")
    endpoints = stack.up(home)
    try:
        resources, grid = clients(endpoints)
        resources.resource_groups.create_or_update("rg-durable", {"location": LOCATION})
        topic = grid.topics.begin_create_or_update(
            "rg-durable", "durable", {"location": LOCATION, "input_schema": "EventGridSchema"}
        ).result()
        grid.topic_event_subscriptions.begin_create_or_update(
            "rg-durable", "durable", "keeps", webhook(receiver)
        ).result()
        key = grid.topics.list_shared_access_keys("rg-durable", "durable").key1
        event = EventGridEvent(subject="durable/1", event_type="Contoso.Durable", data={}, data_version="1")
        with EventGridPublisherClient(topic.endpoint, AzureKeyCredential(key)) as client:
            client.send([event])
        receiver.wait_for(lambda got: len(got) >= 1)  # attempted, refused, pending a retry
    finally:
        stack.down(home)
    attempts = len(receiver.notifications())
    receiver.fail_times = 0  # the subscriber is back
    stack.up(home)
    try:
        receiver.wait_for(lambda got: len(got) > attempts, timeout=30)
        time.sleep(1)
    finally:
        stack.down(home)
    delivered = receiver.notifications()[attempts:]
    assert len(delivered) == 1, delivered
    assert delivered[0].body[0]["id"] == str(event.id)
    assert int(delivered[0].headers["aeg-delivery-count"]) == attempts
