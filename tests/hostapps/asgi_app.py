"""A Starlette app served the way Dockmaster's HTTP API is (function_app.py): one FUNCTION-level function
on route "{*route}" handing each request to azure.functions' AsgiMiddleware, which buffers both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import azure.functions as func
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


async def get_item(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.url.path,
            "id": request.path_params["id"],
            "query": dict(request.query_params),
            "function": request.scope.get("azure_functions.function_name"),
        }
    )


async def echo(request: Request) -> Response:
    return Response(await request.body(), status_code=201, media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"part {number}\n".encode()

    return StreamingResponse(parts(), media_type="text/plain")


api = Starlette(
    routes=[
        Route("/api/items/{id}", get_item),
        Route("/api/echo", echo, methods=["POST"]),
        Route("/api/stream", stream),
    ]
)
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
http = func.AsgiMiddleware(api)  # type: ignore[no-untyped-call]  # azure-functions leaves it untyped


@app.route(route="{*route}", methods=list(func.HttpMethod))
async def http_app_func(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    response: func.HttpResponse = await http.handle_async(req, context)
    return response
