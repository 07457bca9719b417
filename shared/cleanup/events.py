"""The CloudEvents cleanup publishes: a warning before a lab is deleted, and each delete ARM accepted."""

from __future__ import annotations

import logging

from ..errors import DockmasterError, Retryable
from ..publisher import Event, Publisher
from .planner import Group, PlanItem, iso
from .records import DELETED, Outcome, RunRecord

log = logging.getLogger("dockmaster.cleanup")

WARNING_EVENT = "Dockmaster.Cleanup.Warning"
DELETED_EVENT = "Dockmaster.Cleanup.Deleted"


def warning_event(group: Group, item: PlanItem) -> Event:
    """A lab's warning before deletion; one per expiry (a later extension warns again)."""
    if item.expiry is None:
        raise ValueError(f"a warning for {group.name} needs an expiry")
    return Event(
        type=WARNING_EVENT,
        source=group.id,
        subject=group.name,
        data=item.public(),
        id=f"warning|{group.subscription}|{group.name}|{iso(item.expiry)}".lower(),
        doing=f"publishing {WARNING_EVENT} for {group.name}",
    )


def deleted_event(outcome: Outcome, run_id: str) -> Event:
    """A lab whose delete ARM accepted, in run `run_id`."""
    source = f"/subscriptions/{outcome.subscription}/resourceGroups/{outcome.name}"
    return Event(
        type=DELETED_EVENT,
        source=source,
        subject=outcome.name,
        data={**outcome.public(), "runId": run_id},
        id=f"deleted|{source}|{run_id}".lower(),
        doing=f"publishing {DELETED_EVENT} for {outcome.name}",
    )


def log_unpublished(error: DockmasterError) -> None:
    log.log(logging.WARNING if isinstance(error, Retryable) else logging.ERROR, "%s", error.message)


def announce_deleted(publisher: Publisher, run: RunRecord) -> None:
    """An event for each deletion ARM accepted; one not published is noted in the run, not retried."""
    for outcome in run.having(DELETED):
        try:
            publisher.publish(deleted_event(outcome, run.run_id))
        except DockmasterError as exc:
            log_unpublished(exc)
            run.notes.append(f"{DELETED_EVENT} for {outcome.name} not published: {exc.message}")
