"""The Host: loads the app, serves HTTP and the Event Grid webhook, runs queue listeners and timers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Generator, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import uvicorn
from azure.functions.http import HttpResponseConverter

from ..redact import redact, redact_logs
from . import eventgrid
from .bindings import http_input
from .config import HostConfig, apply_settings, load_local_settings
from .errors import HostError
from .functions import (
    FunctionFailed,
    FunctionSpec,
    Invoker,
    default_threads,
    ensure_importable,
    index,
    load_app,
)
from .keys import KEYS_FILE, HostKeys
from .routes import request_path
from .storage import QueueListener, Queues
from .timers import TimerRunner

log = logging.getLogger("devstack.host")

ADDRESS = "127.0.0.1"
DEFAULT_PORT = 7071
# What the real host logs as the reason of an HTTP-triggered invocation.
HTTP_REASON = "This function was programmatically called via the host APIs."

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Any  # Callable[[], Awaitable[Message]]; kept loose so any ASGI server's callables fit
Send = Any


# The host's request body limit: "The request length is limited to 100 MB (104,857,600 bytes)" (FN-HTTP,
# limits); Kestrel answers 413 past MaxRequestBodySize, whether the length is declared or chunked.
MAX_REQUEST_BODY = 104_857_600


class _BodyTooLarge(Exception):
    pass


def _declared_too_large(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > MAX_REQUEST_BODY


async def _read_body(receive: Receive) -> bytes:
    """The whole body, at most MAX_REQUEST_BODY bytes (_BodyTooLarge past it: nothing more is buffered)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None
) -> None:
    # The body is sent whole: its length is ours to state, whatever a function's headers said.
    framing = ("content-length", "transfer-encoding")
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers or []
        if name.lower() not in framing
    ]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers as the host sends them: names lower-cased, a repeated one joined with ','
    (StringValues.ToString)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _query(scope: Scope) -> dict[str, str]:
    """Request.Query: names in any case are one parameter (the first spelling kept), repeated values
    joined with ','."""
    params: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        key = spelled.setdefault(name.lower(), name)
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


# Kestrel's HttpCharacters: the characters of a Host header's host part (RFC 3986 reg-name as Http.Sys
# allows it: no "*+,;=" and no %-escapes), ASCII letters and digits.
_HOST_CHARS = frozenset("!$&'()-._~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def _port_valid(text: str) -> bool:
    return len(text) > 1 and text[0] == ":" and all("0" <= ch <= "9" for ch in text[1:])


def host_header_valid(text: str) -> bool:
    """Kestrel's HttpUtilities.IsHostHeaderValid: empty, or host[:port] with the host a reg-name of
    allowed characters or an IPv6 literal `[hex:.]` of at least `[::1]`, and the port digits only."""
    if not text:
        return True  # "The spec allows empty values"
    if text[0] == "[":
        end = text.find("]")
        if end < 4 or any(ch not in _HEX and ch not in ":." for ch in text[1:end]):
            return False
        return end + 1 == len(text) or _port_valid(text[end + 1 :])
    if text[0] == ":":
        return False  # only a port
    invalid = next((i for i, ch in enumerate(text) if ch not in _HOST_CHARS), None)
    return invalid is None or _port_valid(text[invalid:])


def host_problem(scope: Scope) -> str | None:
    """Why Kestrel would answer 400 before any routing (Http1Connection.EnsureHostHeaderExists), or None:
    no Host on HTTP/1.1, more than one, or one IsHostHeaderValid refuses."""
    hosts = [value for name, value in scope.get("headers", []) if name.lower() == b"host"]
    if not hosts:
        return None if scope.get("http_version") == "1.0" else "MissingHostHeader"
    if len(hosts) > 1:
        return "MultipleHostHeaders"
    if not host_header_valid(hosts[0].decode("latin-1")):
        return "InvalidHostHeader"
    return None


def _url(scope: Scope, headers: dict[str, str]) -> str:
    """As the host's ToRpcHttp builds it: `{scheme}://{request.Host}{request.Path}{request.QueryString}`,
    the Host as the caller sent it (Kestrel has checked it: host_problem), empty when HTTP/1.0 sent none."""
    host = headers.get("host", "")
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


def _http_reply(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """An HTTP function's return value as the host sends it: what the worker's HttpResponseConverter
    encodes (one value per header name, the last one; cookies apart) and the host writes back."""
    try:
        datum = HttpResponseConverter.encode(result, expected_type=None)
    except NotImplementedError:
        raise FunctionFailed(
            f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__} "
            "(the worker cannot encode it)"
        ) from None
    if datum.type == "string":
        return 200, [("content-type", "text/plain; charset=utf-8")], str(datum.value).encode()
    value = datum.value
    headers = [(name, str(header.value)) for name, header in value["headers"].items()]
    for cookie in value["cookies"] or []:
        headers.extend(("set-cookie", morsel.OutputString()) for morsel in cookie.values())
    return int(value["status_code"].value), headers, bytes(value["body"].value)


class _Server(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT stop the host quietly: no re-raised signal, a zero exit status."""

    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self._signalled) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def _signalled(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        self._on_exit()


class Host:
    """One Functions host for one app. Construction validates everything; `serve()`/`start()` run it.

    Construction exports the local settings into `environ` (os.environ by default), imports the app and
    indexes it: a HostError names every function and binding the host cannot serve.
    """

    def __init__(
        self,
        app: str | func.FunctionRegister = "function_app",
        *,
        port: int = DEFAULT_PORT,
        address: str = ADDRESS,
        settings: Path | None = None,
        host_json: Path | None = None,
        state_dir: Path | None = None,
        script_root: Path | None = None,
        require_webhook_key: bool = True,
        shutdown_timeout: float = 30.0,
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.port = port
        self.address = address
        self.script_root = (script_root or Path.cwd()).resolve()
        self.require_webhook_key = require_webhook_key
        self.shutdown_timeout = shutdown_timeout
        if settings is not None:
            for name in apply_settings(load_local_settings(settings), self.environ):
                log.info("Skipping '%s' from local settings as it's already defined in the environment", name)
        self.config = HostConfig.load(host_json)
        if isinstance(app, str):
            ensure_importable(self.script_root)
            self.app_name = app
            self.app = load_app(app)
        else:
            self.app_name = type(app).__name__
            self.app = app
        self.functions = index(
            self.app, self.environ, route_prefix=self.config.route_prefix, only=self.config.functions
        )
        # Tried in the host's order, by function name: the first route that matches (methods included)
        # takes the request, however specific a later one is (azure-functions-host#9876).
        self.http_functions = [spec for spec in self.functions if spec.trigger_type == "httpTrigger"]
        self.eventgrid_functions = {s.name: s for s in self.functions if s.trigger_type == "eventGridTrigger"}
        self.state_dir = (state_dir or _default_state_dir()).resolve()
        self.keys = HostKeys.load_or_create(self.state_dir)
        self._started_at = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[QueueListener] = []
        self._timers: dict[str, TimerRunner] = {}
        self._manual: set[asyncio.Task[None]] = set()
        self._invoker: Invoker | None = None
        self._queues: Queues | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- addresses -----

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def webhook_url(self, function_name: str) -> str:
        url = f"{self.url}{eventgrid.PATH}?functionName={function_name}"
        return f"{url}&code={self.keys.eventgrid}" if self.require_webhook_key else url

    # ----- ASGI -----

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            # WebSockets are not part of the Functions HTTP model.
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await self._startup()
        except Exception as exc:
            log.exception("host start-up failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self._shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def _startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._queues = Queues(self.config.queues)
        self._invoker = Invoker(
            timeout=self.config.function_timeout,
            send=self._queues.send,
            function_directory=self.script_root,
            threads=default_threads(self.environ),
        )
        for spec in self.functions:
            if spec.trigger_type == "queueTrigger":
                listener = QueueListener(spec, self._queues, self._invoker.invoke, self._stopping)
                self._listeners.append(listener)
                self._tasks.append(asyncio.create_task(listener.run(), name=f"queue:{spec.name}"))
            elif spec.trigger_type == "timerTrigger":
                runner = TimerRunner(spec, self._invoker.invoke, self.state_dir, self._stopping)
                self._timers[spec.name] = runner
                self._tasks.append(asyncio.create_task(runner.run(), name=f"timer:{spec.name}"))
        self._banner()

    def begin_shutdown(self) -> None:
        """Stop polling and timers now; safe from a signal handler or another thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        assert self._invoker is not None
        assert self._queues is not None
        self._stopping.set()
        log.info(
            "Stopping the host: no more polling; waiting up to %.0fs for invocations", self.shutdown_timeout
        )
        deadline = time.monotonic() + self.shutdown_timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        # Listeners and timers return once stopping is set (a timer after its running invocation).
        workers = [*self._tasks, *self._manual]
        done, pending = await asyncio.wait(workers, timeout=left()) if workers else (set(), set())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(each.wait_running() for each in self._listeners)), left())
        if not await self._invoker.drain(left()):
            log.warning("invocations still running at shutdown were abandoned")
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
        self._invoker.close()
        self._queues.close()
        log.info("Host stopped")

    def secrets(self) -> list[str]:
        return [self.keys.master, self.keys.function, self.keys.eventgrid]

    def _banner(self) -> None:
        lines = [
            f"Functions host for {self.app_name} (azure-functions {func.__version__}) on {self.url}",
            "Functions:",
        ]
        for spec in self.functions:
            if spec.trigger_type == "httpTrigger" and spec.route is not None:
                methods = ",".join(sorted(spec.methods)) if spec.methods else "ALL"
                url = f"{self.url}/{spec.route.template}"
                lines.append(f"    {spec.name}: [{methods}] {url} {spec.auth_level}")
            elif spec.trigger_type == "eventGridTrigger":
                lines.append(f"    {spec.name}: eventGridTrigger {self.webhook_url(spec.name)}")
            elif spec.trigger_type == "queueTrigger" and spec.queue is not None:
                lines.append(
                    f"    {spec.name}: queueTrigger queue {spec.queue.queue_name!r} "
                    f"(connection {spec.queue.connection_setting})"
                )
            elif spec.trigger_type == "timerTrigger" and spec.schedule is not None:
                upcoming = self._timers[spec.name].next_occurrences(1)
                when = upcoming[0].isoformat() if upcoming else "never"
                lines.append(f"    {spec.name}: timerTrigger {spec.schedule.expression!r} next {when}")
        # The keys stay in their 0600 file: a log is no place for them.
        lines.append(f"Keys (x-functions-key header or the code parameter): {self.state_dir / KEYS_FILE}")
        if not self.require_webhook_key:
            lines.append("The Event Grid webhook takes requests without a key (--no-webhook-key)")
        lines.append("Host started")
        print(redact("\n".join(lines), self.secrets()), flush=True)

    # ----- HTTP -----

    def _presented_key(self, headers: dict[str, str], query: dict[str, str]) -> str | None:
        return headers.get("x-functions-key") or query.get("code")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = host_problem(scope)
        if problem is not None:
            # Kestrel's bad-request answer: 400, no body, the connection closed; nothing is routed.
            log.info("400 for %s %s: %s", scope["method"], scope.get("path"), problem)
            await _respond(send, 400, headers=[("connection", "close")])
            return
        raw = scope.get("raw_path")
        path = request_path(raw.decode("latin-1")) if raw else str(scope["path"])
        method: str = scope["method"].upper()
        headers, query = _headers(scope), _query(scope)
        try:
            await self._route(scope, path, method, headers, query, receive, send)
        except _BodyTooLarge:
            log.info("413 for %s %s: the body is over %d bytes", method, path, MAX_REQUEST_BODY)
            await _respond(send, 413, headers=[("connection", "close")])

    async def _route(
        self,
        scope: Scope,
        path: str,
        method: str,
        headers: dict[str, str],
        query: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        """Keys are checked before any body is read (the host authenticates a request before an endpoint
        reads it), and a body is read only up to MAX_REQUEST_BODY."""
        if path.rstrip("/") == eventgrid.PATH:
            await self._eventgrid(method, headers, query, receive, send)
            return
        if path in ("", "/"):
            await _respond(
                send, 200, b"Functions host is running\n", [("content-type", "text/plain; charset=utf-8")]
            )
            return
        if path.startswith(("/admin/", "/runtime/")):
            await self._admin(method, path, headers, query, receive, send)
            return
        for spec in self.http_functions:
            assert spec.route is not None
            params = spec.route.match(path)
            if params is None or (spec.methods is not None and method not in spec.methods):
                continue
            if not self.keys.allows(spec.auth_level, self._presented_key(headers, query)):
                log.info(
                    "401 for %s %s: function %s needs a key (auth level %s)",
                    method,
                    path,
                    spec.name,
                    spec.auth_level,
                )
                await _respond(send, 401)
                return
            # An ASGI app too is a function here: the worker invokes it and AsgiMiddleware adapts it.
            await self._function(spec, scope, headers, query, params, receive, send)
            return
        await _respond(send, 404)

    async def _function(
        self,
        spec: FunctionSpec,
        scope: Scope,
        headers: dict[str, str],
        query: dict[str, str],
        params: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        assert self._invoker is not None
        if _declared_too_large(headers):
            raise _BodyTooLarge
        body = await _read_body(receive)
        length = headers.get("content-length", "")
        request = http_input(
            method=scope["method"].upper(),
            url=_url(scope, headers),
            headers=headers,
            query=query,
            params=params,
            # Only a request that declares its length has a body the host passes on (no chunked upload).
            body=body if length.isdigit() and int(length) > 0 else None,
        )
        try:
            result = await self._invoker.invoke(spec, request, HTTP_REASON)
        except FunctionFailed:
            await _respond(send, 500)  # the invoker has logged why
            return
        try:
            status, reply_headers, reply = _http_reply(result)
        except FunctionFailed as exc:
            log.error("Function '%s' answered 500: %s", spec.name, exc)
            await _respond(send, 500)
            return
        await _respond(send, status, reply, reply_headers)

    async def _eventgrid(
        self, method: str, headers: dict[str, str], query: dict[str, str], receive: Receive, send: Send
    ) -> None:
        assert self._invoker is not None
        authorized = not self.require_webhook_key or self.keys.allows_webhook(
            self._presented_key(headers, query)
        )
        if not authorized:
            await _respond(send, 401)  # before the body: nothing of an unauthenticated caller is buffered
            return
        if _declared_too_large(headers):
            raise _BodyTooLarge
        body = await _read_body(receive)
        reply = await eventgrid.handle(
            method=method,
            headers=headers,
            query=query,
            body=body,
            functions=self.eventgrid_functions,
            invoke=self._invoker.invoke,
            authorized=authorized,
        )
        await _respond(send, reply.status, reply.body, reply.headers)

    async def _admin(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        query: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        """The two admin APIs worth having locally: host status, and running a timer function now."""
        if not self.keys.allows("ADMIN", self._presented_key(headers, query)):
            await _respond(send, 401)  # before the body: nothing of an unauthenticated caller is buffered
            return
        if _declared_too_large(headers):
            raise _BodyTooLarge
        await _read_body(receive)
        if path.rstrip("/") == "/admin/host/status" and method == "GET":
            uptime = int((time.monotonic() - self._started_at) * 1000)
            body = f'{{"state": "Running", "version": "devstack", "processUptime": {uptime}}}'.encode()
            await _respond(send, 200, body, [("content-type", "application/json")])
            return
        name = path.rstrip("/").removeprefix("/admin/functions/")
        if path.startswith("/admin/functions/") and method == "POST" and "/" not in name:
            runner = self._timers.get(name)
            if runner is None:
                known = any(spec.name == name for spec in self.functions)
                message = (
                    "only timer functions run through this API here" if known else f"no function {name!r}"
                )
                await _respond(
                    send, 400 if known else 404, message.encode(), [("content-type", "text/plain")]
                )
                return
            # Kept referenced until done: the loop holds tasks only weakly.
            task = asyncio.create_task(runner.fire(past_due=False, reason="Manual", scheduled=False))
            self._manual.add(task)
            task.add_done_callback(self._manual.discard)
            await _respond(send, 202)
            return
        await _respond(send, 404)

    # ----- running -----

    def _uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self,
            host=self.address,
            port=self.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(self.shutdown_timeout),
        )

    async def serve(self) -> None:
        """Serve until SIGTERM/SIGINT (main thread) or stop()."""
        self._server = _Server(self._uvicorn_config(), self.begin_shutdown)
        await self._server.serve()
        if not self._server.started:
            raise HostError(f"the host did not start on {self.url} (see the log above)")

    def start(self, timeout: float = 30.0) -> None:
        """Run in a background thread (for tests); returns once the host answers."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as exc:
                errors.append(exc)

        self._thread = threading.Thread(target=run, name="functions-host", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server is not None and self._server.started:
                return
            if not self._thread.is_alive():
                raise HostError(f"the host stopped during start-up: {errors[0] if errors else 'unknown'}")
            time.sleep(0.02)
        self.stop()
        raise HostError(f"the host did not start within {timeout:.0f}s")

    def stop(self) -> None:
        if self._server is not None:
            self.begin_shutdown()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.shutdown_timeout + 10)


def _default_state_dir() -> Path:
    # Imported late: the stack module is only needed for where devstack keeps its state.
    from devstack.stack import default_home

    return default_home() / "host"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.host",
        description="Serve a Python v2 Functions app locally: HTTP, Event Grid webhook, queues, timers.",
    )
    parser.add_argument(
        "--app", default="function_app", help="module defining the FunctionApp (default: function_app)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port on {ADDRESS} (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--settings", type=Path, help="local.settings.json (default: ./local.settings.json if present)"
    )
    parser.add_argument("--host-json", type=Path, help="host.json (default: ./host.json if present)")
    parser.add_argument("--state-dir", type=Path, help="keys and timer status (default: $DEVSTACK_HOME/host)")
    parser.add_argument("--script-root", type=Path, help="directory the app is imported from (default: .)")
    parser.add_argument(
        "--no-webhook-key",
        action="store_true",
        help="accept Event Grid webhook requests without the system key (Azure always requires it)",
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, default=30.0, help="seconds to finish invocations on stop"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # The storage SDK logs every request at INFO; queue polling would drown the functions' own logs.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    root = (args.script_root or Path.cwd()).resolve()
    settings = args.settings or _if_exists(root / "local.settings.json")
    host_json = args.host_json or _if_exists(root / "host.json")
    try:
        host = Host(
            args.app,
            port=args.port,
            settings=settings,
            host_json=host_json,
            state_dir=args.state_dir,
            script_root=root,
            require_webhook_key=not args.no_webhook_key,
            shutdown_timeout=args.shutdown_timeout,
        )
        redact_logs(host.secrets())  # the app's own logs included: they share the root logger
        asyncio.run(host.serve())
    except HostError as exc:
        print(f"devstack host: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _if_exists(path: Path) -> Path | None:
    return path if path.exists() else None
