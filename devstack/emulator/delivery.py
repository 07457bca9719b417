"""Event Grid's delivery engine: fan-out, filters, webhook delivery, retries, dead-lettering.

Every accepted event becomes one persisted delivery record per matching subscription (a batch
when the subscription batches), written to the store before the publisher gets its 200, so a
restart resumes what was pending. Each record is driven by its own task; a global and a
per-subscription semaphore bound the concurrent HTTP requests, so an endpoint that never answers
ties up only its own subscription's slots until the delivery timeout.

Retries follow Azure's rules on a compressed schedule: success is 200-204; 400, 401, 403 and 413
are not retried (dead-letter at once); anything else, a timeout or a connection error backs off
exponentially (configurable base, doubling, jitter, cap) until `maxDeliveryAttempts` or the
event's time to live runs out. Dead letters go to the subscription's blob container in Azurite,
named as Azure names them; without a dead-letter destination the event is dropped, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .timeutil import now_iso

if TYPE_CHECKING:
    from .service import Emulator

log = logging.getLogger("devstack.eventgrid")

KIND_SYSTEM_TOPIC = "egsystemtopic"
KIND_TOPIC = "egtopic"
KIND_SUBSCRIPTION = "egsubscription"
KIND_DELIVERY = "egdelivery"
KIND_SEEN = "egseen"  # registry notification ids already turned into events
KIND_MANIFEST = "egmanifest"  # media types of pushed manifests, for the delete events

EVENTGRID_SCHEMA = "EventGridSchema"
CLOUDEVENTS_SCHEMA = "CloudEventSchemaV1_0"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
REQUEST_ORIGIN = "eventgrid.azure.net"
SUCCESS = frozenset({200, 201, 202, 203, 204})
NOT_RETRIED = frozenset({400, 401, 403, 413})  # webhook errors Event Grid does not retry
OUTCOMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "TimedOut",
    413: "RequestEntityTooLarge",
    429: "Busy",
    503: "Busy",
}
DEAD_LETTER_TRIES = 5
DEAD_LETTER_FIELDS = (
    "deadLetterReason",
    "deliveryAttempts",
    "lastDeliveryOutcome",
    "lastHttpStatusCode",
    "publishTime",
    "lastDeliveryAttemptTime",
)


# Pure helpers ---------------------------------------------------------------------------------
def azure_time(moment: dt.datetime | None = None) -> str:
    """ISO 8601 in UTC with seven fractional digits, as Event Grid stamps events."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def base_url(url: str) -> str:
    """The endpoint without its query string: what Event Grid shows as `endpointBaseUrl`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def type_and_subject(event: dict[str, Any], schema: str) -> tuple[str, str]:
    if schema == CLOUDEVENTS_SCHEMA:
        return str(event.get("type", "")), str(event.get("subject") or "")
    return str(event.get("eventType", "")), str(event.get("subject") or "")


def matches(filter_: dict[str, Any] | None, event_type: str, subject: str) -> bool:
    """Event Grid's basic filter: included event types, subject prefix and suffix."""
    filter_ = filter_ or {}
    included = filter_.get("includedEventTypes")
    if included and event_type.lower() not in {str(t).lower() for t in included}:
        return False
    begins = str(filter_.get("subjectBeginsWith") or "")
    ends = str(filter_.get("subjectEndsWith") or "")
    if not filter_.get("isSubjectCaseSensitive"):
        subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
    return subject.startswith(begins) and subject.endswith(ends)


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event as Event Grid delivers it in CloudEvents 1.0."""
    cloud: dict[str, Any] = {
        "id": event["id"],
        "source": event.get("topic", ""),
        "specversion": "1.0",
        "type": event["eventType"],
        "subject": event.get("subject", ""),
        "time": event.get("eventTime"),
        "data": event.get("data"),
    }
    return {k: v for k, v in cloud.items() if v is not None}


def for_delivery(event: dict[str, Any], input_schema: str, delivery_schema: str) -> dict[str, Any]:
    if input_schema == delivery_schema:
        return dict(event)
    if input_schema == EVENTGRID_SCHEMA and delivery_schema == CLOUDEVENTS_SCHEMA:
        return to_cloudevent(event)
    raise ValueError(f"cannot deliver {input_schema} events as {delivery_schema}")


def batches(events: list[dict[str, Any]], max_events: int, preferred_kb: int) -> list[list[dict[str, Any]]]:
    """Group events for one subscription: at most `max_events`, about `preferred_kb` each."""
    limit = max(1, preferred_kb) * 1024
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for event in events:
        length = len(json.dumps(event))
        if groups and len(groups[-1]) < max_events and size + length <= limit:
            groups[-1].append(event)
            size += length
        else:
            groups.append([event])
            size = length
    return groups


def backoff(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after `attempts` failed ones: doubling, jittered, capped."""
    rng = rng or random.Random()  # noqa: S311 (jitter, not security)
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return float(min(cap, delay * rng.uniform(1.0, 1.25)))


def outcome_of(status: int | None, timed_out: bool = False) -> str:
    if timed_out:
        return "TimedOut"
    if status is None:
        return "GenericError"
    if status in SUCCESS:
        return "Succeeded"
    return OUTCOMES.get(status, "GenericError")


def not_retried_reason(status: int) -> str:
    """The dead-letter reason for an error Event Grid does not retry."""
    return "UndeliverableDueToHttp" + OUTCOMES.get(status, "ClientError")


def dead_letter_blob(topic_id: str, subscription_name: str, moment: dt.datetime) -> str:
    """`TOPIC/SUBSCRIPTION/yyyy/m/d/h/guid.json`: names upper-cased, date parts not zero-padded."""
    moment = moment.astimezone(dt.UTC)
    topic = topic_id.rstrip("/").rsplit("/", 1)[-1].upper()
    return (
        f"{topic}/{subscription_name.upper()}/{moment.year}/{moment.month}/{moment.day}/"
        f"{moment.hour}/{uuid.uuid4()}.json"
    )


def annotate_dead_letter(event: dict[str, Any], schema: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The event as delivered plus Event Grid's dead-letter properties (lower-case for CloudEvents)."""
    annotated = dict(event)
    for key in DEAD_LETTER_FIELDS:
        if facts.get(key) is not None:
            annotated[key.lower() if schema == CLOUDEVENTS_SCHEMA else key] = facts[key]
    return annotated


def expired(expiration: Any, now: dt.datetime | None = None) -> bool:
    """Whether an `expirationTimeUtc` has passed (an unreadable one never expires)."""
    if not isinstance(expiration, str) or not expiration:
        return False
    try:
        moment = dt.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment <= (now or dt.datetime.now(dt.UTC))


def json_path(event: dict[str, Any], path: str) -> Any:
    """A dotted path (`data.target.repository`) into an event; None when absent."""
    current: Any = event
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def delivery_headers(
    subscription_name: str, delivery_count: int, events: list[dict[str, Any]], schema: str
) -> dict[str, str]:
    first = events[0]
    headers = {
        "aeg-event-type": "Notification",
        "aeg-subscription-name": subscription_name.upper(),
        "aeg-delivery-count": str(delivery_count),
    }
    if schema == CLOUDEVENTS_SCHEMA:
        headers["aeg-metadata-version"] = str(first.get("specversion", "1.0"))
        headers["Content-Type"] = (
            "application/cloudevents+json; charset=utf-8"
            if len(events) == 1
            else "application/cloudevents-batch+json; charset=utf-8"
        )
    else:
        headers["aeg-metadata-version"] = str(first.get("metadataVersion", "1"))
        headers["aeg-data-version"] = str(first.get("dataVersion", ""))
        headers["Content-Type"] = "application/json; charset=utf-8"
    if len(events) == 1:
        headers["aeg-output-event-id"] = str(first.get("id", ""))
    return headers


def attribute_headers(mappings: list[dict[str, Any]] | None, event: dict[str, Any]) -> dict[str, str]:
    """Custom delivery properties: static values and dotted-path dynamic ones."""
    headers: dict[str, str] = {}
    for mapping in mappings or []:
        name = str(mapping.get("name") or "")
        properties = mapping.get("properties") or {}
        if not name:
            continue
        if mapping.get("type") == "Static":
            headers[name] = str(properties.get("value", ""))
        elif mapping.get("type") == "Dynamic":
            value = json_path(event, str(properties.get("sourceField") or ""))
            if isinstance(value, str | int | float | bool):
                headers[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return headers


def body_of(events: list[dict[str, Any]], schema: str) -> bytes:
    payload: Any = events[0] if schema == CLOUDEVENTS_SCHEMA and len(events) == 1 else events
    return json.dumps(payload).encode()


def validation_event(topic_id: str, code: str, url: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": topic_id,
        "subject": "",
        "data": {"validationCode": code, "validationUrl": url},
        "eventType": VALIDATION_EVENT,
        "eventTime": azure_time(),
        "metadataVersion": "1",
        "dataVersion": "1",
    }


def handshake_failure(endpoint: str, detail: str) -> str:
    stamp = dt.datetime.now(dt.UTC)
    when = f"{stamp.month}/{stamp.day}/{stamp.year} {stamp.strftime('%I:%M:%S %p').lstrip('0')}"
    return (
        f"Webhook validation handshake failed for {base_url(endpoint)}. {detail} For troublehooting, "
        f"visit https://aka.ms/esvalidation. Activity id:{uuid.uuid4()}, timestamp: {when} (UTC)."
    )


def echoed_code(body: bytes) -> str | None:
    """`validationResponse` from a handshake answer (any casing of the key), if there is one."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if not isinstance(parsed, dict):
        return None
    for key, value in parsed.items():
        if key.lower() == "validationresponse" and isinstance(value, str):
            return value
    return None


def parent_of(resource_id: str, levels: int = 2) -> str:
    return resource_id.rsplit("/", levels)[0]


@dataclass
class Attempt:
    status: int | None
    timed_out: bool
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS


# The engine ---------------------------------------------------------------------------------
class EventGridEngine:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        config = emu.config
        self.timeout = config.eventgrid_delivery_timeout_seconds
        self._global = asyncio.Semaphore(max(1, config.eventgrid_max_concurrency))
        self._per_subscription: dict[str, asyncio.Semaphore] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._http: httpx.AsyncClient | None = None
        self._blob_service: Any = None
        self._started = False
        self._rng = random.Random()  # noqa: S311 (jitter)

    # Life cycle -------------------------------------------------------------------------------
    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            context = ssl.create_default_context()
            ca = self.emu.config.ca_cert
            if ca.exists():
                context.load_verify_locations(cafile=str(ca))
            connections = self.emu.config.eventgrid_max_concurrency + 16
            self._http = httpx.AsyncClient(
                verify=context,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=16),
            )
        return self._http

    async def start(self) -> None:
        # Listing and the started flag in one synchronous step: a publish after this spawns its own.
        self._started = True
        pending = self.store.list(KIND_DELIVERY)
        for record in pending:
            self._spawn_delivery(record["id"])
        if pending:
            log.warning("resuming %d pending Event Grid deliveries after a restart", len(pending))
        for subscription in self.store.list(KIND_SUBSCRIPTION):
            state = subscription["properties"]["provisioningState"]
            if state in ("Creating", "Updating"):
                operation = subscription.get("_operation")
                self.schedule_validation(subscription["id"], operation, needed=True)
            elif state == "AwaitingManualAction":
                self._spawn(f"expire:{subscription['id'].lower()}", self._expire_manual(subscription["id"]))

    async def stop(self) -> None:
        self._started = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _spawn(self, key: str, coroutine: Any) -> None:
        previous = self._tasks.get(key)
        if previous is not None and not previous.done():
            previous.cancel()
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is finished:
                del self._tasks[key]
            if not finished.cancelled() and finished.exception() is not None:
                log.error("Event Grid task %s crashed", key, exc_info=finished.exception())

        task.add_done_callback(done)

    # Publishing ---------------------------------------------------------------------------------
    def publish(self, topic_id: str, events: list[dict[str, Any]], input_schema: str) -> int:
        """Fan `events` out to the topic's subscriptions; persisted before this returns."""
        published = 0
        now = time.time()
        stamp = now_iso()
        for subscription in self.store.list(KIND_SUBSCRIPTION, topic_id):
            properties = subscription["properties"]
            name = subscription["name"]
            if properties["provisioningState"] != "Succeeded":
                log.warning(
                    "Event Grid: subscription %s is %s; %d event(s) not delivered to it",
                    name,
                    properties["provisioningState"],
                    len(events),
                )
                continue
            if expired(properties.get("expirationTimeUtc")):
                # Azure deletes an event subscription when it expires.
                log.warning(
                    "Event Grid: subscription %s expired at %s; deleted",
                    name,
                    properties["expirationTimeUtc"],
                )
                self.cancel_subscription(subscription["id"])
                self.store.delete(subscription["id"])
                continue
            schema = properties.get("eventDeliverySchema") or EVENTGRID_SCHEMA
            selected = [
                for_delivery(event, input_schema, schema)
                for event in events
                if matches(properties.get("filter"), *type_and_subject(event, input_schema))
            ]
            if not selected:
                continue
            destination = properties["destination"]["properties"]
            groups = batches(
                selected,
                int(destination.get("maxEventsPerBatch") or 1),
                int(destination.get("preferredBatchSizeInKilobytes") or 64),
            )
            for group in groups:
                key = f"{subscription['id']}/deliveries/{uuid.uuid4()}"
                record = {
                    "id": key,
                    "subscription": subscription["id"],
                    "schema": schema,
                    "events": group,
                    "attempts": 0,
                    "publishTime": stamp,
                    "publishEpoch": now,
                    "nextAttempt": now,
                }
                self.store.put(KIND_DELIVERY, key, subscription["id"], record)
                published += 1
                log.info(
                    "Event Grid: %d event(s) (%s) queued for subscription %s",
                    len(group),
                    ", ".join(type_and_subject(e, schema)[0] for e in group),
                    name,
                )
                if self._started:
                    self._spawn_delivery(key)
        return published

    def _spawn_delivery(self, key: str) -> None:
        self._spawn(key.lower(), self._drive(key))

    def _semaphore(self, subscription_id: str) -> asyncio.Semaphore:
        key = subscription_id.lower()
        if key not in self._per_subscription:
            limit = max(1, self.emu.config.eventgrid_subscription_concurrency)
            self._per_subscription[key] = asyncio.Semaphore(limit)
        return self._per_subscription[key]

    async def _drive(self, key: str) -> None:
        config = self.emu.config
        while True:
            record = self.store.get(KIND_DELIVERY, key)
            if record is None:
                return
            subscription = self.store.get(KIND_SUBSCRIPTION, record["subscription"])
            if subscription is None:
                self.store.delete(key)
                log.warning("Event Grid: subscription of delivery %s is gone; dropped", key)
                return
            wait = float(record["nextAttempt"]) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # read the record and its subscription again: either may have changed
            properties = subscription["properties"]
            retry = properties.get("retryPolicy") or {}
            ttl = float(retry.get("eventTimeToLiveInMinutes") or 1440) * config.eventgrid_ttl_minute_seconds
            if time.time() - float(record["publishEpoch"]) > ttl:
                await self._dead_letter(subscription, record, "TimeToLiveExceeded")
                return
            url = str(subscription.get("_endpointUrl") or "")
            # The subscription's own slot first: a stuck endpoint must not hold global slots waiting.
            async with self._semaphore(subscription["id"]), self._global:
                attempt = await self._post(subscription, record, url)
            record["attempts"] += 1
            record["lastDeliveryAttemptTime"] = now_iso()
            record["lastDeliveryOutcome"] = outcome_of(attempt.status, attempt.timed_out)
            record["lastHttpStatusCode"] = 408 if attempt.timed_out else attempt.status
            name = subscription["name"]
            if attempt.succeeded:
                self.store.delete(key)
                log.info(
                    "Event Grid: delivered %d event(s) to %s (attempt %d, HTTP %s)",
                    len(record["events"]),
                    name,
                    record["attempts"],
                    attempt.status,
                )
                return
            detail = attempt.error or f"HTTP {attempt.status}"
            if attempt.status in NOT_RETRIED:
                log.warning("Event Grid: %s answered %s; not retried", name, detail)
                await self._dead_letter(subscription, record, not_retried_reason(int(attempt.status or 0)))
                return
            if record["attempts"] >= int(retry.get("maxDeliveryAttempts") or 30):
                await self._dead_letter(subscription, record, "MaxDeliveryAttemptsExceeded")
                return
            delay = backoff(
                record["attempts"],
                config.eventgrid_retry_base_seconds,
                config.eventgrid_retry_max_seconds,
                self._rng,
            )
            record["nextAttempt"] = time.time() + delay
            self.store.put(KIND_DELIVERY, key, subscription["id"], record)
            log.warning(
                "Event Grid: delivery to %s failed (%s), attempt %d; retrying in %.2fs",
                name,
                detail,
                record["attempts"],
                delay,
            )

    async def _post(self, subscription: dict[str, Any], record: dict[str, Any], url: str) -> Attempt:
        schema = record["schema"]
        events = record["events"]
        headers = delivery_headers(subscription["name"], record["attempts"], events, schema)
        mappings = subscription["properties"]["destination"]["properties"].get("deliveryAttributeMappings")
        headers.update(attribute_headers(mappings, events[0]))
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.post(url, content=body_of(events, schema), headers=headers)
        except TimeoutError:
            return Attempt(None, True, f"no answer within {self.timeout:g}s")
        except httpx.TimeoutException:
            return Attempt(None, True, f"no answer within {self.timeout:g}s")
        except (httpx.HTTPError, OSError) as exc:
            return Attempt(None, False, f"{type(exc).__name__}: {exc}")
        return Attempt(response.status_code, False, None)

    async def _dead_letter(self, subscription: dict[str, Any], record: dict[str, Any], reason: str) -> None:
        key = record["id"]
        properties = subscription["properties"]
        destination = properties.get("deadLetterDestination") or (
            (properties.get("deadLetterWithResourceIdentity") or {}).get("deadLetterDestination")
        )
        container = ((destination or {}).get("properties") or {}).get("blobContainerName")
        facts = {
            "deadLetterReason": reason,
            "deliveryAttempts": record["attempts"],
            "lastDeliveryOutcome": record.get("lastDeliveryOutcome"),
            "lastHttpStatusCode": record.get("lastHttpStatusCode"),
            "publishTime": record["publishTime"],
            "lastDeliveryAttemptTime": record.get("lastDeliveryAttemptTime"),
        }
        name = subscription["name"]
        if not container:
            self.store.delete(key)
            log.error(
                "Event Grid: DROPPED %d event(s) for %s (%s after %d attempt(s)); no dead-letter destination",
                len(record["events"]),
                name,
                reason,
                record["attempts"],
            )
            return
        events = [annotate_dead_letter(e, record["schema"], facts) for e in record["events"]]
        blob = dead_letter_blob(properties["topic"], name, dt.datetime.now(dt.UTC))
        payload = json.dumps(events).encode()
        for attempt in range(1, DEAD_LETTER_TRIES + 1):
            try:
                await asyncio.to_thread(self._write_blob, str(container), blob, payload)
                break
            except Exception:
                # Azure keeps trying a dead-letter destination for hours; devstack a few times, then
                # keeps the record for the next start.
                log.exception("Event Grid: dead-lettering to %s/%s failed (try %d)", container, blob, attempt)
                if attempt == DEAD_LETTER_TRIES:
                    return
                await asyncio.sleep(self.emu.config.eventgrid_retry_max_seconds)
        self.store.delete(key)
        log.error(
            "Event Grid: DEAD-LETTERED %d event(s) for %s (%s after %d attempt(s)) to %s/%s",
            len(events),
            name,
            reason,
            record["attempts"],
            container,
            blob,
        )

    def _write_blob(self, container: str, blob: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        if self._blob_service is None:
            self._blob_service = BlobServiceClient.from_connection_string(
                self.emu.config.storage_connection_string
            )
        client = self._blob_service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
            log.warning("Event Grid: created dead-letter container %s in Azurite", container)
        client.upload_blob(blob, data, overwrite=True)

    # Subscriptions --------------------------------------------------------------------------------
    def cancel_subscription(self, subscription_id: str) -> int:
        """Forget a deleted subscription's pending deliveries and validation."""
        dropped = 0
        for record in self.store.list(KIND_DELIVERY, subscription_id):
            self.store.delete(record["id"])
            task = self._tasks.pop(record["id"].lower(), None)
            if task is not None:
                task.cancel()
            dropped += 1
        for prefix in ("validate:", "expire:"):
            task = self._tasks.pop(f"{prefix}{subscription_id.lower()}", None)
            if task is not None:
                task.cancel()
        self._per_subscription.pop(subscription_id.lower(), None)
        if dropped:
            log.warning(
                "Event Grid: %d pending delivery(ies) dropped with subscription %s", dropped, subscription_id
            )
        return dropped

    def schedule_validation(self, subscription_id: str, operation: str | None, needed: bool) -> None:
        expiry = self._tasks.pop(f"expire:{subscription_id.lower()}", None)
        if expiry is not None:
            expiry.cancel()
        self._spawn(f"validate:{subscription_id.lower()}", self._validate(subscription_id, operation, needed))

    def validation_url(self, subscription: dict[str, Any], code: str, token: str) -> str:
        name = quote(subscription["name"], safe="")
        return (
            f"{self.emu.config.arm_endpoint}/eventgrid/eventsubscriptions/{name}/validate"
            f"?id={code}&t={quote(now_iso(), safe='')}&apiVersion=2025-02-15&token={token}"
        )

    async def _validate(self, subscription_id: str, operation: str | None, needed: bool) -> None:
        subscription = self.store.get(KIND_SUBSCRIPTION, subscription_id)
        if subscription is None:
            if operation:
                self.emu.finish_operation(operation, "Canceled")
            return
        url = str(subscription.get("_endpointUrl") or "")
        name = subscription["name"]
        schema = subscription["properties"].get("eventDeliverySchema") or EVENTGRID_SCHEMA
        state, error = "Succeeded", None
        if needed:
            if schema == CLOUDEVENTS_SCHEMA:
                state, error = await self._options_handshake(url)
            else:
                state, error = await self._post_handshake(subscription, url)
        current = self.store.get(KIND_SUBSCRIPTION, subscription_id)
        if current is None:
            if operation:
                self.emu.finish_operation(operation, "Canceled")
            return
        current["properties"]["provisioningState"] = state
        current.pop("_operation", None)
        if state == "AwaitingManualAction":
            current.setdefault("_validation", {})["expires"] = (
                time.time() + self.emu.config.eventgrid_validation_window_seconds
            )
        self.store.put(KIND_SUBSCRIPTION, subscription_id, parent_of(subscription_id), current)
        if state == "Failed":
            log.error("Event Grid: subscription %s failed validation: %s", name, error)
            if operation:
                self.emu.finish_operation(
                    operation, "Failed", {"code": "Url validation", "message": str(error)}
                )
            return
        if state == "AwaitingManualAction":
            log.warning(
                "Event Grid: subscription %s awaits manual validation (GET the validationUrl within %gs)",
                name,
                self.emu.config.eventgrid_validation_window_seconds,
            )
            self._spawn(f"expire:{subscription_id.lower()}", self._expire_manual(subscription_id))
        else:
            log.info("Event Grid: subscription %s is validated and active", name)
        if operation:
            self.emu.finish_operation(operation, "Succeeded")

    async def _post_handshake(self, subscription: dict[str, Any], url: str) -> tuple[str, str | None]:
        code = str(uuid.uuid4()).upper()
        token = secrets.token_urlsafe(24)
        link = self.validation_url(subscription, code, token)
        current = self.store.get(KIND_SUBSCRIPTION, subscription["id"]) or subscription
        current["_validation"] = {"code": code, "token": token, "url": link}
        self.store.put(KIND_SUBSCRIPTION, subscription["id"], parent_of(subscription["id"]), current)
        event = validation_event(subscription["properties"]["topic"], code, link)
        headers = {
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": subscription["name"].upper(),
            "aeg-delivery-count": "0",
            "aeg-metadata-version": "1",
            "aeg-data-version": "1",
            "Content-Type": "application/json; charset=utf-8",
        }
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.post(url, content=json.dumps([event]).encode(), headers=headers)
        except (TimeoutError, httpx.HTTPError, OSError):
            return "Failed", handshake_failure(url, "Http POST request failed with response code Unknown.")
        if response.status_code != 200:
            return "Failed", handshake_failure(
                url, f"Http POST request failed with response code {response.status_code}."
            )
        echoed = echoed_code(response.content)
        if echoed is None:
            return "AwaitingManualAction", None
        if echoed.lower() != code.lower():
            return "Failed", handshake_failure(
                url, "Http POST request returned 200 with a validationResponse that does not match."
            )
        return "Succeeded", None

    async def _options_handshake(self, url: str) -> tuple[str, str | None]:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.options(url, headers={"WebHook-Request-Origin": REQUEST_ORIGIN})
        except (TimeoutError, httpx.HTTPError, OSError):
            return "Failed", handshake_failure(url, "Http OPTIONS request failed with response code Unknown.")
        if response.status_code != 200:
            return "Failed", handshake_failure(
                url, f"Http OPTIONS request failed with response code {response.status_code}."
            )
        allowed = {o.strip().lower() for o in response.headers.get("webhook-allowed-origin", "").split(",")}
        if REQUEST_ORIGIN not in allowed and "*" not in allowed:
            return "Failed", handshake_failure(
                url, "Http OPTIONS response did not allow the origin in WebHook-Allowed-Origin."
            )
        return "Succeeded", None

    async def _expire_manual(self, subscription_id: str) -> None:
        subscription = self.store.get(KIND_SUBSCRIPTION, subscription_id)
        if subscription is None:
            return
        expires = float((subscription.get("_validation") or {}).get("expires") or 0)
        await asyncio.sleep(max(0.0, expires - time.time()))
        current = self.store.get(KIND_SUBSCRIPTION, subscription_id)
        if current and current["properties"]["provisioningState"] == "AwaitingManualAction":
            current["properties"]["provisioningState"] = "Failed"
            current.pop("_validation", None)
            self.store.put(KIND_SUBSCRIPTION, subscription_id, parent_of(subscription_id), current)
            log.error("Event Grid: subscription %s was not validated in time; Failed", current["name"])

    def confirm_manual(self, code: str, token: str) -> dict[str, Any] | None:
        """A GET on a validationUrl: activates the subscription awaiting it."""
        for subscription in self.store.list(KIND_SUBSCRIPTION):
            validation = subscription.get("_validation") or {}
            if validation.get("code", "").lower() != code.lower():
                continue
            if not secrets.compare_digest(str(validation.get("token", "")), token):
                return None
            if subscription["properties"]["provisioningState"] != "AwaitingManualAction":
                return None
            subscription["properties"]["provisioningState"] = "Succeeded"
            subscription.pop("_validation", None)
            self.store.put(KIND_SUBSCRIPTION, subscription["id"], parent_of(subscription["id"]), subscription)
            task = self._tasks.pop(f"expire:{subscription['id'].lower()}", None)
            if task is not None:
                task.cancel()
            log.info("Event Grid: subscription %s validated through its validationUrl", subscription["name"])
            return subscription
        return None

    # Removal with their sources ------------------------------------------------------------------
    def delete_topic(self, topic: dict[str, Any]) -> None:
        for subscription in self.store.list(KIND_SUBSCRIPTION, topic["id"]):
            self.cancel_subscription(subscription["id"])
            self.store.delete(subscription["id"])
        self.store.delete(topic["id"])
        log.info("Event Grid: %s %s deleted", topic["type"], topic["name"])

    def registry_deleted(self, registry_id: str) -> None:
        for topic in self.store.list(KIND_SYSTEM_TOPIC):
            if str(topic["properties"].get("source", "")).lower() == registry_id.lower():
                self.delete_topic(topic)
        for record in self.store.list(KIND_MANIFEST, registry_id):
            self.store.delete(record["key"])

    def group_deleted(self, group_id: str) -> None:
        for kind in (KIND_SYSTEM_TOPIC, KIND_TOPIC):
            for topic in self.store.list(kind, group_id):
                self.delete_topic(topic)
