"""Timer triggers, as the host's TimerListener runs them (times in UTC, as on Linux plans by default).

- Runs never overlap: the next occurrence is computed after an invocation ends, so occurrences missed
  while a slow invocation ran are skipped.
- `useMonitor` (default: on when occurrences are at least a minute apart) keeps the schedule status
  (Last, Next, LastUpdated) across restarts; the real host keeps it in blob storage, this one in the
  state directory. At start, a recorded Next already in the past means the host was down when it was
  due: the function runs at once with `past_due` set.
- Otherwise `runOnStartup` runs it once at start (`past_due` false).
- `past_due` is also set when an occurrence fires more than a second late.
- The function gets the TimerInfo the host serializes, decoded by azure-functions' TimerRequestConverter
  (bindings.py): with the monitor, `schedule_status` is the status as it stood before the invocation
  (Next: the occurrence now firing; Last: the previous one, DateTime.MinValue if none); without it, {}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .bindings import timer_input
from .functions import FunctionFailed, FunctionSpec
from .ncrontab import CronSchedule
from .storage import Invoke

log = logging.getLogger("devstack.host")

LATE = timedelta(seconds=1)


def now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def monitored(spec: FunctionSpec, at: datetime) -> bool:
    if spec.use_monitor is not None:
        return spec.use_monitor
    assert spec.schedule is not None
    interval = spec.schedule.interval_hint(at)
    return interval is not None and interval >= timedelta(minutes=1)


Status = dict[str, datetime | None]  # ScheduleStatus: Last, Next, LastUpdated (None: DateTime.MinValue)


class TimerRunner:
    def __init__(self, spec: FunctionSpec, invoke: Invoke, state_dir: Path, stopping: asyncio.Event) -> None:
        assert spec.schedule is not None
        self.spec = spec
        self.schedule: CronSchedule = spec.schedule
        self._invoke = invoke
        self._status_path = state_dir / "timers" / f"{spec.name}.json"
        self._stopping = stopping
        self._monitor = False
        # TimerListener.ScheduleStatus: as it stands before the next invocation.
        self._status: Status = {"Last": None, "Next": None, "LastUpdated": None}

    def _load_status(self) -> Status | None:
        try:
            data = json.loads(self._status_path.read_text())
            return {
                key: datetime.fromisoformat(data[key]) if data.get(key) else None
                for key in ("Last", "Next", "LastUpdated")
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_status(self) -> None:
        self._status_path.parent.mkdir(parents=True, exist_ok=True)
        self._status_path.write_text(json.dumps({key: _iso(value) for key, value in self._status.items()}))

    async def fire(
        self, *, past_due: bool, reason: str, scheduled: bool = True, startup: bool = False
    ) -> None:
        """One invocation; failures are logged (by the invoker) and the schedule goes on.

        As TimerListener.InvokeJobFunction: the function gets the status as it stood (with the monitor on),
        then Last and LastUpdated become the invocation time and Next the occurrence after it. A manual
        run (the admin API) binds a TimerInfo directly and leaves the status alone.
        """
        fired = now()
        status = dict(self._status) if self._monitor else None
        trigger = timer_input(past_due=past_due, status=status, fired=fired)
        with contextlib.suppress(FunctionFailed):
            await self._invoke(self.spec, trigger, reason)
        if not scheduled:
            return
        recorded_next = self._status["Next"]
        if not past_due and not startup and recorded_next is not None and recorded_next > fired:
            fired = recorded_next  # fired a little early: count it as the occurrence it stands for
        self._status = {"Last": fired, "Next": self.schedule.next_after(fired), "LastUpdated": fired}
        if self._monitor:
            self._save_status()

    async def run(self) -> None:
        start = now()
        self._monitor = monitored(self.spec, start)
        stored = self._load_status() if self._monitor else None
        if stored is not None and stored["Next"] is not None:
            self._status = stored
        else:
            self._status = {"Last": None, "Next": self.schedule.next_after(start), "LastUpdated": None}
            if self._monitor:
                # ScheduleMonitor.CheckPastDueAsync records a first status for a new timer.
                self._status["LastUpdated"] = start
                self._save_status()
        due_at = self._status["Next"]
        if stored is not None and due_at is not None and due_at < start:
            log.info("Function '%s' is past due (was due %s)", self.spec.name, due_at.isoformat())
            await self.fire(past_due=True, reason="Timer fired (past due)")
        elif self.spec.run_on_startup:
            await self.fire(past_due=False, reason="Timer fired at startup", startup=True)
        while not self._stopping.is_set():
            due = self.schedule.next_after(now())
            if due is None:
                log.warning("Function '%s' has no further occurrence", self.spec.name)
                return
            log.debug("Function '%s' next due at %s", self.spec.name, due.isoformat())
            try:
                await asyncio.wait_for(self._stopping.wait(), (due - now()).total_seconds())
                return
            except TimeoutError:
                pass
            late = now() - due > LATE
            await self.fire(past_due=late, reason="Timer fired")

    def next_occurrences(self, count: int) -> list[datetime]:
        moments: list[datetime] = []
        moment: datetime | None = now()
        while moment is not None and len(moments) < count:
            moment = self.schedule.next_after(moment)
            if moment is not None:
                moments.append(moment)
        return moments
