"""Dockmaster's HTTP API (FastAPI, in app.py), served by function_app.py through func.AsgiMiddleware.

function_app hands AsgiMiddleware `asgi`, which builds the FastAPI app on the first HTTP request.
Every cold start indexes function_app, the Event Grid and queue ones too; FastAPI and pydantic would
add most of a second to each (import function_app: ~0.2 s without them, ~0.9 s with them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import azure.functions as func

HEALTH_PATH = "/api/health"
EXTEND_LINK_PATH = (
    "/api/cleanup/extend-link"  # as shared/cleanup/links.py LINK_PATH (not imported: cold start)
)
MAX_LINK_BODY = 4096


class LazyAsgi:
    """An ASGI callable that imports the API when a request first needs it."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from .app import api

            self._app = api
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # The API has no start-up or shutdown work: answer the server without loading it.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


asgi = LazyAsgi()


def health_request(req: func.HttpRequest) -> func.HttpRequest:
    """The anonymous health function's request as the API must see it: GET /api/health with `deep` and
    nothing else of what arrived. The host builds a request's URL from the caller's Host header
    (scheme://Host + path + query), so a path in that header would otherwise route to any endpoint,
    without a key; headers are dropped too (health reads none)."""
    query = {"deep": req.params["deep"]} if "deep" in req.params else {}
    url = f"http://localhost{HEALTH_PATH}" + (f"?{urlencode(query)}" if query else "")
    return func.HttpRequest("GET", url, headers={}, params=query, body=b"")


def extend_link_request(req: func.HttpRequest) -> func.HttpRequest:
    """The anonymous extend-link function's request as the API must see it, for the reason health's is
    rebuilt: GET with `t` only, or POST with its form body (at most 4 KB) and no other header."""
    if req.method.upper() == "POST":
        body = req.get_body()
        form = {"content-type": "application/x-www-form-urlencoded"}
        kept = body if len(body) <= MAX_LINK_BODY else b""
        return func.HttpRequest(
            "POST", f"http://localhost{EXTEND_LINK_PATH}", headers=form, params={}, body=kept
        )
    query = {"t": req.params["t"]} if "t" in req.params else {}
    url = f"http://localhost{EXTEND_LINK_PATH}" + (f"?{urlencode(query)}" if query else "")
    return func.HttpRequest("GET", url, headers={}, params=query, body=b"")


__all__ = ["EXTEND_LINK_PATH", "HEALTH_PATH", "LazyAsgi", "asgi", "extend_link_request", "health_request"]
