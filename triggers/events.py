"""Event Grid: ACR ImagePushed / ImageDeleted → verification."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger("dockmaster.triggers.events")


def as_dict(event: func.EventGridEvent | func.CloudEvent) -> dict[str, object]:
    """The event in its own schema: the worker hands CloudEvents deliveries over as func.CloudEvent."""
    from shared.clock import exact

    if isinstance(event, func.CloudEvent):
        return {
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "subject": event.subject,
            "time": exact(event.time),
            "data": event.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": exact(event.event_time),
        "data": event.get_json(),
        "dataVersion": event.data_version,
    }


@bp.event_grid_trigger(arg_name="event")
def on_image_event(event: func.EventGridEvent) -> None:  # a CloudEvents delivery arrives as func.CloudEvent
    from shared.container import get_container
    from shared.errors import InvalidInput
    from shared.events import shown

    try:
        get_container().verifier.handle_event(as_dict(event))
    except InvalidInput as exc:
        # Acknowledged, not retried: a malformed or foreign event will never become valid.
        log.warning("event=%s rejected: %s", shown(event.id), exc)
