"""The session's devstack and the SDK clients pointed at it; a resource group, a registry, a build context."""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import stack
from tests.support.images import BUSYBOX
from tests.support.stack import (
    MAX_SOURCE_BYTES,
    Devstack,
    WiredRegistry,
    app_on_new_registry,
    remove_locks,
    unique,
)


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


@pytest.fixture
def group(resource_client: Any, lock_client: Any) -> Iterator[str]:
    """A fresh resource group, deleted (locks first) after the test."""
    name = unique("rg-test-")
    resource_client.resource_groups.create_or_update(name, {"location": "westeurope"})
    yield name
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):  # the test deleted it, maybe while we looked
        remove_locks(lock_client, name)
        resource_client.resource_groups.begin_delete(name, polling=False)


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


@pytest.fixture
def wired_registry(
    devstack: Devstack, resource_client: Any, acr_client: Any, credential: Any
) -> WiredRegistry:
    """`app_on_new_registry` on the session's stack: (prefix, policy, subscription=None, **app settings)."""
    return functools.partial(app_on_new_registry, devstack, resource_client, acr_client, credential)
