"""Event Grid's delivery loop: webhook delivery, retries with backoff, dead-lettering.

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
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..config import EmulatorConfig
from ..timeutil import now_iso
from .model import (
    CLOUDEVENTS_SCHEMA,
    EVENTGRID_SCHEMA,
    Delivery,
    EventGridStore,
    Json,
    Subscription,
)
from .runtime import BackgroundTasks, TaskKey, TaskKind, WebhookClient

log = logging.getLogger("devstack.eventgrid")

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


@dataclass
class Attempt:
    status: int | None
    timed_out: bool
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS


# The loop -----------------------------------------------------------------------------------
class DeliveryLoop:
    """Drives each pending delivery record to a success, a dead letter or a drop."""

    def __init__(
        self, config: EmulatorConfig, records: EventGridStore, client: WebhookClient, tasks: BackgroundTasks
    ) -> None:
        self.config = config
        self.records = records
        self.client = client
        self.tasks = tasks
        self._global = asyncio.Semaphore(max(1, config.eventgrid_max_concurrency))
        self._per_subscription: dict[str, asyncio.Semaphore] = {}
        self._blob_service: Any = None
        self._rng = random.Random()  # noqa: S311 (jitter)

    @property
    def timeout(self) -> float:
        return self.client.timeout

    def spawn(self, delivery_id: str) -> None:
        self.tasks.spawn(TaskKey.of(TaskKind.DELIVERY, delivery_id), self._drive(delivery_id))

    def forget(self, subscription_id: str) -> int:
        """Drop a deleted subscription's pending deliveries; how many there were."""
        dropped = 0
        for record in self.records.deliveries.list(subscription_id):
            self.records.delete(record.id)
            self.tasks.cancel(TaskKey.of(TaskKind.DELIVERY, record.id))
            dropped += 1
        self._per_subscription.pop(subscription_id.lower(), None)
        return dropped

    def _semaphore(self, subscription_id: str) -> asyncio.Semaphore:
        key = subscription_id.lower()
        if key not in self._per_subscription:
            limit = max(1, self.config.eventgrid_subscription_concurrency)
            self._per_subscription[key] = asyncio.Semaphore(limit)
        return self._per_subscription[key]

    async def _drive(self, key: str) -> None:
        while True:
            record = self.records.deliveries.get(key)
            if record is None:
                return
            subscription = self.records.subscriptions.get(record.subscription)
            if subscription is None:
                self.records.delete(key)
                log.warning("Event Grid: subscription of delivery %s is gone; dropped", key)
                return
            wait = record.nextAttempt - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # read the record and its subscription again: either may have changed
            if await self._attempt(subscription, record):
                return

    async def _attempt(self, subscription: Subscription, record: Delivery) -> bool:
        """One attempt at a due delivery; whether the record is done with (delivered, dead or dropped)."""
        retry: Json = dict(subscription.properties.get("retryPolicy") or {})
        ttl_minutes = float(retry.get("eventTimeToLiveInMinutes") or 1440)
        if time.time() - record.publishEpoch > ttl_minutes * self.config.eventgrid_ttl_minute_seconds:
            await self._dead_letter(subscription, record, "TimeToLiveExceeded")
            return True
        # The subscription's own slot first: a stuck endpoint must not hold global slots waiting.
        async with self._semaphore(subscription.id), self._global:
            attempt = await self._post(subscription, record, subscription.endpoint_url)
        record.attempts += 1
        record.lastDeliveryAttemptTime = now_iso()
        record.lastDeliveryOutcome = outcome_of(attempt.status, attempt.timed_out)
        record.lastHttpStatusCode = 408 if attempt.timed_out else attempt.status
        name = subscription.name
        if attempt.succeeded:
            self.records.delete(record.id)
            log.info(
                "Event Grid: delivered %d event(s) to %s (attempt %d, HTTP %s)",
                len(record.events),
                name,
                record.attempts,
                attempt.status,
            )
            return True
        detail = attempt.error or f"HTTP {attempt.status}"
        if attempt.status in NOT_RETRIED:
            log.warning("Event Grid: %s answered %s; not retried", name, detail)
            await self._dead_letter(subscription, record, not_retried_reason(int(attempt.status or 0)))
            return True
        if record.attempts >= int(retry.get("maxDeliveryAttempts") or 30):
            await self._dead_letter(subscription, record, "MaxDeliveryAttemptsExceeded")
            return True
        delay = backoff(
            record.attempts,
            self.config.eventgrid_retry_base_seconds,
            self.config.eventgrid_retry_max_seconds,
            self._rng,
        )
        record.nextAttempt = time.time() + delay
        self.records.deliveries.put(record)
        log.warning(
            "Event Grid: delivery to %s failed (%s), attempt %d; retrying in %.2fs",
            name,
            detail,
            record.attempts,
            delay,
        )
        return False

    async def _post(self, subscription: Subscription, record: Delivery, url: str) -> Attempt:
        events = record.events
        headers = delivery_headers(subscription.name, record.attempts, events, record.schema)
        headers.update(
            attribute_headers(subscription.destination.get("deliveryAttributeMappings"), events[0])
        )
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.http.post(
                    url, content=body_of(events, record.schema), headers=headers
                )
        except TimeoutError:
            return Attempt(None, True, f"no answer within {self.timeout:g}s")
        except httpx.TimeoutException:
            return Attempt(None, True, f"no answer within {self.timeout:g}s")
        except (httpx.HTTPError, OSError) as exc:
            return Attempt(None, False, f"{type(exc).__name__}: {exc}")
        return Attempt(response.status_code, False, None)

    async def _dead_letter(self, subscription: Subscription, record: Delivery, reason: str) -> None:
        container = subscription.dead_letter_container
        name = subscription.name
        if not container:
            self.records.delete(record.id)
            log.error(
                "Event Grid: DROPPED %d event(s) for %s (%s after %d attempt(s)); no dead-letter destination",
                len(record.events),
                name,
                reason,
                record.attempts,
            )
            return
        facts = {"deadLetterReason": reason, "deliveryAttempts": record.attempts}
        for key in DEAD_LETTER_FIELDS[2:]:
            facts[key] = getattr(record, key)
        events = [annotate_dead_letter(e, record.schema, facts) for e in record.events]
        blob = dead_letter_blob(
            str(subscription.properties.get("topic") or subscription.parent_id), name, dt.datetime.now(dt.UTC)
        )
        if not await self._write_dead_letters(container, blob, json.dumps(events).encode()):
            return  # kept for the next start
        self.records.delete(record.id)
        log.error(
            "Event Grid: DEAD-LETTERED %d event(s) for %s (%s after %d attempt(s)) to %s/%s",
            len(events),
            name,
            reason,
            record.attempts,
            container,
            blob,
        )

    async def _write_dead_letters(self, container: str, blob: str, payload: bytes) -> bool:
        for attempt in range(1, DEAD_LETTER_TRIES + 1):
            try:
                await asyncio.to_thread(self._write_blob, container, blob, payload)
                return True
            except Exception:
                # Azure keeps trying a dead-letter destination for hours; devstack a few times, then
                # keeps the record for the next start.
                log.exception("Event Grid: dead-lettering to %s/%s failed (try %d)", container, blob, attempt)
                if attempt == DEAD_LETTER_TRIES:
                    return False
                await asyncio.sleep(self.config.eventgrid_retry_max_seconds)
        return False

    def _write_blob(self, container: str, blob: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        if self._blob_service is None:
            self._blob_service = BlobServiceClient.from_connection_string(
                self.config.storage_connection_string
            )
        client = self._blob_service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()
            log.warning("Event Grid: created dead-letter container %s in Azurite", container)
        client.upload_blob(blob, data, overwrite=True)
