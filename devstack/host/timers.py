"""Timer triggers, as the host's TimerListener runs them (times in UTC, as on Linux plans by default).

- Runs never overlap: the next occurrence is computed after an invocation ends, so occurrences missed
  while a slow invocation ran are skipped.
- `useMonitor` (default: on when occurrences are at least a minute apart) keeps the schedule status
  (Last, Next, LastUpdated) across restarts; the real host keeps it in blob storage, this one in the
  state directory. At start, a recorded Next already in the past means the host was down when it was
  due: the function runs at once with `past_due` set.
- Otherwise `runOnStartup` runs it once at start (`past_due` false).
- `past_due` is also set when an occurrence fires more than a second late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions import timer as func_timer

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


class TimerRunner:
    def __init__(self, spec: FunctionSpec, invoke: Invoke, state_dir: Path, stopping: asyncio.Event) -> None:
        assert spec.schedule is not None
        self.spec = spec
        self.schedule: CronSchedule = spec.schedule
        self._invoke = invoke
        self._status_path = state_dir / "timers" / f"{spec.name}.json"
        self._stopping = stopping
        self._last: datetime | None = None

    def _load_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self._status_path.read_text())
            return {
                "Last": datetime.fromisoformat(data["Last"]) if data.get("Last") else None,
                "Next": datetime.fromisoformat(data["Next"]),
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_status(self, next_due: datetime | None) -> None:
        self._status_path.parent.mkdir(parents=True, exist_ok=True)
        status = {"Last": _iso(self._last), "Next": _iso(next_due), "LastUpdated": _iso(now())}
        self._status_path.write_text(json.dumps(status))

    def _schedule_status(self, next_due: datetime | None) -> dict[str, Any]:
        return {"Last": _iso(self._last), "Next": _iso(next_due), "LastUpdated": _iso(now())}

    async def fire(self, *, past_due: bool, reason: str, monitor: bool) -> None:
        """One invocation; failures are logged (by the invoker) and the schedule goes on."""
        upcoming = self.schedule.next_after(now())
        request = func_timer.TimerRequest(
            past_due=past_due,
            schedule_status=self._schedule_status(upcoming) if monitor else None,
            schedule={"AdjustForDST": True},
        )
        with contextlib.suppress(FunctionFailed):
            await self._invoke(self.spec, request, reason)
        self._last = now()
        if monitor:
            self._save_status(self.schedule.next_after(now()))

    async def run(self) -> None:
        start = now()
        monitor = monitored(self.spec, start)
        status = self._load_status() if monitor else None
        if status is not None:
            self._last = status["Last"]
        if status is not None and status["Next"] < start:
            log.info("Function '%s' is past due (was due %s)", self.spec.name, status["Next"].isoformat())
            await self.fire(past_due=True, reason="Timer fired (past due)", monitor=monitor)
        elif self.spec.run_on_startup:
            await self.fire(past_due=False, reason="Timer fired at startup", monitor=monitor)
        elif monitor:
            self._save_status(self.schedule.next_after(start))
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
            await self.fire(past_due=late, reason="Timer fired", monitor=monitor)

    def next_occurrences(self, count: int) -> list[datetime]:
        moments: list[datetime] = []
        moment: datetime | None = now()
        while moment is not None and len(moments) < count:
            moment = self.schedule.next_after(moment)
            if moment is not None:
                moments.append(moment)
        return moments
