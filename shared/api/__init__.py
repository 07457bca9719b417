"""Dockmaster's HTTP API (FastAPI, in app.py), served by function_app.py through func.AsgiMiddleware.

function_app hands AsgiMiddleware `asgi`, which builds the FastAPI app on the first HTTP request.
Every cold start indexes function_app, the Event Grid and queue ones too; FastAPI and pydantic would
add most of a second to each (import function_app: ~0.2 s without them, ~0.9 s with them).
"""

from __future__ import annotations

from typing import Any


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

__all__ = ["LazyAsgi", "asgi"]
