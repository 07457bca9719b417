"""A Starlette app served through func.AsgiFunctionApp, as Dockmaster's HTTP API is."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import azure.functions as func
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"greeting": "started"}


async def get_item(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.url.path,
            "id": request.path_params["id"],
            "query": dict(request.query_params),
            "greeting": request.state.greeting,
        }
    )


async def echo(request: Request) -> Response:
    return Response(await request.body(), status_code=201, media_type="application/octet-stream")


api = Starlette(
    routes=[Route("/api/items/{id}", get_item), Route("/api/echo", echo, methods=["POST"])],
    lifespan=lifespan,
)
app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.FUNCTION)
