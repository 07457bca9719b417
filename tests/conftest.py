"""Hooks for the whole suite; the fixtures come from the plugins in tests/support (one definition each)."""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = [
    "tests.support.fixtures_stack",
    "tests.support.fixtures_verification",
    "tests.support.fixtures_faults",
    "tests.support.fixtures_cleanup",
]

# Tests whose outcome depends on how threads, processes and deliveries interleave (redelivery, restarts,
# outages, the host's listeners, Event Grid's retries): `make stress` runs them round after round on a
# busy machine, where a timing assumption breaks first.
CONCURRENCY_HEAVY = (
    "tests/reliability/",
    "tests/e2e/test_push_to_verdict.py",
    "tests/integration/test_host.py",
    "tests/integration/test_verification.py",
    "tests/integration/test_eventgrid.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Fail loudly rather than skip when an engine is missing: CI must never pass on skipped coverage.
    if os.environ.get("CI") and not shutil.which("podman"):
        raise pytest.UsageError("podman is missing on CI: make test installs it")
    for item in items:
        if item.nodeid.startswith(CONCURRENCY_HEAVY):
            item.add_marker(pytest.mark.concurrency)
        # Whatever needs the stack, directly or through another fixture: `-m "not devstack"` is the fast loop.
        if "devstack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.devstack)
