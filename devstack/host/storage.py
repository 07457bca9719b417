"""Storage queues: the queue trigger's listener and the queue output binding, as the storage extension (v5)
does them.

- Messages are base64 on the wire (host.json `extensions.queues.messageEncoding`, default base64); a
  message that is not valid base64 goes straight to the poison queue, as the extension does (its
  MessageDecodingFailed handler).
- A batch (`batchSize`) is fetched invisible for ten minutes and the lease is renewed while the function
  runs; the next batch is fetched once no more than `newBatchThreshold` messages are still running.
- Success deletes the message. Failure makes it visible again after `visibilityTimeout`; the failure of
  its `maxDequeueCount`-th delivery moves it to `<queue>-poison` (created on demand) instead.
- An empty queue backs off exponentially with jitter from 100 ms up to `maxPollingInterval`; a message
  this host writes to a queue it listens to wakes that listener at once (the host's shared queue watcher).
- The SDK's client is synchronous (its async one needs aiohttp): every call runs in a worker thread.
- The function gets what the worker makes of the host's data and trigger metadata (bindings.py): the
  message text, Id, PopReceipt, DequeueCount and the times, through azure-functions' own converter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from .bindings import TriggerInput, queue_input
from .config import MIN_POLLING_INTERVAL, QueueOptions
from .functions import FunctionFailed, FunctionSpec, QueueTarget

log = logging.getLogger("devstack.host")

LEASE_SECONDS = 600  # the extension's fetch visibility: ten minutes, renewed at half-time


class Queues:
    """Queue clients by (connection, queue), the queues known to exist, and the listeners to wake."""

    def __init__(self, options: QueueOptions) -> None:
        self.options = options
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._created: set[tuple[str, str]] = set()
        self._watchers: dict[tuple[str, str], list[asyncio.Event]] = {}

    def client(self, connection: str, queue: str) -> QueueClient:
        key = (connection, queue)
        if key not in self._clients:
            self._clients[key] = QueueClient.from_connection_string(connection, queue)
        return self._clients[key]

    async def ensure(self, connection: str, queue: str) -> QueueClient:
        client = self.client(connection, queue)
        if (connection, queue) not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await asyncio.to_thread(client.create_queue)
            self._created.add((connection, queue))
        return client

    def encode(self, payload: bytes) -> str:
        if self.options.message_encoding == "base64":
            return base64.b64encode(payload).decode("ascii")
        return payload.decode("utf-8")

    def decode(self, content: str) -> bytes:
        if self.options.message_encoding == "base64":
            return base64.b64decode(content, validate=True)
        return content.encode("utf-8")

    async def send(self, target: QueueTarget, payloads: list[bytes]) -> None:
        """The queue output binding: the queue is created if missing, each message encoded."""
        client = await self.ensure(target.connection_string, target.queue_name)
        for payload in payloads:
            await asyncio.to_thread(client.send_message, self.encode(payload))
        for event in self._watchers.get((target.connection_string, target.queue_name), []):
            event.set()

    def watch(self, target: QueueTarget) -> asyncio.Event:
        event = asyncio.Event()
        self._watchers.setdefault((target.connection_string, target.queue_name), []).append(event)
        return event

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


Invoke = Callable[[FunctionSpec, TriggerInput, str], Awaitable[Any]]


class QueueListener:
    """Polls one queue for one function until stopped."""

    def __init__(self, spec: FunctionSpec, queues: Queues, invoke: Invoke, stopping: asyncio.Event) -> None:
        assert spec.queue is not None
        self.spec = spec
        self.target: QueueTarget = spec.queue
        self._queues = queues
        self._options = queues.options
        self._invoke = invoke
        self._stopping = stopping
        self._wake = queues.watch(self.target)
        self._running: set[asyncio.Task[None]] = set()
        self._missing_logged = False

    @property
    def poison_queue(self) -> str:
        return f"{self.target.queue_name}-poison"

    async def run(self) -> None:
        client = self._queues.client(self.target.connection_string, self.target.queue_name)
        delay = MIN_POLLING_INTERVAL
        while not self._stopping.is_set():
            while len(self._running) > self._options.new_batch_threshold and not self._stopping.is_set():
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            messages = await self._fetch(client)
            if self._stopping.is_set():
                # Fetched during shutdown: leave them for the next start (they reappear after the lease).
                await self._release_all(client, messages)
                break
            for message in messages:
                task = asyncio.create_task(self._process(client, message))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if messages:
                delay = MIN_POLLING_INTERVAL
                wait = MIN_POLLING_INTERVAL
            else:
                delay = min(delay * 2, self._options.max_polling_interval)
                wait = random.uniform(delay / 2, delay)  # noqa: S311 (jitter, not security)
            await self._sleep(wait)
            if self._wake.is_set():
                self._wake.clear()
                delay = MIN_POLLING_INTERVAL

    async def wait_running(self) -> None:
        if self._running:
            await asyncio.wait(set(self._running))

    async def _sleep(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _fetch(self, client: QueueClient) -> list[QueueMessage]:
        def receive() -> list[QueueMessage]:
            return list(
                client.receive_messages(
                    messages_per_page=self._options.batch_size,
                    max_messages=self._options.batch_size,
                    visibility_timeout=LEASE_SECONDS,
                )
            )

        try:
            messages = await asyncio.to_thread(receive)
        except ResourceNotFoundError:
            # The extension does not create a trigger queue: it waits for one to appear.
            if not self._missing_logged:
                log.warning(
                    "queue %r does not exist yet (function %s)", self.target.queue_name, self.spec.name
                )
                self._missing_logged = True
            return []
        except Exception as exc:
            # Logged without a traceback: an unreachable Azurite would otherwise flood the log every poll.
            log.error(
                "polling queue %r failed (function %s): %s", self.target.queue_name, self.spec.name, exc
            )
            return []
        self._missing_logged = False
        return messages

    async def _release_all(self, client: QueueClient, messages: list[QueueMessage]) -> None:
        for message in messages:
            try:
                await asyncio.to_thread(client.update_message, message, visibility_timeout=0)
            except Exception:
                log.exception("could not release message %s", message.id)

    async def _process(self, client: QueueClient, message: QueueMessage) -> None:
        try:
            await self._handle(client, message)
        except Exception:
            # Storage trouble while completing: the message reappears after its lease and is retried.
            log.exception("could not complete message %s on queue %r", message.id, self.target.queue_name)

    async def _handle(self, client: QueueClient, message: QueueMessage) -> None:
        dequeue_count = int(message.dequeue_count or 0)
        limit = self._options.max_dequeue_count
        if dequeue_count > limit:
            # Already failed often enough on another run of the host (or a crash mid-invocation).
            await self._poison(client, message)
            return
        try:
            body = self._queues.decode(message.content)
        except (binascii.Error, ValueError, UnicodeError):
            log.warning(
                "Message decoding has failed! Check MessageEncoding settings. MessageId=%s.", message.id
            )
            await self._poison(client, message)
            return
        lease = _Lease(client, message)
        trigger = queue_input(
            message_id=message.id,
            # The extension's QueueMessage.Body.ToString(): UTF-8, an invalid sequence replaced.
            text=body.decode("utf-8", errors="replace"),
            dequeue_count=dequeue_count,
            inserted_on=message.inserted_on,
            expires_on=message.expires_on,
            next_visible_on=message.next_visible_on,
            pop_receipt=message.pop_receipt or "",
            now=datetime.now(UTC),
        )
        renewal = asyncio.create_task(lease.keep())
        try:
            await self._invoke(self.spec, trigger, "New queue message")
            succeeded = True
        except FunctionFailed:
            succeeded = False
        finally:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)
        if succeeded:
            await asyncio.to_thread(client.delete_message, message.id, lease.pop_receipt)
        elif dequeue_count >= limit:
            await self._poison(client, message, lease.pop_receipt)
        else:
            await asyncio.to_thread(
                client.update_message,
                message.id,
                lease.pop_receipt,
                visibility_timeout=int(self._options.visibility_timeout),
            )

    async def _poison(
        self, client: QueueClient, message: QueueMessage, pop_receipt: str | None = None
    ) -> None:
        """QueueProcessor.HandlePoisonMessageAsync: log, copy, delete, in that order. The log line comes
        first, as the extension writes it (whatever the reason: a message that cannot be decoded gets
        the same words), so whoever sees the message in the poison queue finds the line already there."""
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            self.poison_queue,
        )
        poison = await self._queues.ensure(self.target.connection_string, self.poison_queue)
        # The message moves as it is, still encoded, like the extension's copy.
        await asyncio.to_thread(poison.send_message, message.content)
        await asyncio.to_thread(client.delete_message, message.id, pop_receipt or message.pop_receipt)


class _Lease:
    """Keeps a fetched message invisible while its function runs; tracks the latest pop receipt."""

    def __init__(self, client: QueueClient, message: QueueMessage) -> None:
        self._client = client
        self._id = message.id
        self.pop_receipt: str = message.pop_receipt or ""

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 2)
            updated = await asyncio.to_thread(
                self._client.update_message, self._id, self.pop_receipt, visibility_timeout=LEASE_SECONDS
            )
            self.pop_receipt = updated.pop_receipt or self.pop_receipt
