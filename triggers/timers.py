"""Timer: lab cleanup on CLEANUP_SCHEDULE (NCRONTAB, hourly by default)."""

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
