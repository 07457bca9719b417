"""Registries through azure-mgmt-containerregistry, and the data plane through azure-containerregistry."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from devstack import stack
from devstack.emulator.arm.groups import ResourceGroups
from devstack.emulator.arm.locks import Locks
from devstack.emulator.arm.operations import Operations
from devstack.emulator.arm.registry_resources import Registries
from devstack.emulator.store import Store
from tests.support.stack import error_code, unique


def test_create_is_an_lro_with_a_login_server(acr_client: Any, group: str) -> None:
    name = unique("reg")
    poller = acr_client.registries.begin_create(
        group, name, {"location": "westeurope", "sku": {"name": "Basic"}, "tags": {"team": "a"}}
    )
    registry = poller.result()
    assert registry.provisioning_state == "Succeeded"
    assert registry.sku.name == "Basic"
    assert registry.admin_user_enabled is False
    host, _, port = registry.login_server.partition(":")
    assert host == "127.0.0.1"
    assert port.isdigit()
    assert acr_client.registries.get(group, name).id == registry.id
    assert [r.name for r in acr_client.registries.list_by_resource_group(group)] == [name]
    assert name in {r.name for r in acr_client.registries.list()}


@pytest.mark.parametrize("name", ["abcd", "has-dash", "x" * 51])
def test_name_rules(acr_client: Any, group: str, name: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        acr_client.registries.begin_create(group, name, {"location": "westeurope", "sku": {"name": "Basic"}})
    assert caught.value.status_code == 400
    assert not acr_client.registries.check_name_availability(
        {"name": name, "type": "Microsoft.ContainerRegistry/registries"}
    ).name_available


def test_names_are_globally_unique(acr_client: Any, resource_client: Any, group: str) -> None:
    name = unique("uniq")
    acr_client.registries.begin_create(
        group, name, {"location": "westeurope", "sku": {"name": "Basic"}}
    ).result()
    other = unique("rg-other-")
    resource_client.resource_groups.create_or_update(other, {"location": "westeurope"})
    try:
        with pytest.raises(ResourceExistsError) as caught:
            acr_client.registries.begin_create(
                other, name.upper(), {"location": "westeurope", "sku": {"name": "Basic"}}
            )
        assert caught.value.status_code == 409
        assert error_code(caught.value) == "AlreadyInUse"
        availability = acr_client.registries.check_name_availability(
            {"name": name, "type": "Microsoft.ContainerRegistry/registries"}
        )
        assert (availability.name_available, availability.reason) == (False, "AlreadyExists")
    finally:
        resource_client.resource_groups.begin_delete(other, polling=False)


def test_admin_credentials(acr_client: Any, group: str) -> None:
    name = unique("adm")
    acr_client.registries.begin_create(
        group,
        name,
        {"location": "westeurope", "sku": {"name": "Basic"}, "properties": {"adminUserEnabled": False}},
    ).result()
    with pytest.raises(HttpResponseError) as caught:
        acr_client.registries.list_credentials(group, name)
    assert caught.value.status_code == 400
    acr_client.registries.begin_update(group, name, {"properties": {"adminUserEnabled": True}}).result()
    credentials = acr_client.registries.list_credentials(group, name)
    assert credentials.username == name
    assert len({p.value for p in credentials.passwords}) == 2


ABAC = "AbacRepositoryPermissions"
LEGACY = "LegacyRegistryPermissions"


def basic(**properties: Any) -> dict[str, Any]:
    return {"location": "westeurope", "sku": {"name": "Basic"}, "properties": properties}


def test_role_assignment_mode_at_create_and_update(acr_client: Any, group: str) -> None:
    abac = acr_client.registries.begin_create(group, unique("abac"), basic(roleAssignmentMode=ABAC)).result()
    assert abac.role_assignment_mode == ABAC
    assert acr_client.registries.get(group, abac.name).role_assignment_mode == ABAC
    legacy = acr_client.registries.begin_create(group, unique("legacy"), basic()).result()
    assert legacy.role_assignment_mode == LEGACY, "the spec's default"
    switched = acr_client.registries.begin_update(
        group, legacy.name, {"properties": {"roleAssignmentMode": ABAC}}
    ).result()
    assert switched.role_assignment_mode == ABAC
    with pytest.raises(HttpResponseError) as caught:
        acr_client.registries.begin_create(group, unique("bad"), basic(roleAssignmentMode="Abac"))
    assert (caught.value.status_code, error_code(caught.value)) == (400, "InvalidParameter")


@pytest.mark.parametrize("version", ["2023-07-01", "2025-04-01"])
def test_role_assignment_mode_needs_an_api_version_that_has_it(
    devstack: Any, credential: Any, acr_client: Any, group: str, version: str
) -> None:
    """roleAssignmentMode is not in RegistryProperties of these versions: a request that sets it is refused,
    never answered with a registry in the legacy mode."""
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    old = ContainerRegistryManagementClient(
        credential, devstack.subscription, api_version=version, **devstack.arm_kwargs()
    )
    name = unique("old")
    with pytest.raises(HttpResponseError) as caught:
        old.registries.begin_create(group, name, basic(roleAssignmentMode=ABAC))
    assert (caught.value.status_code, error_code(caught.value)) == (400, "InvalidRequestContent")
    assert "roleAssignmentMode" in str(caught.value.message)
    with pytest.raises(ResourceNotFoundError):
        acr_client.registries.get(group, name)
    old.registries.begin_create(group, name, basic()).result()
    with pytest.raises(HttpResponseError) as caught:
        old.registries.begin_update(group, name, {"properties": {"roleAssignmentMode": ABAC}})
    assert (caught.value.status_code, error_code(caught.value)) == (400, "InvalidRequestContent")
    assert acr_client.registries.get(group, name).role_assignment_mode == LEGACY


def test_delete_registry(acr_client: Any, group: str) -> None:
    name = unique("gone")
    acr_client.registries.begin_create(
        group, name, {"location": "westeurope", "sku": {"name": "Basic"}}
    ).result()
    acr_client.registries.begin_delete(group, name).result()
    with pytest.raises(ResourceNotFoundError):
        acr_client.registries.get(group, name)


def test_a_registry_in_a_group_being_deleted_refuses_a_patch(acr_client: Any, resource_client: Any) -> None:
    group = unique("rg-patch-del-")
    resource_client.resource_groups.create_or_update(group, {"location": "westeurope"})
    name = unique("patchdel")
    acr_client.registries.begin_create(
        group, name, {"location": "westeurope", "sku": {"name": "Basic"}}
    ).result()
    poller = resource_client.resource_groups.begin_delete(group)
    with pytest.raises(HttpResponseError) as caught:
        acr_client.registries.begin_update(group, name, {"tags": {"a": "b"}})
    poller.result()
    assert caught.value.status_code == 409
    assert error_code(caught.value) == "ResourceGroupBeingDeleted"


def test_registry_in_missing_group(acr_client: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        acr_client.registries.begin_create(
            "no-such-group", unique("reg"), {"location": "x", "sku": {"name": "Basic"}}
        )
    assert error_code(caught.value) == "ResourceGroupNotFound"


def test_data_plane_requires_a_token(registry: Any, devstack: Any) -> None:
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    response = httpx.get(f"https://{registry.login_server}/acr/v1/_catalog", verify=context)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="https://{registry.login_server}/oauth2/token"')
    assert 'scope="registry:catalog:*"' in challenge
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_a_registry_still_being_created_at_a_restart_comes_up_behind_its_front(tmp_path: Path) -> None:
    """A separate stack whose state an emulator stopped mid-create left: the registry `Creating`, its
    create operation in progress. Once back, the registry is `Succeeded` behind a front and the operation
    is over (was: stuck in `Creating`, its front opened and forgotten)."""
    home = tmp_path / "stack"
    stack.make_private_home(home)
    sub = stack.load_identity(home).subscription_id
    store = Store(home / "emulator.sqlite")
    try:
        operations = Operations(store, "https://arm.invalid")
        groups = ResourceGroups(store, operations, Locks(store), [sub], lambda *deletion: None)
        group, _ = groups.put(sub, "rg-restart", {"location": "westeurope"})
        body = {"location": "westeurope", "sku": {"name": "Basic"}}
        registry, operation = Registries(store, groups, operations).create(
            sub, group, "halfmade", body, "2025-04-01"
        )
    finally:
        store.close()
    endpoints = stack.up(home)
    try:
        context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
        arm = str(endpoints["armEndpoint"])
        token = httpx.get(
            str(endpoints["identityEndpoint"]),
            params={"api-version": "2019-08-01", "resource": arm},
            headers={"X-IDENTITY-HEADER": str(endpoints["identityHeader"])},
        ).json()["access_token"]
        with httpx.Client(verify=context, headers={"Authorization": f"Bearer {token}"}) as client:
            params = {"api-version": "2025-04-01"}
            deadline = time.monotonic() + 15
            while True:
                properties = client.get(f"{arm}{registry.id}", params=params).json()["properties"]
                if properties["provisioningState"] != "Creating" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert properties["provisioningState"] == "Succeeded", properties
            status = client.get(f"{arm}{registry.id}/operationStatuses/{operation}", params=params)
            assert status.json()["status"] == "Succeeded"
            front = client.get(f"https://{properties['loginServer']}/v2/")
            assert front.status_code == 401  # the registry's front, asking for a token
    finally:
        stack.down(home)
