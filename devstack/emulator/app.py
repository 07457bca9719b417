"""Assemble the emulator: ARM over HTTPS, managed identity over HTTP, data-plane listeners."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import callers
from .acr.front import Fronts
from .acr.listeners import close, listen
from .arm import lock_routes, registries, resources, tasks
from .arm.records import KIND_REGISTRY
from .arm.routing import ArmRouter
from .config import EmulatorConfig
from .errors import ArmError
from .eventgrid import handlers as eventgrid
from .eventgrid import notifications
from .eventgrid.model import KIND_SYSTEM_TOPIC, KIND_TOPIC
from .service import Emulator
from .webhooks import WebhookSink

log = logging.getLogger("devstack.emulator")


def build_router(emu: Emulator) -> ArmRouter:
    router = ArmRouter()
    kinds = (KIND_REGISTRY, KIND_TOPIC, KIND_SYSTEM_TOPIC)  # what a group can hold in devstack
    resources.ResourceGroupsApi(emu.groups, emu.operations, emu.config, kinds).register(router)
    lock_routes.LocksApi(emu.locks, emu.groups, emu.store, emu.config).register(router)
    registries.RegistriesApi(emu.registries, emu.operations, emu, emu.config).register(router)
    tasks.TasksApi(emu.registries, emu.runs, emu.config).register(router)
    eventgrid.register(router, emu.groups, emu.operations, emu.eventgrid, emu.store, emu.config)
    return router


def arm_app(emu: Emulator) -> Starlette:
    router = build_router(emu)

    async def dispatch(request: Request) -> Response:
        try:
            # The decoded path as sent: `request.url` goes through urlsplit, which drops \n, \r and \t
            # (so `lab%0A` would become the group `lab`), where ARM refuses the name.
            route, params = router.match(request.method, request.scope["path"])
            router.check_api_version(request, route)
            claims = emu.tokens.check_arm(request.headers.get("authorization"), emu.config.arm_endpoint)
            callers.CURRENT.set(callers.of_request(request, claims, emu.config.arm_endpoint))
            if "sub" in params:
                emu.groups.check_subscription(params["sub"])
            return await route.handler(request, **params)
        except ArmError as exc:
            return exc.response()
        except Exception:  # a bug answers 500 in ARM's shape, never a dropped connection
            log.exception("unhandled error for %s %s", request.method, request.url.path)
            return ArmError(
                500, "InternalServerError", "The server encountered an internal error."
            ).response()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        emu.fronts = Fronts(emu)
        identity = await listen(
            emu.faults.wrap(identity_app(emu), "identity"), emu.config.host, emu.config.identity_port
        )
        await emu.start()
        try:
            yield
        finally:
            close(*identity)
            await emu.stop()
            await emu.fronts.close()

    methods = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"]
    return Starlette(
        routes=[
            Route("/_devstack/health", health),
            # Topic publishing and validation URLs, outside ARM.
            *eventgrid.data_routes(emu.eventgrid, emu.tokens.decode),
            Route("/_devstack/faults", emu.faults.admin, methods=["GET", "POST", "DELETE"]),
            Route("/_devstack/faults/{id}", emu.faults.remove, methods=["DELETE"]),
            Route("/_devstack/stats", emu.faults.stats, methods=["GET", "DELETE"]),
            # Teams and Slack incoming webhooks, recorded (webhooks.py).
            *WebhookSink(emu.faults._refused).routes(),
            Route("/{path:path}", dispatch, methods=methods),
        ],
        lifespan=lifespan,
    )


def identity_app(emu: Emulator) -> Starlette:
    """Managed identity, App Service protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER)."""

    async def token(request: Request) -> Response:
        # App Service answers a missing or wrong header 401 (azure-sdk-for-js#11595). Compared as the
        # header's bytes as sent (Starlette decodes a header as latin-1): compare_digest refuses a str
        # outside ASCII.
        header = request.headers.get("x-identity-header", "").encode("latin-1")
        if not hmac.compare_digest(header, emu.config.identity_header.encode()):
            return JSONResponse(
                {"statusCode": 401, "message": "The X-IDENTITY-HEADER is missing or invalid."}, 401
            )
        resource = request.query_params.get("resource")
        if not resource:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "resource is required"}, 400
            )
        client_id = request.query_params.get("client_id") or "devstack-client"
        access_token, expires = emu.tokens.issue(resource, client_id=client_id)
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )

    return Starlette(routes=[Route("/msi/token", token), *notification_routes(emu)])


def notification_routes(emu: Emulator) -> list[BaseRoute]:
    """docker-registry's notifications, turned into the registries' Event Grid events."""
    handler = notifications.RegistryNotifications(
        emu.store, emu.eventgrid.publish, emu.config.registry_storage
    )
    return notifications.routes(handler, emu.config.signing_key)


def serve(config: EmulatorConfig) -> None:
    emu = Emulator(config)
    uvicorn.run(
        emu.faults.wrap(arm_app(emu), "arm"),
        host=config.host,
        port=config.arm_port,
        ssl_certfile=str(config.tls_cert),
        ssl_keyfile=str(config.tls_key),
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
