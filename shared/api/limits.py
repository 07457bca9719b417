"""Request body limits, enforced before and while a body streams in; errors in the one error shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ..errors import InvalidInput, LengthRequired, PayloadTooLarge, UnsupportedMediaType, error_body

__all__ = ["MAX_CONTEXT_BYTES", "MAX_JSON_BYTES", "PayloadTooLarge", "UnsupportedMediaType"]

MAX_CONTEXT_BYTES = 100 * 1024 * 1024  # a build context; Azure Functions refuses larger HTTP requests anyway
MAX_JSON_BYTES = 64 * 1024  # every other body


def limit_for(method: str, path: str) -> int:
    return MAX_CONTEXT_BYTES if method == "POST" and path.rstrip("/").endswith("/builds") else MAX_JSON_BYTES


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", detail={"limitBytes": limit})


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing it as soon as it passes `limit` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


Scope = dict[str, Any]


class BodyLimit:
    """ASGI middleware: refuse a declared Content-Length over the route's limit before reading anything,
    and stop a body (chunked or lying) the moment it passes the limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"])
        sent = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = sent.get(b"content-length")
        error: InvalidInput | None = None
        if declared is None and b"chunked" in sent.get(b"transfer-encoding", b"").lower():
            # The Functions host passes a request body to the worker only with a Content-Length
            # (azure-functions-host#7930): a chunked body would arrive empty, so say so instead.
            error = LengthRequired(
                "send the request body with a Content-Length: chunked bodies are not supported"
            )
        elif declared is not None:
            if not declared.isdigit():
                error = InvalidInput("the Content-Length header is not a number")
            elif int(declared) > limit:
                error = too_large(limit)
        if error is not None:
            body = json.dumps(error_body(error)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited, send)
