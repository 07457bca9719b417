"""The e2e modules' app: function_app on the local host, a registry's events wired to it, podman logged in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient

from devstack import stack
from tests.support.e2e import App, podman_logged_in
from tests.support.paths import POLICY
from tests.support.stack import group_of, new_registry, wire_app


@pytest.fixture(scope="module")
def app(
    devstack: Any,
    resource_client: Any,
    acr_client: Any,
    credential: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[App]:
    registry = new_registry(resource_client, acr_client, "e2e", adminUserEnabled=True)
    group = group_of(registry.id)
    wired = wire_app(devstack, credential, registry, POLICY)

    podman = podman_logged_in(devstack, acr_client, registry, tmp_path_factory.mktemp("podman-e2e"))
    table = TableClient.from_connection_string(
        devstack.endpoints["storageConnectionString"], wired.table_name
    )
    yield App(registry, wired.url, wired.webhook, table, podman, devstack, wired.settings)
    stack.stop_service(devstack.home, wired.name)
    resource_client.resource_groups.begin_delete(group, polling=False)
