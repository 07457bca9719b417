"""Dockmaster's own events: CloudEvents 1.0 to the Event Grid topic (DOCKMASTER_EVENTS_TOPIC_ENDPOINT).

Verdicts and cleanup describe their events (`Event`); this one publisher sends them. Each event's id is
derived from what it reports, so a retried publish is a duplicate subscribers can drop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .errors import EVENTS_ROLE, from_azure

log = logging.getLogger("dockmaster.events")


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    id: str
    doing: str  # what a failure message says was being done


class Publisher:
    """Publishes CloudEvents to the topic; without a topic it only logs."""

    def __init__(self, client: Any | None) -> None:
        self._client = client

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def publish(self, event: Event) -> None:
        if self._client is None:
            log.info("%s %s (no events topic configured)", event.type, event.subject)
            return
        from azure.core.exceptions import AzureError
        from azure.core.messaging import CloudEvent

        cloud_event = CloudEvent(
            source=event.source, type=event.type, subject=event.subject, data=event.data, id=event.id
        )
        try:
            self._client.send([cloud_event])
        except AzureError as exc:
            raise from_azure(exc, event.doing, service="Event Grid", role=EVENTS_ROLE) from exc
