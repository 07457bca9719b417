"""The one source of time; tests pass a fixed clock."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, overload


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    def __init__(self, start: dt.datetime) -> None:
        self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += dt.timedelta(**delta)


# Two ways Dockmaster writes a time, different on purpose:
# - `stamp`: UTC, whole seconds, `Z`. Every time Dockmaster writes itself (tags, expiries, cleanup records,
#   messages) so that it reads back and compares as text.
# - `exact`: the moment as it came (offset, microseconds kept). Times the app reports from a record or an
#   SDK (verdicts, runs, events handed on), unchanged from what the API and events have always shown.


def stamp(moment: dt.datetime) -> str:
    """UTC, whole seconds, `Z`: how Dockmaster writes every time it stamps."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@overload
def exact(moment: dt.datetime) -> str: ...
@overload
def exact(moment: None) -> None: ...
@overload
def exact(moment: dt.datetime | None) -> str | None: ...
def exact(moment: dt.datetime | None) -> str | None:
    """ISO 8601 as the moment holds it (offset, microseconds); None stays None."""
    return moment.isoformat() if moment is not None else None
