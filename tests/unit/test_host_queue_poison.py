"""The order of a poison move, as the storage extension does it: log, copy to `<queue>-poison`, delete.

Whoever waits for the message in the poison queue (a test, an operator's alert) must find the log line
already written; logging after the move made `test_message_that_is_not_base64_goes_to_poison` read the
host's log before the line was there, under load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.queue import QueueMessage

from devstack.host.config import QueueOptions
from devstack.host.functions import FunctionFailed, FunctionSpec, QueueTarget
from devstack.host.storage import QueueListener, Queues

CONNECTION = "UseDevelopmentStorage=true"


class RecordingQueue:
    """The two calls a poison move makes, recorded in the order they happen, beside the log lines."""

    def __init__(self, name: str, happened: list[str]) -> None:
        self.name = name
        self.happened = happened

    def send_message(self, content: str) -> None:
        self.happened.append(f"send to {self.name}: {content}")

    def delete_message(self, message_id: str, pop_receipt: str) -> None:
        self.happened.append(f"deleted in {self.name}: {message_id}")

    def update_message(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a poison message is not released")


class Recorder(logging.Handler):
    def __init__(self, happened: list[str]) -> None:
        super().__init__()
        self.happened = happened

    def emit(self, record: logging.LogRecord) -> None:
        self.happened.append(f"log: {record.getMessage()}")


@pytest.fixture
def happened() -> Iterator[list[str]]:
    lines: list[str] = []
    logger = logging.getLogger("devstack.host")
    handler = Recorder(lines)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def handle(happened: list[str], content: str, dequeue_count: int) -> None:
    async def failing(spec: FunctionSpec, trigger: Any, reason: str) -> None:
        happened.append("invoked")
        raise FunctionFailed("the function raised")

    queues = Queues(QueueOptions(max_dequeue_count=3))
    work, poison = RecordingQueue("work", happened), RecordingQueue("work-poison", happened)
    queues._clients[(CONNECTION, "work-poison")] = poison  # type: ignore[assignment]
    queues._created.add((CONNECTION, "work-poison"))
    spec = FunctionSpec(
        name="on_work",
        user_function=lambda message: None,
        is_async=False,
        trigger_type="queueTrigger",
        trigger_param="message",
        trigger_annotation=str,
        queue=QueueTarget("Storage", CONNECTION, "work"),
    )

    async def run() -> None:
        listener = QueueListener(spec, queues, failing, asyncio.Event())
        message = QueueMessage(content, id="m1", pop_receipt="p1", dequeue_count=dequeue_count)
        await listener._handle(work, message)  # type: ignore[arg-type]

    asyncio.run(run())


def test_a_message_that_cannot_be_decoded_is_logged_then_moved(happened: list[str]) -> None:
    handle(happened, "this is {not base64", dequeue_count=1)
    assert happened == [
        "log: Message decoding has failed! Check MessageEncoding settings. MessageId=m1.",
        "log: Message has reached MaxDequeueCount of 3. Moving message to queue 'work-poison'.",
        "send to work-poison: this is {not base64",
        "deleted in work: m1",
    ]


def test_the_last_failed_delivery_is_logged_then_moved(happened: list[str]) -> None:
    handle(happened, "aGVsbG8=", dequeue_count=3)
    assert happened == [
        "invoked",
        "log: Message has reached MaxDequeueCount of 3. Moving message to queue 'work-poison'.",
        "send to work-poison: aGVsbG8=",
        "deleted in work: m1",
    ]
