"""HTTP routes and auth levels, Event Grid triggers and timers: what needs no storage."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import azure.functions as func

from tests.hostapps.recorder import record

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(data: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data), status_code=status, mimetype="application/json")


@app.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']}")


@app.route(route="items/{id:int}/{part?}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def item(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return _json(
        {
            "route": dict(req.route_params),
            "method": req.method,
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "url": req.url,
            "repeated": req.headers.get("x-repeated"),
        }
    )


@app.route(route="items/{slug}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_slug(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"slug": req.route_params["slug"]})


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return str(req.route_params.get("path", ""))


# The host tries routes in function-name order: "order_a_any" comes first and takes "order/literal" too.
@app.route(route="order/{*rest}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def order_a_any(req: func.HttpRequest) -> str:
    return "any"


@app.route(route="order/literal", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def order_b_literal(req: func.HttpRequest) -> str:
    return "literal"


@app.route(route="as-text", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def as_text(req: str) -> str:
    # A str parameter takes the worker's generic binding, which cannot decode an HTTP request.
    return req


@app.route(route="secret", auth_level=func.AuthLevel.FUNCTION)
def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret")


@app.route(route="default-level")
def default_level(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("app default")


# Not "admin-only": the host refuses any route that starts with "admin" (ScriptHost.ValidateHttpFunction).
@app.route(route="for-admins", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.route(route="created", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def created(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"function": context.function_name, "invocation": context.invocation_id}),
        status_code=201,
        headers={"X-Custom": "yes"},
        mimetype="application/json",
    )


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@app.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
def slow(req: func.HttpRequest) -> func.HttpResponse:
    # Sync on purpose: it must run in the thread pool while other requests are served.
    time.sleep(float(req.params.get("seconds", "1")))
    return func.HttpResponse("slept")


GATE = threading.Event()


@app.route(route="gate/wait", auth_level=func.AuthLevel.ANONYMOUS)
def wait_at_gate(req: func.HttpRequest) -> func.HttpResponse:
    # Sync on purpose: if it ran on the host's event loop, /gate/open could not be served until it gave up.
    opened = GATE.wait(float(req.params.get("seconds", "30")))
    GATE.clear()
    return func.HttpResponse("opened" if opened else "gave up")


@app.route(route="gate/open", auth_level=func.AuthLevel.ANONYMOUS)
def open_gate(req: func.HttpRequest) -> func.HttpResponse:
    GATE.set()
    return func.HttpResponse("open")


@app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    if isinstance(event, func.CloudEvent):
        record(
            "cloudevent",
            id=event.id,
            source=event.source,
            type=event.type,
            subject=event.subject,
            time=event.time.isoformat() if event.time else None,
            data=event.get_json(),
        )
        return
    record(
        "event",
        id=event.id,
        topic=event.topic,
        subject=event.subject,
        event_type=event.event_type,
        event_time=event.event_time.isoformat() if event.event_time else None,
        data_version=event.data_version,
        data=event.get_json(),
    )


@app.event_grid_trigger(arg_name="event")
async def refuse_event(event: func.EventGridEvent) -> None:
    raise RuntimeError(f"refusing {event.id}")


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", use_monitor=False)
def tick(timer: func.TimerRequest) -> None:
    record("tick", past_due=timer.past_due, at=time.time())


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
async def at_startup(timer: func.TimerRequest) -> None:
    record("startup", past_due=timer.past_due)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
def yearly(timer: func.TimerRequest) -> None:
    # schedule_status is on the runtime's TimerRequest, not on the abstract type the annotation names.
    record("yearly", past_due=timer.past_due, status=getattr(timer, "schedule_status", None))
