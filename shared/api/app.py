"""The FastAPI application: routes, the one error shape, body limits, the OpenAPI document and its docs page.

Importing it loads FastAPI and pydantic only: no SDK client, no network, no policy file. Everything
else loads on the first request that needs it (shared/container.py).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from .. import web
from ..errors import DockmasterError, InvalidInput, Retryable, error_body, http_status
from .auth import OPERATE, PRINCIPAL_HEADER, READ
from .limits import MAX_CONTEXT_BYTES, MAX_JSON_BYTES, BodyLimit
from .routes import router

log = logging.getLogger("dockmaster.api")

DESCRIPTION = f"""
Dockmaster's HTTP API for other systems: list, build, run, verify, and plan and execute lab cleanup.

**Authentication.** Every endpoint but `GET /api/health` takes a function key, as the
`x-functions-key` header or the `code` query parameter. When `DOCKMASTER_API_ROLES` is true, the app
also sits behind Entra ID (App Service authentication) and checks app roles from `{PRINCIPAL_HEADER}`:
`{READ}` for reads, `{OPERATE}` for anything that builds, runs, verifies, cleans up or extends a lab.

**Registries** are named by their configured name (`GET /api/registries`), never by host.

**Long operations** (builds, runs, verifications) answer `202 Accepted` with a `Location` to poll.

**Cleanup** answers `409 Conflict` while it is turned off (`CLEANUP_ENABLED=false`). A plan deletes
nothing; executing one needs `"confirm": true` and plans again before anything is deleted.

**Errors** always look like `{{"error": {{"code": "...", "message": "...", "detail": ...}}}}`.
Bodies are limited to {MAX_JSON_BYTES} bytes ({MAX_CONTEXT_BYTES} for a build context).
"""

ERROR_CODES = {
    400: "InvalidInput",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


def _respond(error: DockmasterError) -> JSONResponse:
    headers = {"Retry-After": "5"} if isinstance(error, Retryable) else None
    return JSONResponse(error_body(error), status_code=http_status(error), headers=headers)


def _problems(errors: list[Any]) -> list[dict[str, str]]:
    problems = []
    for error in errors:
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append({"field": ".".join(str(part) for part in error.get("loc", ())), "message": message})
    return problems


async def on_dockmaster_error(request: Request, error: Exception) -> Response:
    exc = cast(DockmasterError, error)  # registered for DockmasterError only
    if http_status(exc) >= 500:
        log.warning("%s %s: %s %s", request.method, request.url.path, exc.code, exc.message)
    return _respond(exc)


async def on_validation_error(request: Request, error: Exception) -> Response:
    exc = cast(RequestValidationError | ValidationError, error)  # registered for these two only
    problems = _problems(list(exc.errors()))
    summary = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems[:5])
    return _respond(InvalidInput(f"invalid request: {summary}", detail=problems))


async def on_http_error(request: Request, error: Exception) -> Response:
    exc = cast(StarletteHTTPException, error)  # registered for HTTPException only
    if isinstance(exc.__cause__, DockmasterError):  # e.g. the body limit, hit while FastAPI read a body
        return _respond(exc.__cause__)
    if exc.status_code == 404:
        message = f"no endpoint {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.url.path} does not take {request.method}"
    else:
        message = str(exc.detail)
    code = ERROR_CODES.get(exc.status_code, "InternalError" if exc.status_code >= 500 else "InvalidInput")
    return JSONResponse({"error": {"code": code, "message": message}}, exc.status_code, headers=exc.headers)


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a 500 in the one error shape, not a bare failure
    (behind AsgiMiddleware a raised exception would lose the body)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started or scope["type"] != "http":
                raise  # a response is half sent: let the server cut the connection, so the client sees it
            response = JSONResponse(error_body(RuntimeError()), status_code=500)
            await response(scope, receive, send)


class DockmasterAPI(FastAPI):
    """FastAPI with the document tuned: function-key security, app roles, 400 (not 422) for bad input."""

    _documented = False

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        if not self._documented:
            _document(schema)
            self._documented = True
        return schema


def _document(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
        "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
    }
    schema["security"] = [{"functionKey": []}, {"functionKeyQuery": []}]
    for schemas in (components.get("schemas", {}),):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            operation.get("responses", {}).pop("422", None)
            if operation.get("security") == []:
                continue
            role = READ if method == "get" else OPERATE
            operation["x-required-role"] = role
            note = f"App role {role} when DOCKMASTER_API_ROLES is true."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()


def create_app() -> FastAPI:
    app = DockmasterAPI(
        title="Dockmaster",
        version="1.0",
        description=DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router)
    app.add_exception_handler(DockmasterError, on_dockmaster_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(BodyLimit)
    app.add_middleware(CatchAll)

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> Response:
        # The same page as /api/ui/docs (shared/web): Swagger UI from the app's own package, no CDN.
        page = web.serve("docs")
        return Response(page.body, status_code=page.status, headers=page.headers)

    return app


api = create_app()
