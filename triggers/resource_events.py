"""Event Grid: the subscription's resource events (ResourceWriteSuccess) → creation stamps."""

from __future__ import annotations

import logging

import azure.functions as func

from .events import as_dict

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger("dockmaster.triggers.resource_events")


@bp.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    from shared.container import get_container
    from shared.errors import InvalidInput
    from shared.events import shown

    try:
        get_container().stamps.handle(as_dict(event))
    except InvalidInput as exc:
        # Acknowledged, not retried: a malformed or foreign event will never become valid.
        log.warning("event=%s rejected: %s", shown(event.id), exc)
