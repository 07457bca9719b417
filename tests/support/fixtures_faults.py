"""devstack's admin client: the faults a test injects are all removed after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.faults import FAULTS, admin_client


@pytest.fixture
def admin(devstack: Any) -> Iterator[httpx.Client]:
    with admin_client(devstack) as client:
        yield client
        client.delete(FAULTS)
