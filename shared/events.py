"""ACR events in the Event Grid or CloudEvents 1.0 schema → typed ImagePushed / ImageDeleted.

The registry is identified by the event's topic/source (its ARM id) and must be
one Dockmaster is configured for; hosts named inside the event are never used.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .config import RegistryRef
from .errors import InvalidInput

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class UnknownRegistry(InvalidInput):
    """The event comes from a registry Dockmaster is not configured for."""


@dataclass(frozen=True)
class ImageEvent:
    event_id: str
    event_type: str
    event_time: dt.datetime
    registry: RegistryRef
    repository: str
    digest: str
    tag: str | None

    @property
    def pushed(self) -> bool:
        return self.event_type == PUSHED


def shown(value: object, limit: int = 64) -> str:
    """A refused value as a message quotes it: bounded, control characters escaped (it may be hostile)."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit].encode("unicode_escape").decode("ascii")
    return cut + "…" if len(text) > limit else cut


# fullmatch, not match: `$` also matches before a trailing newline, so "v1\n" would pass.
def validate_repository(name: str) -> str:
    if not isinstance(name, str) or len(name) > 256 or not REPOSITORY.fullmatch(name):
        raise InvalidInput(f"'{shown(name)}' is not a valid OCI repository name")
    return name


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        raise InvalidInput(f"'{shown(tag)}' is not a valid OCI tag")
    return tag


def validate_digest(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise InvalidInput(f"'{shown(digest)}' is not a sha256 digest")
    return digest


def _time(raw: Any) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        value = raw
    else:
        try:
            value = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"event time '{shown(raw)}' is not ISO 8601") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _registry(source: Any, registries: dict[str, RegistryRef]) -> RegistryRef:
    if not isinstance(source, str) or not source:
        raise InvalidInput("the event has no topic/source naming its registry")
    for ref in registries.values():
        if ref.resource_id.lower() == source.lower():
            return ref
    raise UnknownRegistry(f"events from '{shown(source, 256)}' are not for a configured registry")


def parse(event: dict[str, Any], registries: dict[str, RegistryRef]) -> ImageEvent:
    """Parse either schema; raises InvalidInput (or UnknownRegistry) with a clear reason."""
    if not isinstance(event, dict):
        raise InvalidInput("an event must be a JSON object")
    if event.get("specversion"):
        event_type, source, time_field = event.get("type"), event.get("source"), event.get("time")
    else:
        event_type, source, time_field = event.get("eventType"), event.get("topic"), event.get("eventTime")
    if event_type not in (PUSHED, DELETED):
        raise InvalidInput(f"unsupported event type '{shown(event_type)}'")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidInput("the event has no id")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
        raise InvalidInput("the event has no data.target")
    target = data["target"]
    registry = _registry(source, registries)
    tag = target.get("tag")
    if event_type == PUSHED and not tag:
        raise InvalidInput("an ImagePushed event without a tag cannot be verified")
    return ImageEvent(
        event_id=event_id,
        event_type=str(event_type),
        event_time=_time(time_field or data.get("timestamp")),
        registry=registry,
        repository=validate_repository(target.get("repository", "")),
        digest=validate_digest(target.get("digest", "")),
        tag=validate_tag(tag) if tag else None,
    )
