"""Event Grid's model in motion: which subscriptions get an event, and what goes with a topic.

The engine fans published events out to the subscriptions that want them (active, not expired,
matching their filter) as persisted delivery records, and hands those to the delivery loop and new
or changed subscriptions to the validator. It knows the emulator only through what it is given: its
settings, its store and the function that ends an ARM operation.
"""

from __future__ import annotations

import logging
import time
import uuid

from ..config import EmulatorConfig
from ..store import Store
from ..timeutil import now_iso
from .delivery import DeliveryLoop, batches, expired, for_delivery, matches, type_and_subject
from .filters import matches_advanced
from .model import (
    KIND_MANIFEST,
    KIND_SYSTEM_TOPIC,
    KIND_TOPIC,
    Delivery,
    EventGridStore,
    Json,
    Subscription,
    Topic,
)
from .runtime import BackgroundTasks, FinishOperation, WebhookClient
from .validation import WebhookValidator

log = logging.getLogger("devstack.eventgrid")


class EventGridEngine:
    def __init__(self, config: EmulatorConfig, store: Store, finish_operation: FinishOperation) -> None:
        self.records = EventGridStore(store)
        self.tasks = BackgroundTasks()
        self.client = WebhookClient(
            config.ca_cert, config.eventgrid_delivery_timeout_seconds, config.eventgrid_max_concurrency
        )
        self.deliveries = DeliveryLoop(config, self.records, self.client, self.tasks)
        self.validator = WebhookValidator(config, self.records, self.client, self.tasks, finish_operation)
        self._started = False

    # Life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        # Listing and the started flag in one synchronous step: a publish after this spawns its own.
        self._started = True
        pending = self.records.deliveries.list()
        for record in pending:
            self.deliveries.spawn(record.id)
        if pending:
            log.warning("resuming %d pending Event Grid deliveries after a restart", len(pending))
        for subscription in self.records.subscriptions.list():
            self.validator.resume(subscription)

    async def stop(self) -> None:
        self._started = False
        await self.tasks.stop()
        await self.client.close()

    # Publishing ---------------------------------------------------------------------------------
    def publish(self, topic_id: str, events: list[Json], input_schema: str) -> int:
        """Fan `events` out to the topic's subscriptions; persisted before this returns."""
        published = 0
        now = time.time()
        stamp = now_iso()
        for subscription in self.records.subscriptions.list(topic_id):
            if not self._accepts(subscription, len(events)):
                continue
            properties = subscription.properties
            schema = subscription.delivery_schema
            selected = [
                for_delivery(event, input_schema, schema)
                for event in events
                if matches(properties.get("filter"), *type_and_subject(event, input_schema))
                and matches_advanced(properties.get("filter"), event)
            ]
            destination = subscription.destination
            groups = batches(
                selected,
                int(destination.get("maxEventsPerBatch") or 1),
                int(destination.get("preferredBatchSizeInKilobytes") or 64),
            )
            for group in groups:
                key = f"{subscription.id}/deliveries/{uuid.uuid4()}"
                self.records.deliveries.put(Delivery(key, subscription.id, schema, group, 0, stamp, now, now))
                published += 1
                log.info(
                    "Event Grid: %d event(s) (%s) queued for subscription %s",
                    len(group),
                    ", ".join(type_and_subject(e, schema)[0] for e in group),
                    subscription.name,
                )
                if self._started:
                    self.deliveries.spawn(key)
        return published

    def _accepts(self, subscription: Subscription, count: int) -> bool:
        """Whether the subscription takes events now: active, and not expired (then it is deleted)."""
        if subscription.state != "Succeeded":
            log.warning(
                "Event Grid: subscription %s is %s; %d event(s) not delivered to it",
                subscription.name,
                subscription.state,
                count,
            )
            return False
        expiration = subscription.properties.get("expirationTimeUtc")
        if expired(expiration):
            # Azure deletes an event subscription when it expires.
            log.warning("Event Grid: subscription %s expired at %s; deleted", subscription.name, expiration)
            self.delete_subscription(subscription.id)
            return False
        return True

    # Subscriptions --------------------------------------------------------------------------------
    def schedule_validation(self, subscription_id: str, operation: str | None, needed: bool) -> None:
        self.validator.schedule(subscription_id, operation, needed)

    def confirm_manual(self, code: str, token: str) -> Subscription | None:
        return self.validator.confirm_manual(code, token)

    def cancel_subscription(self, subscription_id: str) -> int:
        """Forget a deleted subscription's pending deliveries and validation."""
        dropped = self.deliveries.forget(subscription_id)
        self.validator.cancel(subscription_id)
        if dropped:
            log.warning(
                "Event Grid: %d pending delivery(ies) dropped with subscription %s", dropped, subscription_id
            )
        return dropped

    def delete_subscription(self, subscription_id: str) -> None:
        self.cancel_subscription(subscription_id)
        self.records.delete(subscription_id)

    # Removal with their sources ------------------------------------------------------------------
    def delete_topic(self, topic: Topic) -> None:
        for subscription in self.records.subscriptions.list(topic.id):
            self.delete_subscription(subscription.id)
        self.records.delete(topic.id)
        log.info("Event Grid: %s %s deleted", topic.type, topic.name)

    def registry_deleted(self, registry_id: str) -> None:
        for topic in self.records.topics(KIND_SYSTEM_TOPIC).list():
            if topic.source.lower() == registry_id.lower():
                self.delete_topic(topic)
        for record in self.records.store.list(KIND_MANIFEST, registry_id):
            self.records.delete(record["key"])

    def group_deleted(self, group_id: str) -> None:
        for kind in (KIND_SYSTEM_TOPIC, KIND_TOPIC):
            for topic in self.records.topics(kind).list(group_id):
                self.delete_topic(topic)
