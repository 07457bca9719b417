"""Trigger inputs as the Python worker receives and decodes them.

The host sends each invocation its trigger data and trigger metadata as TypedData; the worker turns them
into Datums and hands them to the azure-functions converter registered for the binding type
(`azure.functions.get_binding_registry()`), calling its `decode(datum, trigger_metadata=...)`; a `str` or
`bytes` annotation takes the worker's generic binding instead (azure_functions_worker/functions.py,
bindings/meta.py, bindings/generic.py). This module builds the same Datums, from what the host sends:

- HTTP: an `http` Datum (method, url, lower-cased headers, query, route params, body). The Python worker
  declares RawHttpBodyBytes and RpcHttpBodyOnly, so the body is bytes; the host copies it only when the
  request has a Content-Length above 0 (GrpcMessageConversionExtensions.ToRpcHttp): a chunked request
  body never reaches an out-of-process function (azure-functions-host#7930). Repeated headers and query
  values are joined with ',' (StringValues.ToString); a query value that is empty is left out.
- Queue: the message text as a `string` Datum; trigger metadata Id, PopReceipt, QueueTrigger (strings),
  DequeueCount, InsertionTime, ExpirationTime, NextVisibleTime (serialized with Newtonsoft, so `json`
  Datums: `1`, `"2026-03-01T12:00:00+00:00"`), and, when the message is a JSON object, its top-level
  properties on top (WorkerFunctionInvoker.TransformInput → Utility.ApplyBindingData): a property named
  like a key above (in any case) replaces it.
- Timer: the TimerInfo serialized as `json` (`Schedule`, `ScheduleStatus`, `IsPastDue`); metadata
  `TimerTrigger`, the time it fired.
- Event Grid: each event as a `json` Datum.

Decoding happens inside the invocation, as in the worker: a value the converter refuses fails the
invocation (an HTTP 500, a queue retry), it does not stop the host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum


@dataclass(frozen=True)
class TriggerInput:
    """What the host sends for one invocation's trigger."""

    data: Datum
    metadata: dict[str, Datum] = field(default_factory=dict)


def _string(value: str) -> Datum:
    return Datum(value, "string")


def _json(value: Any) -> Datum:
    return Datum(json.dumps(value, separators=(",", ":")), "json")


def net_datetime(moment: datetime) -> str:
    """A DateTimeOffset (or a local DateTime on a UTC host) as Newtonsoft writes it: ISO 8601, a fraction
    of up to seven digits without trailing zeros, and the offset."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "+00:00"


# ------------------------------------------------------------------------------------------------ HTTP


def http_input(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    params: Mapping[str, str],
    body: bytes | None,
) -> TriggerInput:
    """`body` is None when the request declared no Content-Length (the host then sends none)."""
    value = {
        "method": _string(method),
        "url": _string(url),
        "headers": {name: _string(text) for name, text in headers.items()},
        "query": {name: _string(text) for name, text in query.items() if text},
        "params": {name: _string(text) for name, text in params.items()},
        # Datum.from_typed_data(http.body) or an empty bytes Datum, as the worker builds it.
        "body": Datum(body or b"", "bytes"),
    }
    return TriggerInput(Datum(value, "http"))


# ---------------------------------------------------------------------------------------------- queues


def _overlay(metadata: dict[str, Datum], text: str) -> None:
    """Utility.ApplyBindingData: a JSON object message adds its top-level properties (not arrays, not
    nulls) to the binding data, replacing a key of the same name in any case. An object stays JSON; any
    other value becomes its string (the host's `(string)JValue`: a number as written, true as "True")."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return
    if not isinstance(parsed, dict):
        return
    for name, value in parsed.items():
        if value is None or isinstance(value, list):
            continue
        if isinstance(value, dict):
            datum = _json(value)
        elif isinstance(value, bool):
            datum = _string(str(value))
        else:
            datum = _string(value if isinstance(value, str) else json.dumps(value))
        existing = next((key for key in metadata if key.lower() == name.lower()), name)
        metadata[existing] = datum


def queue_input(
    *,
    message_id: str,
    text: str,
    dequeue_count: int,
    inserted_on: datetime | None,
    expires_on: datetime | None,
    next_visible_on: datetime | None,
    pop_receipt: str,
    now: datetime,
) -> TriggerInput:
    """QueueTriggerBinding's binding data: missing times default as the extension defaults them."""
    maximum = datetime.max.replace(tzinfo=UTC)
    metadata = {
        "QueueTrigger": _string(text),
        "DequeueCount": _json(dequeue_count),
        "ExpirationTime": _json(net_datetime(expires_on or maximum)),
        "Id": _string(message_id),
        "InsertionTime": _json(net_datetime(inserted_on or now)),
        "NextVisibleTime": _json(net_datetime(next_visible_on or maximum)),
        "PopReceipt": _string(pop_receipt),
    }
    _overlay(metadata, text)
    return TriggerInput(_string(text), metadata)


# ---------------------------------------------------------------------------------------------- timers


def timer_input(
    *, past_due: bool, status: Mapping[str, datetime | None] | None, fired: datetime
) -> TriggerInput:
    """TimerInfo as Newtonsoft serializes it. ScheduleStatus is null without the schedule monitor; its
    DateTimes are local times (UTC on Azure's workers) and never null: an unset one is
    `default(DateTime).ToLocalTime()`, written "0001-01-01T00:00:00+00:00"."""
    schedule_status = None
    if status is not None:
        schedule_status = {
            key: net_datetime(moment) if moment is not None else "0001-01-01T00:00:00+00:00"
            for key, moment in status.items()
        }
    info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": schedule_status, "IsPastDue": past_due}
    # TimerTriggerBinding: DateTime.Now.ToString() (invariant culture on the Linux workers).
    fired_text = fired.astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")
    return TriggerInput(_json(info), {"TimerTrigger": _string(fired_text)})


# ------------------------------------------------------------------------------------------ Event Grid


def eventgrid_input(event: Mapping[str, Any]) -> TriggerInput:
    return TriggerInput(_json(dict(event)))


# ------------------------------------------------------------------------------------------- the worker


def _generic(data: Datum) -> Any:
    """The worker's GenericBinding.decode, what a `str` or `bytes` parameter gets: the value as sent."""
    if data.type in ("string", "bytes", "json"):
        return data.value
    if data.type is None:
        return None
    raise ValueError(f'unexpected type of data received for the "generic" binding : {data.type!r}')


def _converter(binding_type: str) -> Any:
    """The converter the worker looks up for a binding type (None: the generic binding)."""
    registry = func.get_binding_registry()  # type: ignore[no-untyped-call]  # azure-functions leaves it untyped
    return registry.get(binding_type)


def _is_generic(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, (str, bytes))


def annotation_problem(function: str, parameter: str, binding_type: str, annotation: Any) -> str | None:
    """The worker's check of a trigger parameter's annotation at load (FunctionLoadError's text)."""
    if annotation is None:
        return None
    if not isinstance(annotation, type):
        return f"binding {parameter} has invalid non-type annotation {annotation!r}"
    if _is_generic(annotation):
        return None
    converter = _converter(binding_type)
    if converter is not None and converter.check_input_type_annotation(annotation):
        return None
    return (
        f'type of {parameter} binding in function.json "{binding_type}" does not match its Python '
        f'annotation "{annotation.__name__}"'
    )


def decode(binding_type: str, annotation: Any, trigger: TriggerInput) -> Any:
    """The argument the function gets, as the worker's `from_incoming_proto` makes it."""
    if _is_generic(annotation):
        return _generic(trigger.data)
    converter = _converter(binding_type)
    if converter is None:
        return _generic(trigger.data)
    return converter.decode(trigger.data, trigger_metadata=trigger.metadata)
