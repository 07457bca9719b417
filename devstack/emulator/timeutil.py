"""Timestamps in the format ARM returns (ISO 8601, UTC, with a Z)."""

from __future__ import annotations

import datetime as dt
import time


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_iso() -> str:
    return iso(time.time())
