"""host.json, local.settings.json and `%SETTING%` expressions, read as the Functions host reads them."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HostError

DEFAULT_ROUTE_PREFIX = "api"
# The queue listener's floor: the extension never polls more often than every 100 ms.
MIN_POLLING_INTERVAL = 0.1
# Flex Consumption's default; the real host refuses to run without some timeout on consumption plans.
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0

# .NET's TimeSpan.Parse takes ASCII digits (with surrounding white space, stripped below); `\d` would also
# take any Unicode digit.
_TIMESPAN = re.compile(
    r"(?:(?P<days>[0-9]+)\.)?(?P<h>[0-9]{1,2}):(?P<m>[0-9]{1,2}):(?P<s>[0-9]{1,2}(?:\.[0-9]{1,7})?)"
)
_SETTING = re.compile(r"%([^%]+)%")


def parse_timespan(value: str, what: str) -> float:
    """Seconds in a .NET TimeSpan string (`[d.]hh:mm:ss[.fffffff]`), as host.json writes durations."""
    match = _TIMESPAN.fullmatch(value.strip())
    if match is None:
        raise HostError(f"host.json: {what} must be a TimeSpan such as '00:00:30', got {value!r}")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


def resolve_expression(value: str, environ: Mapping[str, str], where: str) -> str:
    """Replace every `%NAME%` with the app setting NAME; an unresolvable one is an indexing error."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise HostError(f"{where}: '%{name}%' does not resolve to a value (no app setting {name!r})")
        return environ[name]

    return _SETTING.sub(setting, value)


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues` of host.json, with the storage extension's (v5) defaults."""

    batch_size: int = 16
    new_batch_threshold: int = field(default_factory=lambda: (os.cpu_count() or 1) * 8)
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueOptions:
        defaults = cls()
        batch_size = _int(data, "batchSize", defaults.batch_size, 1, 32)
        # The extension's default threshold is batchSize/2 per core, so it follows a configured batchSize.
        threshold_default = (os.cpu_count() or 1) * batch_size // 2
        encoding = str(data.get("messageEncoding", defaults.message_encoding)).lower()
        if encoding not in ("base64", "none"):
            raise HostError(
                f"host.json: extensions.queues.messageEncoding must be base64 or none, got {encoding!r}"
            )
        polling = defaults.max_polling_interval
        if "maxPollingInterval" in data:
            polling = parse_timespan(str(data["maxPollingInterval"]), "extensions.queues.maxPollingInterval")
            if polling < MIN_POLLING_INTERVAL:
                raise HostError("host.json: extensions.queues.maxPollingInterval must be at least 00:00:00.1")
        visibility = defaults.visibility_timeout
        if "visibilityTimeout" in data:
            visibility = parse_timespan(str(data["visibilityTimeout"]), "extensions.queues.visibilityTimeout")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=_int(data, "newBatchThreshold", threshold_default, 0, 10_000),
            max_polling_interval=polling,
            visibility_timeout=visibility,
            max_dequeue_count=_int(data, "maxDequeueCount", defaults.max_dequeue_count, 1, 10_000),
            message_encoding=encoding,
        )


def _int(data: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HostError(
            f"host.json: extensions.queues.{key} must be an integer in [{low}, {high}], got {value!r}"
        )
    return value


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT
    queues: QueueOptions = field(default_factory=QueueOptions)
    functions: tuple[str, ...] | None = None

    @classmethod
    def load(cls, path: Path | None) -> HostConfig:
        if path is None:
            return cls()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise HostError(f"cannot read host.json at {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise HostError(f"{path}: host.json must be a JSON object")
        if data.get("version") != "2.0":
            # The v2+ host refuses a host.json without it; so do we, rather than guess a schema.
            raise HostError(f'{path}: host.json must declare "version": "2.0"')
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        # Kept as written: the host joins it to each route as `prefix + "/" + route` (a '/' at its end
        # makes an empty segment, which ASP.NET refuses); null or "" means no prefix.
        raw_prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
        prefix = "" if raw_prefix is None else str(raw_prefix)
        timeout: float | None = DEFAULT_FUNCTION_TIMEOUT
        if "functionTimeout" in data:
            raw = str(data["functionTimeout"])
            timeout = None if raw.strip() == "-1" else parse_timespan(raw, "functionTimeout")
        functions = data.get("functions")
        if functions is not None and not (
            isinstance(functions, list) and all(isinstance(name, str) for name in functions)
        ):
            raise HostError(f'{path}: "functions" must be a list of function names')
        return cls(
            route_prefix=prefix,
            function_timeout=timeout,
            queues=QueueOptions.from_json(extensions.get("queues") or {}),
            functions=tuple(functions) if functions is not None else None,
        )


def load_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of local.settings.json, as strings."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HostError(f"cannot read local settings at {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HostError(f"{path}: local.settings.json must be a JSON object")
    if data.get("IsEncrypted"):
        raise HostError(f"{path}: encrypted local settings are not supported; set IsEncrypted to false")
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise HostError(f'{path}: "Values" must be an object')
    result: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif value is None:
            result[key] = ""
        else:
            result[key] = str(value)
    return result


def apply_settings(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Export settings the way Core Tools does: a variable already in the environment wins.

    Returns the names that were skipped because the environment already defines them.
    """
    skipped = []
    for key, value in values.items():
        if key in environ:
            skipped.append(key)
        else:
            environ[key] = value
    return skipped
