"""The devstack handle and what the tests make on it: resource groups, registries, the app wired to events."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import stack

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # small on the test stack, so an oversize upload is cheap


@dataclass(frozen=True)
class Devstack:
    home: Path
    endpoints: dict[str, Any]

    @property
    def arm(self) -> str:
        return str(self.endpoints["armEndpoint"])

    @property
    def subscription(self) -> str:
        return str(self.endpoints["subscriptionId"])

    def arm_kwargs(self) -> dict[str, Any]:
        # A sovereign-cloud style configuration: the endpoint and its audience.
        return {"base_url": self.arm, "credential_scopes": [f"{self.arm}/.default"]}


def remove_locks(lock_client: Any, group: str) -> None:
    """Every lock of a group and of what it holds (the group's listing shows both), where it sits."""
    for lock in lock_client.management_locks.list_at_resource_group_level(group):
        scope = str(lock.id)[: str(lock.id).lower().rindex("/providers/microsoft.authorization/locks/")]
        lock_client.management_locks.delete_by_scope(scope, lock.name)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def group_state(groups: Any, name: str) -> str | None:
    """A group's provisioning state, None once it is gone. One read: an existence check followed by a
    GET races a delete that ends between the two."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return str(groups.get(name).properties.provisioning_state)
    except ResourceNotFoundError:
        return None


def group_of(resource_id: str) -> str:
    return resource_id.split("/")[4]


def new_registry(resource_client: Any, acr_client: Any, prefix: str, **properties: Any) -> Any:
    """A Basic registry in a resource group of its own (delete `group_of(registry.id)` afterwards)."""
    group = unique(f"rg-{prefix}-")
    resource_client.resource_groups.create_or_update(group, {"location": "westeurope"})
    body: dict[str, Any] = {"location": "westeurope", "sku": {"name": "Basic"}}
    if properties:
        body["properties"] = properties
    return acr_client.registries.begin_create(group, unique(prefix), body).result()


def error_code(error: Any) -> str:
    """The ARM error code of an azure-core HttpResponseError."""
    assert error.error is not None, f"no ARM error body in {error}"
    return str(error.error.code)


@dataclass(frozen=True)
class WiredApp:
    """function_app on the local host as a stack service, the registry's events subscribed to it."""

    name: str  # the service's name: stack.stop_service(devstack.home, name)
    port: int
    url: str
    webhook: str
    settings: dict[str, str]
    table_name: str


def wire_app(
    devstack: Devstack,
    credential: Any,
    registry: Any,
    policy: Path,
    subscription: dict[str, Any] | None = None,
    **overrides: str,
) -> WiredApp:
    """As `make run` does, with a verdict table and run queue of its own; `subscription` overrides
    properties of the event subscription (a dead-letter destination, a retry policy)."""
    from azure.mgmt.eventgrid import EventGridManagementClient

    from devstack import devapp
    from devstack.host.keys import HostKeys

    table_name = f"verdicts{uuid.uuid4().hex[:8]}"
    settings = devapp.app_settings(
        devstack.endpoints,
        [registry.id],
        DOCKMASTER_POLICY_PATH=str(policy),
        DOCKMASTER_VERDICTS_TABLE=table_name,
        DOCKMASTER_RUNS_QUEUE=f"runs-{uuid.uuid4().hex[:8]}",
        **overrides,
    )
    name, port = f"host-{uuid.uuid4().hex[:6]}", stack.free_port()
    url = devapp.start_host(devstack.home, settings, port=port, name=name)
    keys = HostKeys.load_or_create(devstack.home / name)
    webhook = f"{url}/runtime/webhooks/eventgrid?functionName=on_image_event&code={keys.eventgrid}"
    eventgrid = EventGridManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())
    devapp.wire_events({"eventgrid": eventgrid}, registry, webhook, **(subscription or {}))
    return WiredApp(name, port, url, webhook, settings, table_name)


@contextlib.contextmanager
def app_on_new_registry(
    devstack: Devstack,
    resource_client: Any,
    acr_client: Any,
    credential: Any,
    prefix: str,
    policy: Path,
    subscription: dict[str, Any] | None = None,
    **overrides: str,
) -> Iterator[tuple[Any, WiredApp]]:
    """A registry of its own (`new_registry`) wired to the app (`wire_app`); afterwards the app's host is
    stopped and the registry's group deleted."""
    registry = new_registry(resource_client, acr_client, prefix)
    app = wire_app(devstack, credential, registry, policy, subscription, **overrides)
    try:
        yield registry, app
    finally:
        stack.stop_service(devstack.home, app.name)
        resource_client.resource_groups.begin_delete(group_of(registry.id), polling=False)


# The `wired_registry` fixture: app_on_new_registry with the stack and its clients given.
WiredRegistry = Callable[..., AbstractContextManager[tuple[Any, WiredApp]]]


def wait_until(condition: Callable[[], object], timeout: float, message: str) -> None:
    """Poll `condition` until it holds; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
