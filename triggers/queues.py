"""Queue: follow a scheduled smoke run until its verdict is final."""

from __future__ import annotations

import json
import logging

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger("dockmaster.triggers.queues")


@bp.queue_trigger(arg_name="message", queue_name="%DOCKMASTER_RUNS_QUEUE%", connection="AzureWebJobsStorage")
def follow_verification_run(message: func.QueueMessage) -> None:
    from shared.container import get_container
    from shared.errors import InvalidInput

    try:
        get_container().verifier.follow_run(json.loads(message.get_body()))
    except (InvalidInput, ValueError) as exc:
        log.warning("message=%s rejected: %s", message.id, exc)


@bp.queue_trigger(
    arg_name="message", queue_name="%DOCKMASTER_RUNS_QUEUE%-poison", connection="AzureWebJobsStorage"
)
def revive_verification_run(message: func.QueueMessage) -> None:
    """A follow-up that failed maxDequeueCount times (storage or ACR Tasks down for a while) is sent
    back to the runs queue after a pause, so no running verdict is left without a follow-up to come."""
    from shared.container import get_container
    from shared.errors import InvalidInput

    try:
        get_container().verifier.revive_run(json.loads(message.get_body()))
    except (InvalidInput, ValueError) as exc:
        log.warning("message=%s rejected: %s", message.id, exc)
