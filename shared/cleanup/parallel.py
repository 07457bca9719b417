"""A few ARM requests at a time: cleanup's one way of doing the same work on many groups."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TypeVar

CONCURRENCY = 8  # ARM requests in flight at once (lock checks, tag writes, deletes)

T = TypeVar("T")
R = TypeVar("R")


def each(work: Callable[[T], R], items: Sequence[T], concurrency: int = CONCURRENCY) -> list[R]:
    """`work` on every item, a few at a time, results in order; the first error propagates."""
    if len(items) <= 1:
        return [work(item) for item in items]
    workers = min(concurrency, len(items))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cleanup") as pool:
        return list(pool.map(work, items))
