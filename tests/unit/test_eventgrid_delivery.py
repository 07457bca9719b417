"""Event Grid delivery engine: filters, schemas, retry schedule, dead letters, and the engine itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.eventgrid import delivery
from devstack.emulator.eventgrid import validation as eventgrid_validation
from devstack.emulator.eventgrid.engine import EventGridEngine
from devstack.emulator.eventgrid.model import (
    CLOUDEVENTS_SCHEMA,
    EVENTGRID_SCHEMA,
    KIND_DELIVERY,
    KIND_SUBSCRIPTION,
)
from devstack.emulator.store import Store
from tests.support.emulator import offline_config

TOPIC = "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/orders"


def eg_event(
    event_type: str = "Contoso.Order.Placed", subject: str = "orders/1", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "e1",
        "topic": TOPIC,
        "subject": subject,
        "eventType": event_type,
        "eventTime": "2026-11-29T21:39:47.6549614Z",
        "data": {"n": 1},
        "dataVersion": "1.0",
        "metadataVersion": "1",
        **extra,
    }


@pytest.mark.parametrize(
    ("filter_", "event_type", "subject", "expected"),
    [
        (None, "A.B", "x", True),
        ({"includedEventTypes": ["a.b"]}, "A.B", "x", True),
        ({"includedEventTypes": ["A.C"]}, "A.B", "x", False),
        ({"subjectBeginsWith": "repo/"}, "A", "REPO/app:v1", True),
        ({"subjectBeginsWith": "repo/", "isSubjectCaseSensitive": True}, "A", "REPO/app:v1", False),
        ({"subjectEndsWith": ":v1"}, "A", "repo/app:V1", True),
        ({"subjectEndsWith": ":v1", "isSubjectCaseSensitive": True}, "A", "repo/app:V1", False),
        ({"subjectBeginsWith": "a", "subjectEndsWith": "z"}, "A", "abz", True),
        ({"subjectBeginsWith": "a", "subjectEndsWith": "z"}, "A", "aby", False),
    ],
)
def test_basic_filters(filter_: dict[str, Any] | None, event_type: str, subject: str, expected: bool) -> None:
    assert delivery.matches(filter_, event_type, subject) is expected


def test_cloudevents_conversion_keeps_what_event_grid_keeps() -> None:
    cloud = delivery.to_cloudevent(eg_event())
    assert cloud == {
        "id": "e1",
        "source": TOPIC,
        "specversion": "1.0",
        "type": "Contoso.Order.Placed",
        "subject": "orders/1",
        "time": "2026-11-29T21:39:47.6549614Z",
        "data": {"n": 1},
    }
    assert delivery.for_delivery(eg_event(), EVENTGRID_SCHEMA, EVENTGRID_SCHEMA) == eg_event()
    with pytest.raises(ValueError, match="cannot deliver"):
        delivery.for_delivery(cloud, CLOUDEVENTS_SCHEMA, EVENTGRID_SCHEMA)


def test_batches_respect_count_and_preferred_size() -> None:
    events = [eg_event(subject=f"s{i}") for i in range(7)]
    assert [len(b) for b in delivery.batches(events, 1, 64)] == [1] * 7
    assert [len(b) for b in delivery.batches(events, 3, 64)] == [3, 3, 1]
    big = [eg_event(data={"blob": "x" * 700}) for _ in range(4)]
    assert [len(b) for b in delivery.batches(big, 10, 1)] == [1, 1, 1, 1]


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    delays = [delivery.backoff(n, 0.2, 5.0, rng) for n in range(1, 10)]
    for attempt, value in enumerate(delays, start=1):
        expected = min(5.0, 0.2 * 2 ** (attempt - 1))
        assert expected <= value <= min(5.0, expected * 1.25)
    assert delays[-1] == 5.0 or delays[-1] <= 5.0


def test_outcomes_and_reasons() -> None:
    assert delivery.outcome_of(200) == "Succeeded"
    assert delivery.outcome_of(203) == "Succeeded"
    assert delivery.outcome_of(400) == "BadRequest"
    assert delivery.outcome_of(503) == "Busy"
    assert delivery.outcome_of(None, timed_out=True) == "TimedOut"
    assert delivery.outcome_of(None) == "GenericError"
    assert delivery.not_retried_reason(400) == "UndeliverableDueToHttpBadRequest"
    assert {200, 201, 202, 203, 204} == delivery.SUCCESS
    assert {400, 413} <= delivery.NOT_RETRIED


def test_expiration() -> None:
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
    assert delivery.expired("2026-11-29T11:59:59Z", now)
    assert not delivery.expired("2026-11-29T12:00:01+00:00", now)
    assert not delivery.expired(None, now)
    assert not delivery.expired("not a date", now)


def test_dead_letter_blob_is_named_as_azure_names_it() -> None:
    moment = dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC)
    name = delivery.dead_letter_blob(TOPIC, "My-Sub", moment)
    assert re.fullmatch(r"ORDERS/MY-SUB/2026/3/4/5/[0-9a-f-]{36}\.json", name), name


def test_dead_letter_annotations_follow_the_schema() -> None:
    facts = {
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 3,
        "lastDeliveryOutcome": "GenericError",
        "lastHttpStatusCode": 500,
        "publishTime": "2026-11-29T08:00:00.000Z",
        "lastDeliveryAttemptTime": "2026-11-29T08:00:01.000Z",
    }
    annotated = delivery.annotate_dead_letter(eg_event(), EVENTGRID_SCHEMA, facts)
    assert {k: annotated[k] for k in facts} == facts
    assert annotated["data"] == {"n": 1}
    cloud = delivery.annotate_dead_letter(delivery.to_cloudevent(eg_event()), CLOUDEVENTS_SCHEMA, facts)
    assert cloud["deadletterreason"] == "MaxDeliveryAttemptsExceeded"
    assert cloud["lasthttpstatuscode"] == 500
    assert "deadLetterReason" not in cloud


def test_delivery_headers_and_bodies() -> None:
    headers = delivery.delivery_headers("my-sub", 2, [eg_event()], EVENTGRID_SCHEMA)
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-subscription-name"] == "MY-SUB"
    assert headers["aeg-delivery-count"] == "2"
    assert headers["aeg-metadata-version"] == "1"
    assert headers["aeg-data-version"] == "1.0"
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(delivery.body_of([eg_event()], EVENTGRID_SCHEMA)) == [eg_event()]
    cloud = delivery.to_cloudevent(eg_event())
    single = delivery.delivery_headers("s", 0, [cloud], CLOUDEVENTS_SCHEMA)
    assert single["Content-Type"].startswith("application/cloudevents+json")
    assert single["aeg-metadata-version"] == "1.0"
    assert json.loads(delivery.body_of([cloud], CLOUDEVENTS_SCHEMA)) == cloud
    batch = delivery.delivery_headers("s", 0, [cloud, cloud], CLOUDEVENTS_SCHEMA)
    assert batch["Content-Type"].startswith("application/cloudevents-batch+json")
    assert json.loads(delivery.body_of([cloud, cloud], CLOUDEVENTS_SCHEMA)) == [cloud, cloud]


def test_delivery_attribute_headers() -> None:
    mappings = [
        {"name": "X-Static", "type": "Static", "properties": {"value": "v", "isSecret": False}},
        {"name": "X-Repo", "type": "Dynamic", "properties": {"sourceField": "data.n"}},
        {"name": "X-Missing", "type": "Dynamic", "properties": {"sourceField": "data.none"}},
    ]
    assert delivery.attribute_headers(mappings, eg_event()) == {"X-Static": "v", "X-Repo": "1"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"validationResponse": "ABC"}', "ABC"),
        (b'{"ValidationResponse": "abc"}', "abc"),
        (b'[{"validationResponse": "x"}]', "x"),
        (b"", None),
        (b"not json", None),
        (b'{"other": 1}', None),
    ],
)
def test_echoed_validation_code(body: bytes, expected: str | None) -> None:
    assert eventgrid_validation.echoed_code(body) == expected


def test_handshake_failure_hides_the_query_string() -> None:
    message = eventgrid_validation.handshake_failure(
        "https://h.example/api?code=SECRET", "Http POST request failed."
    )
    assert message.startswith("Webhook validation handshake failed for https://h.example/api.")
    assert "SECRET" not in message


# The engine, against a real local HTTP endpoint -----------------------------------------------------
class Endpoint:
    """A webhook that fails `fail` times, or never answers when `hang`."""

    def __init__(self, fail: int = 0, hang: bool = False) -> None:
        self.fail = fail
        self.hang = hang
        self.counts: list[str] = []
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                endpoint.counts.append(self.headers.get("aeg-delivery-count", ""))
                if endpoint.hang:
                    endpoint.release.wait(30)
                    return
                status = 500 if len(endpoint.counts) <= endpoint.fail else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class FakeEmulator:
    def __init__(self, home: Path, **settings: Any) -> None:
        self.config = offline_config(home, **settings)
        self.store = Store(home / "emulator.sqlite")
        self.operations: dict[str, str] = {}

    def finish_operation(self, operation: str, status: str, error: dict[str, str] | None = None) -> None:
        self.operations[operation] = status


def engine_of(emu: FakeEmulator) -> EventGridEngine:
    return EventGridEngine(emu.config, emu.store, emu.finish_operation)


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for endpoint in made:
        endpoint.close()


def add_subscription(emu: FakeEmulator, name: str, url: str, attempts: int = 30) -> str:
    sub_id = f"{TOPIC}/eventSubscriptions/{name}"
    emu.store.put(
        KIND_SUBSCRIPTION,
        sub_id,
        TOPIC,
        {
            "id": sub_id,
            "name": name,
            "type": "Microsoft.EventGrid/eventSubscriptions",
            "properties": {
                "topic": TOPIC,
                "provisioningState": "Succeeded",
                "destination": {"endpointType": "WebHook", "properties": {"maxEventsPerBatch": 1}},
                "filter": {},
                "eventDeliverySchema": EVENTGRID_SCHEMA,
                "retryPolicy": {"maxDeliveryAttempts": attempts, "eventTimeToLiveInMinutes": 1440},
            },
            "_endpointUrl": url,
        },
    )
    return sub_id


async def until(check: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_retries_until_delivered_with_a_counting_header(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    endpoints.append(Endpoint(fail=2))
    emu = FakeEmulator(tmp_path, eventgrid_retry_base_seconds=0.05, eventgrid_retry_max_seconds=0.2)
    sub_id = add_subscription(emu, "retry", endpoints[0].url)

    async def scenario() -> None:
        engine = engine_of(emu)
        await engine.start()
        try:
            assert engine.publish(TOPIC, [eg_event()], EVENTGRID_SCHEMA) == 1
            await until(lambda: not emu.store.list(KIND_DELIVERY, sub_id))
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert endpoints[0].counts == ["0", "1", "2"]


def test_pending_deliveries_survive_a_restart(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    endpoints.append(Endpoint())
    emu = FakeEmulator(tmp_path)
    sub_id = add_subscription(emu, "later", endpoints[0].url)
    # Accepted while the engine is not running (before start, or by a process that then stopped).
    stopped = engine_of(emu)
    assert stopped.publish(TOPIC, [eg_event(), eg_event(subject="orders/2")], EVENTGRID_SCHEMA) == 2
    assert len(emu.store.list(KIND_DELIVERY, sub_id)) == 2
    emu.store.close()

    restarted = FakeEmulator(tmp_path)

    async def scenario() -> None:
        engine = engine_of(restarted)
        await engine.start()
        try:
            await until(lambda: not restarted.store.list(KIND_DELIVERY, sub_id))
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert sorted(endpoints[0].counts) == ["0", "0"]


def test_an_endpoint_that_never_answers_does_not_hold_up_others(
    tmp_path: Path, endpoints: list[Endpoint]
) -> None:
    stuck, healthy = Endpoint(hang=True), Endpoint()
    endpoints += [stuck, healthy]
    emu = FakeEmulator(
        tmp_path,
        eventgrid_delivery_timeout_seconds=20,
        eventgrid_max_concurrency=6,
        eventgrid_subscription_concurrency=2,
    )
    add_subscription(emu, "stuck", stuck.url)
    healthy_id = add_subscription(emu, "healthy", healthy.url)

    async def scenario() -> float:
        engine = engine_of(emu)
        await engine.start()
        try:
            started = time.monotonic()
            events = [eg_event(subject=f"orders/{i}") for i in range(10)]
            engine.publish(TOPIC, events, EVENTGRID_SCHEMA)
            await until(lambda: not emu.store.list(KIND_DELIVERY, healthy_id), within=5)
            return time.monotonic() - started
        finally:
            await engine.stop()

    elapsed = asyncio.run(scenario())
    assert len(healthy.counts) == 10
    assert len(stuck.counts) == 2  # the stuck subscription holds only its own two slots
    assert elapsed < 5


def test_timeouts_retry_then_drop_without_a_dead_letter_destination(
    tmp_path: Path, endpoints: list[Endpoint], caplog: pytest.LogCaptureFixture
) -> None:
    stuck = Endpoint(hang=True)
    endpoints.append(stuck)
    emu = FakeEmulator(
        tmp_path,
        eventgrid_delivery_timeout_seconds=0.3,
        eventgrid_retry_base_seconds=0.05,
        eventgrid_retry_max_seconds=0.05,
    )
    sub_id = add_subscription(emu, "slow", stuck.url, attempts=2)

    async def scenario() -> None:
        engine = engine_of(emu)
        await engine.start()
        try:
            engine.publish(TOPIC, [eg_event()], EVENTGRID_SCHEMA)
            await until(lambda: not emu.store.list(KIND_DELIVERY, sub_id))
        finally:
            await engine.stop()

    with caplog.at_level("WARNING", logger="devstack.eventgrid"):
        asyncio.run(scenario())
    assert stuck.counts == ["0", "1"]
    assert any("DROPPED" in r.message and "MaxDeliveryAttemptsExceeded" in r.message for r in caplog.records)


def test_an_expired_event_is_not_delivered(tmp_path: Path, endpoints: list[Endpoint]) -> None:
    endpoints.append(Endpoint())
    emu = FakeEmulator(tmp_path, eventgrid_ttl_minute_seconds=0.01)
    sub_id = add_subscription(emu, "ttl", endpoints[0].url)
    engine_of(emu).publish(TOPIC, [eg_event()], EVENTGRID_SCHEMA)
    record = emu.store.list(KIND_DELIVERY, sub_id)[0]
    record["publishEpoch"] -= 60
    emu.store.put(KIND_DELIVERY, record["id"], sub_id, record)

    async def scenario() -> None:
        engine = engine_of(emu)
        await engine.start()
        try:
            await until(lambda: not emu.store.list(KIND_DELIVERY, sub_id))
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert endpoints[0].counts == []
