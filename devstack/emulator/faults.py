"""Faults on demand, for reliability tests: throttling, server errors, latency, dropped connections, holds.

Rules are set through `/_devstack/faults` on the ARM endpoint (authenticated with
the identity header) and apply to the endpoint they name: `arm`, `dataplane` or
`identity`, optionally narrowed by method and a path regex, for a number of hits.

A `hold` keeps each matching request waiting until its rule is removed (at most `delay_ms`, a minute by
default): a test that needs a request to be in flight while something else happens holds it, waits
for the rule's `hits`, does the other thing and removes the rule, instead of guessing a latency that a
busy machine may outlast.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

KINDS = {"throttle", "error", "latency", "drop", "hold"}
LONGEST_HOLD_MS = 60_000
TARGETS = {"arm", "dataplane", "identity"}


# The codes Azure answers with, per endpoint and status: ARM's (Azure REST API guidelines; AuthorizationFailed
# and InvalidAuthenticationToken are what ARM says to a caller without the role or with a bad token) and the
# distribution spec's (DENIED, UNAUTHORIZED, TOOMANYREQUESTS) for a registry.
ARM_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
}
REGISTRY_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}


def error_code(target: str, status: int) -> str:
    codes = REGISTRY_CODES if target == "dataplane" else ARM_CODES
    return codes.get(status, "ServiceUnavailable" if status >= 500 else "BadRequest")


class DroppedConnection(Exception):
    """Raised mid-response so the server aborts the connection, as a network fault would."""


@dataclass
class Fault:
    target: str
    kind: str
    path: str = ".*"
    method: str = "*"
    status: int = 503
    retry_after: int = 1
    delay_ms: int = 0
    code: str = ""  # the error code in the body; by default the one Azure gives for the status
    count: int | None = 1  # hits left; None = until cleared
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {sorted(TARGETS)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        if self.kind == "error" and not 400 <= self.status <= 599:
            raise ValueError("an error fault needs a 4xx or 5xx status")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be positive or null")
        re.compile(self.path)

    def matches(self, target: str, method: str, path: str) -> bool:
        return (
            self.target == target
            and self.method in ("*", method)
            and re.search(self.path, path) is not None
            and (self.count is None or self.count > 0)
        )


class Faults:
    def __init__(self, admin_key: str) -> None:
        self._admin_key = admin_key
        self._rules: list[Fault] = []
        self._holds: dict[str, asyncio.Event] = {}  # by rule id, while its requests are held
        # Requests seen per endpoint (arm, dataplane, identity): benchmarks read them at /_devstack/stats.
        self.requests: dict[str, int] = dict.fromkeys(sorted(TARGETS), 0)

    def take(self, target: str, method: str, path: str) -> Fault | None:
        for rule in self._rules:
            if rule.matches(target, method, path):
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
                return rule
        return None

    def wrap(self, app: ASGIApp, target: str) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith("/_devstack/"):
                await app(scope, receive, send)
                return
            self.requests[target] += 1
            fault = self.take(target, scope["method"], scope["path"])
            if fault is None:
                await app(scope, receive, send)
                return
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay_ms / 1000)
                await app(scope, receive, send)
            elif fault.kind == "hold":
                released = self._holds.setdefault(fault.id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), (fault.delay_ms or LONGEST_HOLD_MS) / 1000)
                await app(scope, receive, send)
            elif fault.kind == "drop":
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
                )
                raise DroppedConnection(f"fault {fault.id}: connection dropped")
            else:
                status = 429 if fault.kind == "throttle" else fault.status
                code = fault.code or error_code(target, status)
                message = f"Injected by devstack fault {fault.id}."
                body: dict[str, Any] = (
                    {"errors": [{"code": code, "message": message, "detail": None}]}  # distribution spec
                    if target == "dataplane"
                    else {"error": {"code": code, "message": message}}  # ARM, Event Grid
                )
                headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "throttle" else {}
                if status == 401 and target == "dataplane":  # a registry asks the client to authenticate
                    headers["WWW-Authenticate"] = 'Bearer realm="devstack",service="devstack"'
                await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

        return middleware

    # Admin API --------------------------------------------------------------------
    async def stats(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.method == "DELETE":
            self.requests = dict.fromkeys(self.requests, 0)
            return Response(status_code=204)
        return JSONResponse({"requests": self.requests})

    def _refused(self, request: Request) -> Response | None:
        # As bytes, the header's as sent (Starlette decodes a header as latin-1): compare_digest refuses a
        # str outside ASCII.
        presented = request.headers.get("x-devstack-admin-key", "").encode("latin-1")
        if hmac.compare_digest(presented, self._admin_key.encode()):
            return None
        return JSONResponse(
            {"error": {"code": "Unauthorized", "message": "X-Devstack-Admin-Key required"}}, 401
        )

    async def remove(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        kept = [rule for rule in self._rules if rule.id != request.path_params["id"]]
        if len(kept) == len(self._rules):
            return JSONResponse({"error": {"code": "NotFound", "message": "no such fault"}}, 404)
        self._rules = kept
        self._release(request.path_params["id"])
        return Response(status_code=204)

    def _release(self, *rule_ids: str) -> None:
        for rule_id in rule_ids:
            # The held requests keep their reference to the event: setting it wakes them all.
            if (held := self._holds.pop(rule_id, None)) is not None:
                held.set()

    async def admin(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.method == "GET":
            return JSONResponse({"value": [asdict(rule) for rule in self._rules]})
        if request.method == "DELETE":
            self._release(*(rule.id for rule in self._rules))
            self._rules.clear()
            return Response(status_code=204)
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            names = {"target", "kind", "path", "method", "status", "retry_after", "delay_ms", "count", "code"}
            unknown = set(body) - names
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            rule = Fault(**body)
        except (ValueError, TypeError, re.error) as exc:
            return JSONResponse({"error": {"code": "InvalidFault", "message": str(exc)}}, 400)
        self._rules.append(rule)
        return JSONResponse(asdict(rule), status_code=201)
