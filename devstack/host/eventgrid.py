"""The Event Grid trigger's webhook, `/runtime/webhooks/eventgrid?functionName=NAME&code=KEY`.

It behaves as the Event Grid extension's request processor in the Functions host:
- the system key (`eventgrid_extension`, or the master key) is required as `code` (or `x-functions-key`),
  unless the host was started without webhook keys;
- an unknown `functionName` answers 404 `cannot find function: 'NAME'`;
- `OPTIONS` (CloudEvents abuse protection) answers 200 with `WebHook-Allowed-Origin`: the request's
  `WebHook-Request-Origin` when it is one of Event Grid's cloud origins, otherwise `eventgrid.azure.net`,
  exactly as the extension does;
- `aeg-event-type: SubscriptionValidation` is answered by the host itself with
  `{"validationResponse": code}` (from an Event Grid array, or a CloudEvent whose data may be encoded twice);
- `aeg-event-type: Notification` delivers every event of the body (an Event Grid schema array, a single
  CloudEvent, or a CloudEvents batch) as its own invocation, all at once; 202 when all succeed, 500 (with
  the first failure's message) when any fails, so that Event Grid redelivers the whole request;
- `aeg-event-type: Unsubscribe` answers 202; a missing or other event type, or a body that is not an
  event, answers 400.

Each event goes to its invocation as a `json` Datum and is decoded there by azure-functions' own Event Grid
converter, as the Python worker does (bindings.py): the Event Grid schema gives a `func.EventGridEvent`,
a CloudEvents 1.0 event (it has `specversion`) a `func.CloudEvent` (azure-functions >= 1.25). An event
the converter refuses fails its invocation, so the request answers 500 and Event Grid retries it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .bindings import TriggerInput, eventgrid_input
from .functions import FunctionFailed, FunctionSpec

PATH = "/runtime/webhooks/eventgrid"
PUBLIC_ORIGIN = "eventgrid.azure.net"
# The origins the extension echoes back; any other gets the public cloud's.
KNOWN_ORIGINS = frozenset(
    {
        PUBLIC_ORIGIN,
        "eventgrid.azure.us",
        "eventgrid.azure.eaglex.ic.gov",
        "eventgrid.azure.microsoft.scloud",
        "eventgrid.azure.cn",
    }
)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: int, message: str) -> Reply:
        return cls(status, message.encode(), [("content-type", "text/plain; charset=utf-8")])


def _validation_code(payload: Any) -> str | None:
    if isinstance(payload, list):
        first = payload[0] if payload else None
        data = first.get("data") if isinstance(first, dict) else None
    elif isinstance(payload, dict):
        data = payload.get("data")
        if isinstance(data, str):
            # The CloudEvent flavour of the validation event carries its data encoded as a string.
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                return None
    else:
        return None
    code = data.get("validationCode") if isinstance(data, dict) else None
    return str(code) if code is not None else None


Invoke = Callable[[FunctionSpec, TriggerInput, str], Awaitable[Any]]


async def handle(
    *,
    method: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    functions: Mapping[str, FunctionSpec],
    invoke: Invoke,
    authorized: bool,
) -> Reply:
    """Answer one webhook request. `headers` has lower-case names; `authorized` is the key check's result."""
    if not authorized:
        return Reply(401)
    name = query.get("functionName", "")
    spec = functions.get(name)
    if spec is None:
        return Reply.text(404, f"cannot find function: '{name}'")
    if method == "OPTIONS":
        origin = headers.get("webhook-request-origin", "")
        allowed = origin if origin in KNOWN_ORIGINS else PUBLIC_ORIGIN
        return Reply(200, headers=[("webhook-allowed-origin", allowed)])
    if method != "POST":
        return Reply.text(405, "the Event Grid webhook takes POST (and OPTIONS)")
    event_type = headers.get("aeg-event-type", "")
    if event_type.lower() not in ("subscriptionvalidation", "notification", "unsubscribe"):
        shown = repr(event_type) if event_type else "missing"
        return Reply.text(
            400, f"aeg-event-type header is {shown}: expected SubscriptionValidation or Notification"
        )
    if event_type.lower() == "unsubscribe":
        return Reply(202)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return Reply.text(400, "the request body is not JSON")
    if event_type.lower() == "subscriptionvalidation":
        code = _validation_code(payload)
        if code is None:
            return Reply.text(400, "no data.validationCode in the subscription validation event")
        return Reply(
            200, json.dumps({"validationResponse": code}).encode(), [("content-type", "application/json")]
        )
    events = payload if isinstance(payload, list) else [payload]
    if not events or not all(isinstance(event, dict) for event in events):
        return Reply.text(400, "the body must be an event object or a non-empty array of event objects")
    results = await asyncio.gather(
        *(invoke(spec, eventgrid_input(event), "EventGrid trigger fired") for event in events),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, FunctionFailed):
            return Reply.text(500, str(result))
        if isinstance(result, BaseException):
            raise result
    return Reply(202)
