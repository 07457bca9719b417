"""Timers: lab cleanup on CLEANUP_SCHEDULE (NCRONTAB, hourly by default); image retention on
RETENTION_SCHEDULE (daily by default), in its own blueprint."""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger("dockmaster.triggers.timers")


@bp.timer_trigger(schedule="%CLEANUP_SCHEDULE%", arg_name="timer", run_on_startup=False)
def cleanup_labs(timer: func.TimerRequest) -> None:
    """Plan and execute the cleanup. A Retryable error (ARM or storage unreachable) fails the invocation,
    so the next occurrence tries again; whatever was done before it is in the run record."""
    from shared.container import get_container

    container = get_container()
    if not container.settings.cleanup_enabled:
        log.info("cleanup is turned off (CLEANUP_ENABLED=false): nothing to do")
        return
    if timer.past_due:
        log.info("cleanup timer is past due: running now")
    run = container.cleanup.execute(confirm=True, trigger="timer")
    log.info(
        "cleanup run %s%s: plan %s %s; deleted %s; blocked %s; failed %s",
        run.run_id,
        " (dry run)" if run.dry_run else "",
        run.plan.plan_id,
        run.plan.counts(),
        run.deleted,
        run.blocked,
        run.failed,
    )


retention_bp = func.Blueprint()  # type: ignore[no-untyped-call]


@retention_bp.timer_trigger(schedule="%RETENTION_SCHEDULE%", arg_name="timer", run_on_startup=False)
def image_retention(timer: func.TimerRequest) -> None:
    """Plan and execute image retention (RETENTION_DRY_RUN=true by default: it deletes nothing). A
    Retryable error fails the invocation; what was done before it is in the run record."""
    from shared.container import get_container

    container = get_container()
    if not container.settings.retention_enabled:
        log.info("retention is turned off (RETENTION_ENABLED=false): nothing to do")
        return
    run = container.retention.execute(confirm=True, trigger="timer")
    log.info(
        "retention run %s%s: plan %s %s; outcomes %s",
        run.run_id,
        " (dry run)" if run.dry_run else "",
        run.plan.plan_id,
        run.plan.counts(),
        run.counts(),
    )
