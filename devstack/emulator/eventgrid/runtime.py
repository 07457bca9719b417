"""What Event Grid's background work shares: its tasks, keyed by what they work on, and one HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

log = logging.getLogger("devstack.eventgrid")


class FinishOperation(Protocol):
    """Ends a long-running ARM operation (the emulator's `finish_operation`)."""

    def __call__(self, operation: str, status: str, error: dict[str, str] | None = None) -> None: ...


class TaskKind(enum.Enum):
    DELIVERY = "deliver"  # drives one pending delivery record
    VALIDATION = "validate"  # a subscription's handshake
    EXPIRY = "expire"  # fails a subscription whose validationUrl was not used in time


@dataclass(frozen=True)
class TaskKey:
    kind: TaskKind
    resource_id: str  # lower case: ARM ids are case-insensitive

    @classmethod
    def of(cls, kind: TaskKind, resource_id: str) -> TaskKey:
        return cls(kind, resource_id.lower())

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.resource_id}"


class BackgroundTasks:
    """At most one running task per key: a new one replaces (cancels) the one before."""

    def __init__(self) -> None:
        self._tasks: dict[TaskKey, asyncio.Task[None]] = {}

    def spawn(self, key: TaskKey, coroutine: Coroutine[Any, Any, None]) -> None:
        self.cancel(key)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is finished:
                del self._tasks[key]
            if not finished.cancelled() and finished.exception() is not None:
                log.error("Event Grid task %s crashed", key, exc_info=finished.exception())

        task.add_done_callback(done)

    def cancel(self, key: TaskKey) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


class WebhookClient:
    """The HTTP client of deliveries and handshakes, made on first use (it trusts devstack's CA)."""

    def __init__(self, ca_cert: Path, timeout: float, max_concurrency: int) -> None:
        self.ca_cert = ca_cert
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            context = ssl.create_default_context()
            if self.ca_cert.exists():
                context.load_verify_locations(cafile=str(self.ca_cert))
            self._http = httpx.AsyncClient(
                verify=context,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self.max_concurrency + 16, max_keepalive_connections=16),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
