"""Event Grid's webhook validation handshake, and the manual validation through a `validationUrl`.

A subscription is active only after its endpoint proves it wants the events: for the Event Grid
schema, a POSTed SubscriptionValidationEvent answered 200 with the code echoed (200 without the code
leaves it `AwaitingManualAction` until someone GETs the `validationUrl`, or the window closes); for
CloudEvents, an OPTIONS request answered 200 with the origin allowed in `WebHook-Allowed-Origin`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from ..config import EmulatorConfig
from ..timeutil import azure_time, now_iso
from .delivery import base_url
from .model import CLOUDEVENTS_SCHEMA, EventGridStore, Subscription, Validation
from .runtime import BackgroundTasks, FinishOperation, TaskKey, TaskKind, WebhookClient

log = logging.getLogger("devstack.eventgrid")

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
REQUEST_ORIGIN = "eventgrid.azure.net"


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


class WebhookValidator:
    """Runs each subscription's handshake in the background and records its outcome."""

    def __init__(
        self,
        config: EmulatorConfig,
        records: EventGridStore,
        client: WebhookClient,
        tasks: BackgroundTasks,
        finish_operation: FinishOperation,
    ) -> None:
        self.config = config
        self.records = records
        self.client = client
        self.tasks = tasks
        self.finish_operation = finish_operation

    def schedule(self, subscription_id: str, operation: str | None, needed: bool) -> None:
        self.tasks.cancel(TaskKey.of(TaskKind.EXPIRY, subscription_id))
        key = TaskKey.of(TaskKind.VALIDATION, subscription_id)
        self.tasks.spawn(key, self._validate(subscription_id, operation, needed))

    def resume(self, subscription: Subscription) -> None:
        """After a restart: finish a handshake under way, keep the manual window of one awaiting it."""
        if subscription.state in ("Creating", "Updating"):
            self.schedule(subscription.id, subscription.operation, needed=True)
        elif subscription.state == "AwaitingManualAction":
            self._spawn_expiry(subscription.id)

    def cancel(self, subscription_id: str) -> None:
        for kind in (TaskKind.VALIDATION, TaskKind.EXPIRY):
            self.tasks.cancel(TaskKey.of(kind, subscription_id))

    def validation_url(self, subscription: Subscription, code: str, token: str) -> str:
        name = quote(subscription.name, safe="")
        return (
            f"{self.config.arm_endpoint}/eventgrid/eventsubscriptions/{name}/validate"
            f"?id={code}&t={quote(now_iso(), safe='')}&apiVersion=2025-02-15&token={token}"
        )

    def _spawn_expiry(self, subscription_id: str) -> None:
        self.tasks.spawn(TaskKey.of(TaskKind.EXPIRY, subscription_id), self._expire_manual(subscription_id))

    async def _validate(self, subscription_id: str, operation: str | None, needed: bool) -> None:
        subscription = self.records.subscriptions.get(subscription_id)
        state, error = "Succeeded", None
        if subscription is not None and needed:
            url = subscription.endpoint_url
            if subscription.delivery_schema == CLOUDEVENTS_SCHEMA:
                state, error = await self._options_handshake(url)
            else:
                state, error = await self._post_handshake(subscription, url)
        current = self.records.subscriptions.get(subscription_id) if subscription is not None else None
        if current is None:
            if operation:
                self.finish_operation(operation, "Canceled")
            return
        current.state = state
        current.operation = None
        if state == "AwaitingManualAction":
            current.validation = current.validation or Validation()
            current.validation.expires = time.time() + self.config.eventgrid_validation_window_seconds
        self.records.subscriptions.put(current)
        self._report(current, operation, error)

    def _report(self, subscription: Subscription, operation: str | None, error: str | None) -> None:
        """Log a handshake's outcome and end the operation that waited for it."""
        name = subscription.name
        if subscription.state == "Failed":
            log.error("Event Grid: subscription %s failed validation: %s", name, error)
            if operation:
                self.finish_operation(operation, "Failed", {"code": "Url validation", "message": str(error)})
            return
        if subscription.state == "AwaitingManualAction":
            log.warning(
                "Event Grid: subscription %s awaits manual validation (GET the validationUrl within %gs)",
                name,
                self.config.eventgrid_validation_window_seconds,
            )
            self._spawn_expiry(subscription.id)
        else:
            log.info("Event Grid: subscription %s is validated and active", name)
        if operation:
            self.finish_operation(operation, "Succeeded")

    async def _post_handshake(self, subscription: Subscription, url: str) -> tuple[str, str | None]:
        code = str(uuid.uuid4()).upper()
        token = secrets.token_urlsafe(24)
        link = self.validation_url(subscription, code, token)
        current = self.records.subscriptions.get(subscription.id) or subscription
        current.validation = Validation(code=code, token=token, url=link)
        self.records.subscriptions.put(current)
        event = validation_event(str(subscription.properties.get("topic")), code, link)
        headers = {
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": subscription.name.upper(),
            "aeg-delivery-count": "0",
            "aeg-metadata-version": "1",
            "aeg-data-version": "1",
            "Content-Type": "application/json; charset=utf-8",
        }
        try:
            async with asyncio.timeout(self.client.timeout):
                response = await self.client.http.post(
                    url, content=json.dumps([event]).encode(), headers=headers
                )
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
            async with asyncio.timeout(self.client.timeout):
                response = await self.client.http.options(
                    url, headers={"WebHook-Request-Origin": REQUEST_ORIGIN}
                )
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
        subscription = self.records.subscriptions.get(subscription_id)
        if subscription is None:
            return
        expires = (subscription.validation.expires if subscription.validation else None) or 0.0
        await asyncio.sleep(max(0.0, float(expires) - time.time()))
        current = self.records.subscriptions.get(subscription_id)
        if current and current.state == "AwaitingManualAction":
            current.state = "Failed"
            current.validation = None
            self.records.subscriptions.put(current)
            log.error("Event Grid: subscription %s was not validated in time; Failed", current.name)

    def confirm_manual(self, code: str, token: str) -> Subscription | None:
        """A GET on a validationUrl: activates the subscription awaiting it."""
        for subscription in self.records.subscriptions.list():
            validation = subscription.validation or Validation()
            if (validation.code or "").lower() != code.lower():
                continue
            # As bytes: compare_digest refuses a str outside ASCII, and a query may hold any text.
            if not secrets.compare_digest(str(validation.token or "").encode(), token.encode()):
                return None
            if subscription.state != "AwaitingManualAction":
                return None
            subscription.state = "Succeeded"
            subscription.validation = None
            self.records.subscriptions.put(subscription)
            self.tasks.cancel(TaskKey.of(TaskKind.EXPIRY, subscription.id))
            log.info("Event Grid: subscription %s validated through its validationUrl", subscription.name)
            return subscription
        return None
