"""Shared fixtures: one devstack per test session, and the SDK clients pointed at it."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import stack
from shared.tasks import TERMINAL_STATUSES

BUSYBOX = Path("/bin/busybox")
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


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    home = tmp_path_factory.mktemp("devstack")
    variables = {
        "DEVSTACK_DELETE_DELAY": "0.5",
        "DEVSTACK_PAGE_SIZE": "5",
        "DEVSTACK_MAX_SOURCE_BYTES": str(MAX_SOURCE_BYTES),
        "DEVSTACK_EVENTGRID_DELIVERY_TIMEOUT": "3",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        endpoints = stack.up(home)
        try:
            patch.setenv("IDENTITY_ENDPOINT", str(endpoints["identityEndpoint"]))
            patch.setenv("IDENTITY_HEADER", str(endpoints["identityHeader"]))
            patch.setenv("REQUESTS_CA_BUNDLE", str(endpoints["caBundle"]))
            for key in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME", "MSI_ENDPOINT"):
                patch.delenv(key, raising=False)
            yield Devstack(home, endpoints)
        finally:
            stack.down(home)


@pytest.fixture(scope="session")
def credential(devstack: Devstack) -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@pytest.fixture(scope="session")
def resource_client(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())


@pytest.fixture(scope="session")
def lock_client(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.resource.locks import ManagementLockClient

    return ManagementLockClient(credential, devstack.subscription, **devstack.arm_kwargs())


@pytest.fixture(scope="session")
def acr_client(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    return ContainerRegistryManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())


@pytest.fixture(scope="session")
def tasks_client(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient

    return ContainerRegistryTasksMgmtClient(credential, devstack.subscription, **devstack.arm_kwargs())


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def group(resource_client: Any, lock_client: Any) -> Iterator[str]:
    """A fresh resource group, deleted (locks first) after the test."""
    name = unique("rg-test-")
    resource_client.resource_groups.create_or_update(name, {"location": "westeurope"})
    yield name
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):  # the test deleted it, maybe while we looked
        for lock in lock_client.management_locks.list_at_resource_group_level(name):
            lock_client.management_locks.delete_at_resource_group_level(name, lock.name)
        resource_client.resource_groups.begin_delete(name, polling=False)


def group_state(groups: Any, name: str) -> str | None:
    """A group's provisioning state, None once it is gone. One read: an existence check followed by a
    GET races a delete that ends between the two."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return str(groups.get(name).properties.provisioning_state)
    except ResourceNotFoundError:
        return None


@pytest.fixture(scope="session")
def registry(resource_client: Any, acr_client: Any) -> Iterator[Any]:
    """One Basic registry shared by the task tests."""
    group_name = unique("rg-tasks-")
    resource_client.resource_groups.create_or_update(group_name, {"location": "westeurope"})
    created = acr_client.registries.begin_create(
        group_name, unique("tasks"), {"location": "westeurope", "sku": {"name": "Basic"}}
    ).result()
    yield created
    resource_client.resource_groups.begin_delete(group_name, polling=False)


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


@pytest.fixture(scope="session")
def hello_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FROM-scratch build context: Debian's static busybox printing a greeting."""
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is required (make installs it): /bin/busybox is missing")
    context = tmp_path_factory.mktemp("hello")
    shutil.copy(BUSYBOX, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'ENTRYPOINT ["/bin/busybox", "echo", "Hello from Dockmaster"]\n'
    )
    return context


def wait_for_run(tasks_client: Any, registry: Any, run_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = tasks_client.runs.get(group_of(registry.id), registry.name, run_id)
        if run.status in TERMINAL_STATUSES:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


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


def error_code(error: Any) -> str:
    """The ARM error code of an azure-core HttpResponseError."""
    assert error.error is not None, f"no ARM error body in {error}"
    return str(error.error.code)
