"""Health: liveness, and with `deep` the reachability of storage, ARM and each registry's login server.

The deep check is anonymous, so its answers name no host, key or internal detail, and repeated calls
within HEALTH_CACHE_SECONDS reuse the last answer.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import clients
from .config import RegistryRef
from .errors import AccessDenied, DockmasterError, from_azure

PROBE_TIMEOUT = 3.0  # seconds per request of a probe
HEALTH_BUDGET = 5.0  # seconds for all probes together
HEALTH_CACHE_SECONDS = 10.0  # deep checks are anonymous: repeated calls reuse the last answer


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str  # table | arm | registry
    status: str  # ok | failing | timeout | skipped
    latency_ms: float | None = None
    error: str | None = None


_health_cache: dict[str, tuple[float, list[Probe]]] = {}
_health_lock = threading.Lock()


def reset() -> None:
    _health_cache.clear()


def _failure(exc: BaseException) -> str:
    """A short reason that names no host, key or internal detail (the deep check is anonymous), from the
    same table that classifies every Azure failure (shared/errors.py)."""
    from azure.core.exceptions import AzureError

    if isinstance(exc, _ProbeFailed):
        return str(exc)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, AzureError):
        exc = from_azure(exc, "probe", service="the dependency", role="its role")
    if isinstance(exc, AccessDenied):
        return "refused the app's identity" if status else "no token for this dependency"
    if isinstance(exc, DockmasterError):
        return f"answered HTTP {status} ({exc.code})" if status else exc.code
    return type(exc).__name__


class _ProbeFailed(Exception):
    """A dependency answered, but not as a healthy one does."""


def _probe_registry(ref: RegistryRef) -> None:
    from .container import get_container

    container = get_container()
    container.login_server(ref)
    status = container.registry_data(ref).ping(PROBE_TIMEOUT)
    if status not in (200, 401):  # /v2/ answers 401 to a caller without a token: the server is up
        raise _ProbeFailed(f"answered HTTP {status}")


def _probes() -> list[tuple[str, str, Callable[[], object]]]:
    from .container import get_container
    from .verdicts import VerdictStore

    refs = list(get_container().settings.registries.values())
    fast = {"retry_total": 0, "connection_timeout": PROBE_TIMEOUT, "read_timeout": PROBE_TIMEOUT}
    probes: list[tuple[str, str, Callable[[], object]]] = [
        ("storage", "table", lambda: VerdictStore(clients.table_client()).ping(PROBE_TIMEOUT))
    ]
    if refs:
        first = refs[0]
        probes.append(
            (
                "arm",
                "arm",
                lambda: clients.registry_management(first.subscription).registries.get(
                    first.group, first.name, **fast
                ),
            )
        )
    probes += [(f"registry:{ref.name}", "registry", functools.partial(_probe_registry, ref)) for ref in refs]
    return probes


def _run_probe(name: str, kind: str, check: Callable[[], object]) -> Probe:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        return Probe(name, kind, "failing", elapsed, _failure(exc))
    return Probe(name, kind, "ok", round((time.perf_counter() - started) * 1000, 1))


def health(deep: bool) -> tuple[bool, list[Probe]]:
    """Liveness; deep: storage, ARM and each registry's login server, in parallel, within a budget."""
    if not deep:
        return True, []
    with _health_lock:
        cached = _health_cache.get("deep")
        if cached and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
            return all(p.status == "ok" for p in cached[1]), cached[1]
        probes = _probes()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="health")
        futures = [pool.submit(_run_probe, *probe) for probe in probes]
        concurrent.futures.wait(futures, timeout=HEALTH_BUDGET)
        pool.shutdown(wait=False, cancel_futures=True)
        results = [
            future.result()
            if future.done()
            else Probe(name, kind, "timeout", HEALTH_BUDGET * 1000, f"no answer within {HEALTH_BUDGET:.0f}s")
            for future, (name, kind, _) in zip(futures, probes, strict=True)
        ]
        _health_cache["deep"] = (time.monotonic(), results)
    return all(p.status == "ok" for p in results), results
