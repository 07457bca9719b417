"""The CloudEvents retention publishes: one per deletion the registry accepted (cleanup publishes no
per-run summary, so neither does retention)."""

from __future__ import annotations

from ..cleanup.events import log_unpublished
from ..errors import DockmasterError
from ..publisher import Event, Publisher
from .records import DELETED, Outcome, RunRecord

DELETED_EVENT = "Dockmaster.Retention.Deleted"


def deleted_event(outcome: Outcome, run_id: str, registry_id: str) -> Event:
    item = outcome.item
    subject = f"{item.repository}{':' if item.kind == 'tag' else '@'}{item.name}"
    return Event(
        type=DELETED_EVENT,
        source=registry_id,
        subject=subject,
        data={**outcome.public(), "runId": run_id},
        id=f"retention|{item.registry}|{subject}|{run_id}".lower(),
        doing=f"publishing {DELETED_EVENT} for {subject}",
    )


def announce_deleted(publisher: Publisher, run: RunRecord, registry_ids: dict[str, str]) -> None:
    """An event per deletion; one not published is noted in the run, not retried."""
    for outcome in run.having(DELETED):
        try:
            publisher.publish(
                deleted_event(outcome, run.run_id, registry_ids.get(outcome.item.registry.lower(), ""))
            )
        except DockmasterError as exc:
            log_unpublished(exc)
            run.notes.append(f"{DELETED_EVENT} for {outcome.item.name} not published: {exc.message}")
