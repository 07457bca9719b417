"""Event Grid's data plane: what azure-eventgrid's EventGridPublisherClient posts to a custom topic.

The request is authorized first (`aeg-sas-key`, `aeg-sas-token`/`SharedAccessSignature`, or an
Entra token for https://eventgrid.azure.net; keys refused when local auth is disabled; 403 when
public network access is), then its body is read against the topic's input schema. Errors have the
data plane's shape, not ARM's.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import jwt
from starlette.responses import JSONResponse

from .model import CLOUDEVENTS_SCHEMA, Json, Topic

log = logging.getLogger("devstack.eventgrid")

PUBLISH_VERSIONS = {"2018-01-01"}
EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
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

TokenDecoder = Callable[[str], dict[str, Any]]  # checks a bearer token's signature and expiry


def audience(value: str) -> str:
    return value.rstrip("/").removesuffix("/.default").lower()


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
    # generate_sas percent-encodes what it signs, so a token is ASCII; whether Event Grid verifies a token
    # outside ASCII over some encoding of it is not known: refused as a signature that does not match.
    if not unsigned.isascii():
        return "The SAS token signature is not valid."
    presented = unquote(signature).encode()  # as bytes: compare_digest refuses a str outside ASCII
    for key in keys:
        digest = hmac.new(base64.b64decode(key), unsigned.encode("ascii"), hashlib.sha256).digest()
        if hmac.compare_digest(base64.b64encode(digest), presented):
            return None
    return "The SAS token signature is not valid."


def unauthorized(message: str) -> PublishError:
    return PublishError(401, "Unauthorized", message)


def check_version(version: str | None) -> None:
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


def check_keys(topic: Topic, key: str | None, sas: str | None, endpoint: str) -> None:
    """An `aeg-sas-key` or a SAS token against the topic's two keys."""
    name = topic.name.upper()
    if topic.properties.get("disableLocalAuth"):
        raise unauthorized(
            f"The request authorization key is not authorized for {name}. This is due to the reason: "
            "local authentication (key and SAS) is disabled for this topic; use a Microsoft "
            "Entra token."
        )
    keys = topic.keys or []
    if key is not None:
        if not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            raise unauthorized(
                f"The request authorization key is not authorized for {name}. This is due to the "
                "reason: The key is not valid."
            )
        return
    problem = sas_valid(str(sas), keys, endpoint)
    if problem:
        raise unauthorized(
            f"The request authorization token is not authorized for {name}. This is due to the "
            f"reason: {problem}"
        )


def check_bearer(topic: Topic, authorization: str, decode: TokenDecoder) -> None:
    """An Entra token whose audience is Event Grid."""
    name = topic.name.upper()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized(
            f"The request to {name} has no credentials: send aeg-sas-key, aeg-sas-token or a bearer token."
        )
    try:
        claims = decode(token.strip())
    except jwt.PyJWTError as exc:
        raise unauthorized(f"The bearer token for {name} is not valid: {exc}.") from exc
    if audience(str(claims.get("aud", ""))) != audience(EVENTGRID_AUDIENCE):
        raise unauthorized(
            f"The bearer token for {name} has the audience '{claims.get('aud')}'; it must be "
            f"'{EVENTGRID_AUDIENCE}'."
        )


def authorize(
    topic: Topic, version: str | None, headers: Mapping[str, str], endpoint: str, decode: TokenDecoder
) -> None:
    """Everything checked before the body is read: api-version, credentials, network access."""
    check_version(version)
    key = headers.get("aeg-sas-key")
    authorization = headers.get("authorization", "")
    sas = headers.get("aeg-sas-token")
    if authorization[:22].lower() == "sharedaccesssignature ":
        sas = authorization[22:].strip()
    if key is not None or sas is not None:
        check_keys(topic, key, sas, endpoint)
    else:
        check_bearer(topic, authorization, decode)
    if topic.properties.get("publicNetworkAccess") == "Disabled":
        raise PublishError(403, "Forbidden", f"Public network access is disabled for {topic.name.upper()}.")


def read_events(topic: Topic, raw: bytes, content_type: str) -> list[Json]:
    """The events of a publish request's body, in the topic's input schema."""
    if len(raw) > MAX_PUBLISH_BYTES:
        raise PublishError(
            413, "RequestEntityTooLarge", f"The maximum size ({MAX_PUBLISH_BYTES}) has been exceeded."
        )
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_input(f"The request body is not valid JSON: {exc}.") from exc
    if topic.input_schema == CLOUDEVENTS_SCHEMA:
        return parse_cloudevents(payload, content_type)
    return parse_eventgrid_events(payload, topic.id)
