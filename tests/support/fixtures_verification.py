"""The app's verifier in this process for the registry the session shares, and that registry's data plane."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.containerregistry import ContainerRegistryClient

from shared.verification import Verifier
from tests.support.verification import app_verifier


@pytest.fixture(scope="module")
def verifier(devstack: Any, registry: Any) -> Iterator[Verifier]:
    with app_verifier(devstack, registry) as built:
        yield built


@pytest.fixture(scope="module")
def data_client(registry: Any, credential: Any, devstack: Any) -> ContainerRegistryClient:
    return ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)
