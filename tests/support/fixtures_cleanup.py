"""A cleanup environment per test: its groups are deleted, locks first, after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cleanup import Env
from tests.support.stack import Devstack


@pytest.fixture
def env(devstack: Devstack, resource_client: Any, lock_client: Any) -> Iterator[Env]:
    made = Env(devstack, resource_client, lock_client)
    yield made
    made.cleanup()
