"""Index a v2 FunctionApp from the metadata azure-functions exposes, and invoke its functions.

Everything is driven by `app.get_functions()`: each `Function`'s `get_function_json()` (the bindings
the real host reads), `get_trigger()` and `get_user_function()`. Whatever the host cannot serve is
collected and reported together at start-up, naming the function and the binding.

Functions come out in the order the host keeps them, by name, ignoring case (FunctionMetadataManager
orders its metadata with StringComparer.OrdinalIgnoreCase); the HTTP routes are then created in that
order, as WebScriptHostHttpRoutesManager does, and tried in that order for every request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import json
import logging
import re
import sys
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc

from .bindings import TriggerInput, annotation_problem, decode
from .config import resolve_expression
from .errors import HostError
from .ncrontab import CronError, CronSchedule
from .routes import RouteError, RouteTemplate

log = logging.getLogger("devstack.host")

SUPPORTED_TRIGGERS = ("httpTrigger", "eventGridTrigger", "queueTrigger", "timerTrigger")
SUPPORTED_OUTPUTS = ("http ($return of an HTTP trigger)", "queue")
# ScriptHost.ValidateHttpFunction: a route whose text (trimmed of '/', lower-cased) starts with these is
# refused, whatever the route prefix: "administration" too.
RESERVED_PREFIXES = ("admin", "runtime")
RESERVED_ROUTE = "The specified route conflicts with one or more built in routes."
CONFLICTING_ROUTE = "The route specified conflicts with the route defined by function '{0}'."
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")  # fullmatch: `$` passes a final \n
_IDENTITY_SUFFIXES = ("__queueServiceUri", "__serviceUri", "__accountName", "__credential")


class FunctionFailed(Exception):
    """An invocation failed: the user function raised, timed out, or its output could not be delivered."""


@dataclass(frozen=True)
class QueueTarget:
    """A storage queue as a binding names it: the connection setting, its value, the resolved queue."""

    connection_setting: str
    connection_string: str
    queue_name: str


@dataclass(frozen=True)
class OutputBinding:
    name: str  # the parameter name, or "$return"
    type: str  # "http" or "queue"
    queue: QueueTarget | None = None


@dataclass
class FunctionSpec:
    """One function as the host serves it."""

    name: str
    user_function: Callable[..., Any]
    is_async: bool
    trigger_type: str
    trigger_param: str
    trigger_annotation: Any
    outputs: list[OutputBinding] = field(default_factory=list)
    return_binding: OutputBinding | None = None
    wants_context: bool = False
    # HTTP
    route_text: str = ""  # the binding's route, or the function name when it has none
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None
    auth_level: str = "FUNCTION"
    # queue trigger
    queue: QueueTarget | None = None
    # timer trigger
    schedule: CronSchedule | None = None
    run_on_startup: bool = False
    use_monitor: bool | None = None


def load_app(module_name: str) -> func.FunctionRegister:
    """Import the app module and find its one FunctionApp, as the Python worker does."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HostError(f"cannot import the function app module {module_name!r}: {exc!r}") from exc
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if not apps:
        raise HostError(f"{module_name!r} defines no FunctionApp (func.FunctionApp or func.AsgiFunctionApp)")
    if len(apps) > 1:
        raise HostError(
            f"{module_name!r} defines {len(apps)} FunctionApp instances; the host indexes exactly one"
        )
    return apps[0]


def _connection(setting: str, environ: Mapping[str, str], where: str) -> tuple[str, str]:
    """(setting, connection string), looked up as the storage extension does: NAME, then AzureWebJobsNAME."""
    for candidate in (setting, f"AzureWebJobs{setting}"):
        value = environ.get(candidate)
        if value:
            return candidate, value
    if any(f"{setting}{suffix}" in environ for suffix in _IDENTITY_SUFFIXES):
        raise HostError(
            f"{where}: connection {setting!r} is identity-based ({setting}__...); the devstack host needs a "
            f"connection string in the app setting {setting!r} (devstack's env exports one for Azurite)"
        )
    raise HostError(f"{where}: the connection app setting {setting!r} is not set")


def _queue_target(binding: Mapping[str, Any], environ: Mapping[str, str], where: str) -> QueueTarget:
    raw = str(binding.get("queueName") or "")
    if "{" in raw:
        raise HostError(f"{where}: binding expressions in queue names ({raw!r}) are not supported")
    # The storage extension lower-cases the resolved name, then validates it.
    name = resolve_expression(raw, environ, where).lower()
    if not _QUEUE_NAME.fullmatch(name):
        raise HostError(f"{where}: {name!r} is not a valid queue name")
    setting, connection = _connection(str(binding.get("connection") or "AzureWebJobsStorage"), environ, where)
    return QueueTarget(setting, connection, name)


def _annotations(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:
        # Unresolvable forward references: treat the parameters as unannotated.
        return {}


def _compile(function: func.Function, environ: Mapping[str, str]) -> FunctionSpec:
    name = function.get_function_name() or function.get_user_function().__name__
    user_function = function.get_user_function()
    bindings: list[dict[str, Any]] = json.loads(function.get_function_json())["bindings"]
    trigger = function.get_trigger()
    if trigger is None:
        raise HostError(f"function {name!r} has no trigger")
    trigger_type = trigger.get_binding_name()
    problems = []
    if function.get_setting("retry_policy") is not None:
        problems.append(
            f"function {name!r}: retry policies (@app.retry) are not supported by the devstack host"
        )
    if trigger_type not in SUPPORTED_TRIGGERS:
        problems.append(
            f"function {name!r}: trigger binding {trigger.name!r} of type {trigger_type!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_TRIGGERS)})"
        )
    trigger_json = next(b for b in bindings if b["name"] == trigger.name and b["type"] == trigger_type)
    hints = _annotations(user_function)
    spec = FunctionSpec(
        name=name,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        trigger_type=trigger_type,
        trigger_param=trigger.name,
        trigger_annotation=hints.get(trigger.name),
    )
    for binding in bindings:
        if binding is trigger_json:
            continue
        binding_name, binding_type = binding["name"], binding["type"]
        where = f"function {name!r}, binding {binding_name!r} ({binding_type})"
        direction = str(binding.get("direction", "")).lower()
        if direction != "out":
            problems.append(f"{where}: input bindings are not supported by the devstack host")
        elif binding_type == "http" and trigger_type == "httpTrigger" and binding_name == "$return":
            spec.return_binding = OutputBinding(binding_name, "http")
        elif binding_type == "queue":
            try:
                output = OutputBinding(binding_name, "queue", _queue_target(binding, environ, where))
            except HostError as exc:
                problems.append(str(exc))
                continue
            if binding_name == "$return":
                spec.return_binding = output
            else:
                spec.outputs.append(output)
        else:
            problems.append(
                f"{where}: this output binding is not supported by the devstack host "
                f"(supported: {', '.join(SUPPORTED_OUTPUTS)})"
            )
    where = f"function {name!r}, trigger {trigger.name!r} ({trigger_type})"
    try:
        if trigger_type == "httpTrigger":
            _compile_http(spec, trigger_json, where)
        elif trigger_type == "queueTrigger":
            spec.queue = _queue_target(trigger_json, environ, where)
        elif trigger_type == "timerTrigger":
            _compile_timer(spec, trigger_json, environ, where)
    except HostError as exc:
        problems.append(str(exc))
    problems.extend(_check_parameters(spec, bindings))
    wrong = annotation_problem(name, trigger.name, trigger_type, spec.trigger_annotation)
    if wrong is not None:
        # The worker's FunctionLoadError: in Azure the function does not load.
        problems.append(f"function {name!r}: {wrong}")
    if problems:
        raise HostError("\n".join(problems))
    return spec


def _compile_http(spec: FunctionSpec, binding: Mapping[str, Any], where: str) -> None:
    route = binding.get("route")
    # ScriptHost.ValidateHttpFunction: no route (or only blanks) means the function's name. Nothing else
    # is trimmed: the route is joined to the prefix as it is (see build_routes).
    spec.route_text = str(route) if route is not None and str(route).strip() else spec.name
    methods = binding.get("methods")
    if methods:
        chosen = frozenset(str(method).upper() for method in methods)
        unknown = chosen - HTTP_METHODS
        if unknown:
            raise HostError(f"{where}: unknown HTTP method(s) {sorted(unknown)}")
        spec.methods = chosen
    spec.auth_level = str(binding.get("authLevel") or "FUNCTION").upper()
    if spec.auth_level not in ("ANONYMOUS", "FUNCTION", "ADMIN"):
        raise HostError(f"{where}: unknown auth level {spec.auth_level!r}")


def _compile_timer(
    spec: FunctionSpec, binding: Mapping[str, Any], environ: Mapping[str, str], where: str
) -> None:
    expression = resolve_expression(str(binding.get("schedule") or ""), environ, where)
    if re.fullmatch(r"\s*(\d+\.)?\d{1,2}:\d{1,2}:\d{1,2}\s*", expression):
        raise HostError(f"{where}: TimeSpan schedules ({expression!r}) are not supported; use NCRONTAB")
    try:
        spec.schedule = CronSchedule.parse(expression)
    except CronError as exc:
        raise HostError(f"{where}: {exc}") from exc
    spec.run_on_startup = bool(binding.get("runOnStartup", False))
    monitor = binding.get("useMonitor")
    spec.use_monitor = None if monitor is None else bool(monitor)


def _check_parameters(spec: FunctionSpec, bindings: list[dict[str, Any]]) -> list[str]:
    """The worker's rule: every binding is a parameter and every parameter a binding (or `context`)."""
    parameters = inspect.signature(spec.user_function).parameters
    bound = {b["name"] for b in bindings if b["name"] != "$return"}
    problems = [
        f"function {spec.name!r}: binding {missing!r} has no parameter of that name"
        for missing in sorted(bound - set(parameters))
    ]
    extra = set(parameters) - bound - {"context"}
    if extra:
        problems.append(f"function {spec.name!r}: parameter(s) {sorted(extra)} are not bound to anything")
    spec.wants_context = "context" in parameters and "context" not in bound
    return problems


def by_name(specs: Iterable[FunctionSpec]) -> list[FunctionSpec]:
    """The host's order: function names compared ordinally, ignoring case (upper-cased, as .NET does)."""
    return sorted(specs, key=lambda spec: spec.name.upper())


def _routes_conflict(first: FunctionSpec, second: FunctionSpec) -> bool:
    """ScriptHost.HttpRoutesConflict: the same route text (trimmed, any case) and a method in common."""
    if first.route_text.strip("/").lower() != second.route_text.strip("/").lower():
        return False
    return first.methods is None or second.methods is None or bool(first.methods & second.methods)


def build_routes(specs: list[FunctionSpec], route_prefix: str) -> None:
    """Create every HTTP function's route as the host does at start-up, in name order.

    ScriptHost.ValidateFunction refuses a route in the host's own space or one that conflicts with an
    earlier function's (in Azure that function is left out and logged "in error"; the devstack host
    refuses to start). Then WebJobsRouteBuilder.MapFunctionRoute joins `prefix + "/" + route` and ASP.NET
    creates the route: the first one it refuses stops the host, with ASP.NET's message.
    """
    validated: list[FunctionSpec] = []
    problems = []
    for spec in specs:
        if spec.trigger_type != "httpTrigger":
            continue
        text = spec.route_text.strip("/").lower()
        conflict = next((other for other in validated if _routes_conflict(spec, other)), None)
        if text.startswith(RESERVED_PREFIXES):
            problems.append(f"The '{spec.name}' function is in error: {RESERVED_ROUTE}")
        elif conflict is not None:
            problems.append(
                f"The '{spec.name}' function is in error: {CONFLICTING_ROUTE.format(conflict.name)}"
            )
        else:
            validated.append(spec)
    if problems:
        raise HostError("\n".join(problems))
    for spec in validated:
        template = f"{route_prefix}/{spec.route_text}" if route_prefix else spec.route_text
        try:
            spec.route = RouteTemplate(template, spec.name)
        except RouteError as exc:
            raise HostError(
                f"A host error has occurred during startup operation '{uuid.uuid4()}'.\n{exc}"
            ) from exc


def index(
    app: func.FunctionRegister,
    environ: Mapping[str, str],
    *,
    route_prefix: str = "api",
    only: Iterable[str] | None = None,
) -> list[FunctionSpec]:
    """Every function of the app (or the host.json `functions` subset) in the host's order, routes built;
    or one HostError naming every problem."""
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise HostError(f"the function app does not index: {exc}") from exc
    wanted = set(only) if only is not None else None
    specs, problems = [], []
    for function in functions:
        if wanted is not None and function.get_function_name() not in wanted:
            continue
        try:
            specs.append(_compile(function, environ))
        except HostError as exc:
            problems.append(str(exc))
    if problems:
        raise HostError("the devstack host cannot serve this app:\n  " + "\n  ".join(problems))
    ordered = by_name(specs)
    build_routes(ordered, route_prefix)
    return ordered


class OutValue(func.Out[Any]):
    """What an output binding parameter receives."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(func_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        raise AttributeError("no retry: this invocation is not a retry")


class InvocationContext(func.Context):
    """The `context` parameter: invocation id, function name and directory."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The base class annotates a type, but the worker hands out an instance; so do we.
        return typing.cast(type[threading.local], self._local)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


QueueSend = Callable[[QueueTarget, list[bytes]], typing.Awaitable[None]]


def queue_payloads(value: Any, binding: str) -> list[bytes]:
    """The messages an output value stands for: str, bytes, func.QueueMessage, or a list of those."""
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        return [payload for item in value for payload in queue_payloads(item, binding)]
    raise TypeError(f"queue output binding {binding!r} cannot send a {type(value).__name__}")


class Invoker:
    """Runs invocations: async functions on the loop, sync ones in a thread pool; outputs after success."""

    def __init__(
        self,
        *,
        timeout: float | None,
        send: QueueSend,
        function_directory: Path,
        threads: int | None = None,
    ) -> None:
        self._timeout = timeout
        self._send = send
        self._directory = str(function_directory)
        # The worker's own pool: PYTHON_THREADPOOL_THREAD_COUNT, else Python's default size.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="function")
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def invoke(self, spec: FunctionSpec, trigger: TriggerInput, reason: str) -> Any:
        invocation_id = str(uuid.uuid4())
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.monotonic()
        self._active += 1
        self._idle.clear()
        try:
            result = await self._run(spec, trigger, invocation_id)
        except FunctionFailed as exc:
            elapsed = (time.monotonic() - started) * 1000
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms): %s",
                spec.name,
                invocation_id,
                elapsed,
                exc,
                exc_info=exc.__cause__,
            )
            raise
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()
        elapsed = (time.monotonic() - started) * 1000
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", spec.name, invocation_id, elapsed
        )
        return result

    async def _run(self, spec: FunctionSpec, trigger: TriggerInput, invocation_id: str) -> Any:
        holders = {output.name: OutValue() for output in spec.outputs}
        arguments: dict[str, Any] = dict(holders)
        if spec.wants_context:
            arguments["context"] = InvocationContext(invocation_id, spec.name, self._directory)
        try:
            # The worker decodes the trigger as part of the invocation: a refused value fails it.
            arguments[spec.trigger_param] = decode(spec.trigger_type, spec.trigger_annotation, trigger)
            if spec.is_async:
                result = await asyncio.wait_for(spec.user_function(**arguments), self._timeout)
            else:
                call = functools.partial(contextvars.copy_context().run, spec.user_function, **arguments)
                future = asyncio.get_running_loop().run_in_executor(self._executor, call)
                # On timeout the thread runs on (Python cannot stop it); the invocation has failed regardless.
                result = await asyncio.wait_for(future, self._timeout)
        except TimeoutError as exc:
            raise FunctionFailed(f"timed out after {self._timeout:.0f}s (host.json functionTimeout)") from exc
        except Exception as exc:
            raise FunctionFailed(f"{type(exc).__name__}: {exc}") from exc
        try:
            for output in spec.outputs:
                value = holders[output.name].get()
                if value is not None and output.queue is not None:
                    await self._send(output.queue, queue_payloads(value, output.name))
            returned = spec.return_binding
            if returned is not None and returned.queue is not None and result is not None:
                await self._send(returned.queue, queue_payloads(result, "$return"))
        except Exception as exc:
            raise FunctionFailed(f"output binding failed: {type(exc).__name__}: {exc}") from exc
        return result

    async def drain(self, seconds: float) -> bool:
        """Wait for running invocations; False if some were still running after `seconds`."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def default_threads(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def ensure_importable(script_root: Path) -> None:
    """The worker imports the app with its script root first on sys.path."""
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
