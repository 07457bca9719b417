"""Event Grid ARM bodies and topic publishing: what is accepted, what is refused and how."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from azure.eventgrid import generate_sas

from devstack.emulator.errors import ArmError
from devstack.emulator.eventgrid.model import CLOUDEVENTS_SCHEMA, EVENTGRID_SCHEMA
from devstack.emulator.eventgrid.publish import (
    PublishError,
    parse_cloudevents,
    parse_eventgrid_events,
    sas_valid,
)
from devstack.emulator.eventgrid.subscriptions import parse_subscription
from devstack.emulator.eventgrid.topics import new_key

TOPIC = "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/orders"
ENDPOINT = "https://127.0.0.1:8443/eventgrid/subscriptions/s/resourceGroups/g/topics/orders/api/events"


def event(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "1",
        "subject": "orders/1",
        "eventType": "Contoso.Order.Placed",
        "eventTime": "2026-11-29T08:00:00.1234567Z",
        "data": {"n": 1},
        "dataVersion": "1.0",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def cloud(**changes: Any) -> dict[str, Any]:
    base = {"id": "1", "source": "/orders", "specversion": "1.0", "type": "Contoso.Order.Placed", "data": {}}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def test_event_grid_events_are_completed_with_topic_and_metadata_version() -> None:
    [parsed] = parse_eventgrid_events([event()], TOPIC)
    assert parsed["topic"] == TOPIC
    assert parsed["metadataVersion"] == "1"
    assert parse_eventgrid_events([event(topic=TOPIC.upper())], TOPIC)[0]["topic"] == TOPIC


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (event(), "Expected: StartArray, actual: StartObject"),
        ([event(subject=None)], "Required property 'subject' was not found"),
        ([event(dataVersion=None)], "Required property 'dataVersion' was not found"),
        ([{**event(), "specversion": "1.0"}], "Received unexpected property 'specversion'"),
        ([event(eventTime="yesterday")], "not a valid date-time"),
        ([event(topic="/subscriptions/x/other")], "does not match the topic"),
        ([event(metadataVersion="2")], "metadataVersion"),
        ([cloud()], "Received unexpected property"),
        (["text"], "must be an object"),
    ],
)
def test_malformed_event_grid_events_are_400s(payload: Any, fragment: str) -> None:
    with pytest.raises(PublishError) as caught:
        parse_eventgrid_events(payload, TOPIC)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_cloudevents_batches_and_single_events() -> None:
    assert parse_cloudevents([cloud(), cloud(id="2")], "application/cloudevents-batch+json; charset=utf-8")
    assert parse_cloudevents(cloud(), "application/cloudevents+json") == [cloud()]


@pytest.mark.parametrize(
    ("payload", "content_type", "fragment"),
    [
        ([event()], "application/json", "Required property 'source' was not found"),
        ([cloud(specversion="0.3")], "application/cloudevents-batch+json", "'specversion' value '0.3'"),
        ([cloud(time="soon")], "application/cloudevents-batch+json", "not a valid date-time"),
        ([cloud(data_base64="AA==")], "application/cloudevents-batch+json", "cannot both be set"),
        (cloud(), "application/cloudevents-batch+json", "expected an array"),
    ],
)
def test_malformed_cloudevents_are_400s(payload: Any, content_type: str, fragment: str) -> None:
    with pytest.raises(PublishError) as caught:
        parse_cloudevents(payload, content_type)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_publish_errors_have_event_grids_shape() -> None:
    response = PublishError(400, "BadRequest", "Bad thing.", "InputJsonInvalid").response()
    body = json.loads(bytes(response.body))
    assert response.status_code == 400
    assert body["error"]["code"] == "BadRequest"
    assert body["error"]["message"].startswith("Bad thing. Report '")
    assert body["error"]["details"][0]["code"] == "InputJsonInvalid"


def test_sas_tokens_as_azure_eventgrid_makes_them() -> None:
    key, other = new_key(), new_key()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    token = generate_sas(ENDPOINT, key, later)
    assert sas_valid(token, [other, key], ENDPOINT) is None
    assert sas_valid(token, [other], ENDPOINT) == "The SAS token signature is not valid."
    assert sas_valid(token, [key], ENDPOINT.replace("orders", "other")) is not None
    expired = generate_sas(ENDPOINT, key, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    assert sas_valid(expired, [key], ENDPOINT) == "The SAS token has expired."
    assert sas_valid("garbage", [key], ENDPOINT) == "The SAS token is malformed."


def test_a_sas_token_outside_ascii_is_a_signature_that_does_not_match() -> None:
    key = new_key()
    token = generate_sas(ENDPOINT, key, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    unsigned, _, signature = token.rpartition("&s=")
    # As a header arrives: each byte one character (latin-1), so UTF-8 bytes show as two characters.
    accented = "\u00e9".encode().decode("latin-1")
    for forged in (f"{unsigned}&s={signature}{accented}", f"{unsigned}&x={accented}&s={signature}"):
        assert sas_valid(forged, [key], ENDPOINT) == "The SAS token signature is not valid."
    assert sas_valid(f"{unsigned}&s=%C3%A9", [key], ENDPOINT) == "The SAS token signature is not valid."


def webhook(url: str = "https://hooks.example/api/events?code=secret", **properties: Any) -> dict[str, Any]:
    return {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url, **properties}}}


def test_subscription_defaults_are_azures() -> None:
    properties, url = parse_subscription(webhook(), TOPIC, EVENTGRID_SCHEMA)
    assert url == "https://hooks.example/api/events?code=secret"
    assert properties["destination"] == {
        "endpointType": "WebHook",
        "properties": {
            "endpointBaseUrl": "https://hooks.example/api/events",
            "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64,
        },
    }
    assert properties["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert properties["eventDeliverySchema"] == EVENTGRID_SCHEMA
    assert properties["filter"] == {
        "subjectBeginsWith": "",
        "subjectEndsWith": "",
        "isSubjectCaseSensitive": False,
    }
    assert properties["topic"] == TOPIC
    cloud_topic, _ = parse_subscription(webhook(), TOPIC, CLOUDEVENTS_SCHEMA)
    assert cloud_topic["eventDeliverySchema"] == CLOUDEVENTS_SCHEMA


@pytest.mark.parametrize(
    ("properties", "schema"),
    [
        ({}, EVENTGRID_SCHEMA),
        ({"destination": {"endpointType": "StorageQueue", "properties": {}}}, EVENTGRID_SCHEMA),
        (webhook("http://hooks.example/api"), EVENTGRID_SCHEMA),
        (webhook("ftp://hooks.example/api"), EVENTGRID_SCHEMA),
        (webhook(maxEventsPerBatch=0), EVENTGRID_SCHEMA),
        ({**webhook(), "retryPolicy": {"maxDeliveryAttempts": 31}}, EVENTGRID_SCHEMA),
        ({**webhook(), "eventDeliverySchema": "CustomInputSchema"}, EVENTGRID_SCHEMA),
        ({**webhook(), "eventDeliverySchema": EVENTGRID_SCHEMA}, CLOUDEVENTS_SCHEMA),
        ({**webhook(), "filter": {"advancedFilters": [{"operatorType": "BoolEquals"}]}}, EVENTGRID_SCHEMA),
        ({**webhook(), "expirationTimeUtc": "2001-01-01T00:00:00Z"}, EVENTGRID_SCHEMA),
        ({**webhook(), "expirationTimeUtc": "someday"}, EVENTGRID_SCHEMA),
        (
            {**webhook(), "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {}}},
            EVENTGRID_SCHEMA,
        ),
    ],
)
def test_invalid_subscriptions_are_400s(properties: dict[str, Any], schema: str) -> None:
    with pytest.raises(ArmError) as caught:
        parse_subscription(properties, TOPIC, schema)
    assert caught.value.status == 400


def test_loopback_webhooks_may_be_plain_http() -> None:
    for url in ("http://127.0.0.1:7071/runtime/webhooks/eventgrid", "http://localhost:7071/x"):
        assert parse_subscription(webhook(url), TOPIC, EVENTGRID_SCHEMA)[1] == url


def test_dead_letter_destinations() -> None:
    storage = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/st"
    destination = {
        "endpointType": "StorageBlob",
        "properties": {"resourceId": storage, "blobContainerName": "dead-letters"},
    }
    direct, _ = parse_subscription(
        {**webhook(), "deadLetterDestination": destination}, TOPIC, EVENTGRID_SCHEMA
    )
    assert direct["deadLetterDestination"] == destination
    with_identity, _ = parse_subscription(
        {**webhook(), "deadLetterWithResourceIdentity": {"deadLetterDestination": destination}},
        TOPIC,
        EVENTGRID_SCHEMA,
    )
    assert with_identity["deadLetterWithResourceIdentity"]["deadLetterDestination"] == destination
