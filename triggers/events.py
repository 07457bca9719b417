"""Event Grid: ACR ImagePushed / ImageDeleted → verification."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger("dockmaster.triggers.events")


def as_dict(event: func.EventGridEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "data": event.get_json(),
        "dataVersion": event.data_version,
    }


@bp.event_grid_trigger(arg_name="event")
def on_image_event(event: func.EventGridEvent) -> None:
    from shared.errors import InvalidInput
    from shared.services import verifier

    try:
        verifier().handle_event(as_dict(event))
    except InvalidInput as exc:
        # Acknowledged, not retried: a malformed or foreign event will never become valid.
        log.warning("event=%s rejected: %s", event.id, exc)
