"""Indexing an app from azure-functions' metadata (what the host serves, what it refuses), and invoking."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.meta import Datum

from devstack.host.bindings import TriggerInput
from devstack.host.errors import HostError
from devstack.host.functions import FunctionFailed, Invoker, QueueTarget, index, queue_payloads

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_bindings_become_specs() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ADMIN)

    @app.route(route="things/{id:int}", methods=["GET"])
    def get_thing(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.function_name("renamed")
    @app.queue_trigger(arg_name="msg", queue_name="%IN%", connection="Other")
    @app.queue_output(arg_name="out", queue_name="OUT-Q", connection="AzureWebJobsStorage")
    async def consume(msg: func.QueueMessage, out: func.Out[str], context: func.Context) -> None:
        pass

    @app.timer_trigger(schedule="%SCHEDULE%", arg_name="timer", run_on_startup=True)
    def tick(timer: func.TimerRequest) -> None:
        pass

    environ = {
        **STORAGE,
        "IN": "Incoming",
        "AzureWebJobsOther": "UseDevelopmentStorage=true",
        "SCHEDULE": "0 0 * * * *",
    }
    specs = {spec.name: spec for spec in index(app, environ, route_prefix="v1")}
    http = specs["get_thing"]
    assert http.route is not None
    assert http.route.template == "v1/things/{id:int}"
    assert (http.methods, http.auth_level, http.is_async) == (frozenset({"GET"}), "ADMIN", False)
    assert http.return_binding is not None
    assert http.return_binding.type == "http"
    queue = specs["renamed"]
    assert queue.queue is not None
    # Lower-cased like the storage extension does; AzureWebJobs<name> is the fallback for a setting.
    assert (queue.queue.queue_name, queue.queue.connection_setting) == ("incoming", "AzureWebJobsOther")
    assert [(out.name, out.queue.queue_name if out.queue else None) for out in queue.outputs] == [
        ("out", "out-q")
    ]
    assert queue.is_async
    assert queue.wants_context
    timer = specs["tick"]
    assert timer.schedule is not None
    assert timer.schedule.expression == "0 0 * * * *"
    assert (timer.run_on_startup, timer.use_monitor) == (True, None)


def test_host_json_functions_list_limits_what_is_indexed() -> None:
    app = func.FunctionApp()

    @app.route(route="a")
    def a(req: func.HttpRequest) -> str:
        return "a"

    @app.route(route="b")
    def b(req: func.HttpRequest) -> str:
        return "b"

    assert [spec.name for spec in index(app, {}, only=["b"])] == ["b"]


def test_every_problem_is_reported_with_function_and_binding() -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        pass

    @app.route(route="r")
    @app.blob_input(arg_name="doc", path="c/doc", connection="AzureWebJobsStorage")
    @app.event_grid_output(arg_name="out", event_name="e", topic_endpoint_uri="U", topic_key_setting="K")
    def with_io(req: func.HttpRequest, doc: func.InputStream, out: func.Out[str]) -> str:
        return ""

    @app.queue_trigger(arg_name="msg", queue_name="%NOPE%", connection="AzureWebJobsStorage")
    def unresolved(msg: func.QueueMessage) -> None:
        pass

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="Missing")
    def no_connection(msg: func.QueueMessage) -> None:
        pass

    @app.timer_trigger(schedule="0 */5 * * *", arg_name="timer")
    def five_fields(timer: func.TimerRequest) -> None:
        pass

    @app.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:00:01")
    @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
    def retried(timer: func.TimerRequest) -> None:
        pass

    with pytest.raises(HostError) as caught:
        index(app, STORAGE)
    message = str(caught.value)
    for expected in (
        "function 'on_blob': trigger binding 'blob' of type 'blobTrigger' is not supported",
        "function 'with_io', binding 'doc' (blob): input bindings are not supported",
        "function 'with_io', binding 'out' (eventGrid): this output binding is not supported",
        "function 'unresolved', trigger 'msg' (queueTrigger): '%NOPE%' does not resolve",
        "function 'no_connection', trigger 'msg' (queueTrigger): the connection app setting 'Missing'",
        "function 'five_fields', trigger 'timer' (timerTrigger): '0 */5 * * *' is not a valid NCRONTAB",
        "function 'retried': retry policies",
    ):
        assert expected in message


def test_routes_may_not_claim_the_host_routes() -> None:
    def make() -> func.FunctionApp:
        # A FunctionApp indexes once: get_functions() remembers the names it has seen.
        app = func.FunctionApp()

        @app.route(route="admin/mine")
        def reserved(req: func.HttpRequest) -> str:
            return ""

        return app

    # ScriptHost.ValidateHttpFunction checks the route itself, not the prefixed template.
    for prefix in ("api", ""):
        with pytest.raises(
            HostError,
            match=r"The 'reserved' function is in error: The specified route conflicts with one or more",
        ):
            index(make(), {}, route_prefix=prefix)


def test_trigger_annotations_are_checked_as_the_worker_does() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
    def wrong(msg: func.HttpRequest) -> None:
        pass

    with pytest.raises(
        HostError, match=r'type of msg binding in function\.json "queueTrigger" does not match its Python'
    ):
        index(app, STORAGE)


def test_identity_based_connections_are_named() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="Jobs")
    def work(msg: func.QueueMessage) -> None:
        pass

    with pytest.raises(HostError, match="connection 'Jobs' is identity-based"):
        index(app, {"Jobs__queueServiceUri": "https://account.queue.core.windows.net"})


def test_parameters_must_match_bindings() -> None:
    app = func.FunctionApp()

    @app.route(route="r")
    def extra(req: func.HttpRequest, surprise: str) -> str:
        return ""

    with pytest.raises(HostError, match=r"parameter\(s\) \['surprise'\] are not bound"):
        index(app, {})


def test_queue_payloads() -> None:
    assert queue_payloads("text", "out") == [b"text"]
    assert queue_payloads(b"\x00", "out") == [b"\x00"]
    assert queue_payloads(["a", b"b", func.QueueMessage(body="c")], "out") == [b"a", b"b", b"c"]
    with pytest.raises(TypeError, match="cannot send a dict"):
        queue_payloads({"a": 1}, "out")


def invoker_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="$return", queue_name="results", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="audit", queue_name="audit", connection="AzureWebJobsStorage")
    def relay(msg: str, audit: func.Out[str]) -> list[str] | None:
        if msg == "fail":
            audit.set("not sent")
            raise RuntimeError("refused")
        if msg == "slow":
            time.sleep(0.5)
        audit.set(f"saw {msg}")
        return [msg.upper(), msg] if msg else None

    return app


def test_outputs_are_sent_after_success_only() -> None:
    (spec,) = index(invoker_app(), STORAGE)
    sent: list[tuple[str, list[bytes]]] = []

    async def send(target: QueueTarget, payloads: list[bytes]) -> None:
        sent.append((target.queue_name, payloads))

    def message(text: str) -> TriggerInput:
        return TriggerInput(Datum(text, "string"))

    async def scenario() -> None:
        invoker = Invoker(timeout=0.2, send=send, function_directory=Path("."))
        try:
            assert await invoker.invoke(spec, message("hi"), "test") == ["HI", "hi"]
            assert sent == [("audit", [b"saw hi"]), ("results", [b"HI", b"hi"])]
            sent.clear()
            assert await invoker.invoke(spec, message(""), "test") is None
            assert sent == [("audit", [b"saw "])]  # a None return sends nothing
            sent.clear()
            with pytest.raises(FunctionFailed, match="RuntimeError: refused"):
                await invoker.invoke(spec, message("fail"), "test")
            with pytest.raises(FunctionFailed, match="timed out"):
                await invoker.invoke(spec, message("slow"), "test")
            assert sent == []
            assert await invoker.drain(5)
        finally:
            invoker.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("name", ["jobs\n", "jobs\x00", "job\u0455"])  # \u0455: Cyrillic dze, like 's'
def test_queue_names_are_full_ascii_matches(name: str) -> None:
    from devstack.host.functions import _queue_target

    assert _queue_target({"queueName": "jobs"}, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "f")
    with pytest.raises(HostError, match="not a valid queue name"):
        _queue_target({"queueName": name}, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "f")
