"""Who sent the ARM request being handled: its token's claims and the request, for the resource events
ARM raises. Set by the ARM dispatcher for the request's task; a background task started by the request
(a group's deletion) inherits it, as asyncio copies the context into the tasks it creates."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArmCaller:
    claims: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    url: str = ""
    client_ip: str = ""
    client_request_id: str = ""
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))


CURRENT: contextvars.ContextVar[ArmCaller | None] = contextvars.ContextVar("arm_caller", default=None)


def current() -> ArmCaller:
    """The caller of the request being handled; an anonymous one outside a request (a resumed deletion)."""
    return CURRENT.get() or ArmCaller()


def of_request(request: Any, claims: dict[str, Any], arm_endpoint: str) -> ArmCaller:
    """A Starlette request's caller; the URL as ARM's public endpoint names it."""
    query = request.url.query
    headers = request.headers
    return ArmCaller(
        claims=dict(claims),
        method=request.method,
        url=f"{arm_endpoint.rstrip('/')}{request.scope['path']}{f'?{query}' if query else ''}",
        client_ip=request.client.host if request.client else "",
        client_request_id=headers.get("x-ms-client-request-id", ""),
        correlation_id=headers.get("x-ms-correlation-request-id") or str(uuid.uuid4()),
    )
