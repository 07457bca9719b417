"""Timestamps as Azure writes them: ARM's (milliseconds) and Event Grid's (seven fractional digits)."""

from __future__ import annotations

import datetime as dt
import time


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_iso() -> str:
    return iso(time.time())


def azure_time(moment: dt.datetime | None = None) -> str:
    """ISO 8601 in UTC with seven fractional digits, as Event Grid stamps events."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
