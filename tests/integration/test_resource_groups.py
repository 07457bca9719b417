"""ARM resource groups and locks through azure-mgmt-resource, against the emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from tests.support.stack import error_code, unique


def raw(client: Any, devstack: Any, method: str, path: str, **kwargs: Any) -> Any:
    """A request through the SDK's own pipeline (auth, TLS), for inputs the models won't build."""
    return client._client.send_request(HttpRequest(method, devstack.arm + path, **kwargs))


def test_create_get_update_and_tags(resource_client: Any, group: str) -> None:
    created = resource_client.resource_groups.create_or_update(
        group, {"location": "westeurope", "tags": {"purpose": "lab", "owner": "ci"}}
    )
    assert created.tags == {"purpose": "lab", "owner": "ci"}
    fetched = resource_client.resource_groups.get(group)
    assert (fetched.name, fetched.location, fetched.properties.provisioning_state) == (
        group,
        "westeurope",
        "Succeeded",
    )
    assert fetched.id.endswith(f"/resourceGroups/{group}")
    updated = resource_client.resource_groups.update(group, {"tags": {"purpose": "prod"}})
    assert updated.tags == {"purpose": "prod"}
    assert resource_client.resource_groups.check_existence(group)


def test_managed_by_is_kept(resource_client: Any, group: str) -> None:
    resource_client.resource_groups.create_or_update(group, {"location": "westeurope", "managedBy": "/x/y"})
    assert resource_client.resource_groups.get(group).managed_by == "/x/y"


def test_missing_group_is_arm_404(resource_client: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        resource_client.resource_groups.get("does-not-exist")
    assert error_code(caught.value) == "ResourceGroupNotFound"
    assert not resource_client.resource_groups.check_existence("does-not-exist")


def test_list_filters_by_tag_and_pages(resource_client: Any) -> None:
    marker = unique("m")
    names = [unique("rg-page-") for _ in range(7)]
    for index, name in enumerate(names):
        tags = {"batch": marker, "parity": "even" if index % 2 == 0 else "odd"}
        resource_client.resource_groups.create_or_update(name, {"location": "westeurope", "tags": tags})
    try:
        by_name = resource_client.resource_groups.list(
            filter=f"tagName eq 'batch' and tagValue eq '{marker}'"
        )
        pages = list(by_name.by_page())
        assert len(pages) == 2, "page size is 5 on the test stack: seven groups need a nextLink"
        assert sorted(g.name for page in pages for g in page) == sorted(names)
        even = resource_client.resource_groups.list(filter="tagName eq 'parity' and tagValue eq 'even'")
        assert {g.name for g in even} >= {names[0], names[2], names[4], names[6]}
        top = list(resource_client.resource_groups.list(top=3, filter="tagName eq 'batch'").by_page())
        assert all(len(list(page)) <= 3 for page in top)
    finally:
        for name in names:
            resource_client.resource_groups.begin_delete(name, polling=False)


def test_delete_is_an_arm_lro(resource_client: Any) -> None:
    name = unique("rg-del-")
    resource_client.resource_groups.create_or_update(name, {"location": "westeurope"})
    poller = resource_client.resource_groups.begin_delete(name)
    # No wait: the group is visibly deleting, then gone once the poller completes.
    assert resource_client.resource_groups.get(name).properties.provisioning_state == "Deleting"
    poller.result()
    assert poller.status() == "Succeeded"
    assert not resource_client.resource_groups.check_existence(name)


def test_lock_blocks_deletion(resource_client: Any, lock_client: Any, group: str) -> None:
    lock = lock_client.management_locks.create_or_update_at_resource_group_level(
        group, "keep", {"level": "CanNotDelete", "notes": "shared lab"}
    )
    assert lock.level == "CanNotDelete"
    assert [item.name for item in lock_client.management_locks.list_at_resource_group_level(group)] == [
        "keep"
    ]
    with pytest.raises(HttpResponseError) as caught:
        resource_client.resource_groups.begin_delete(group)
    assert caught.value.status_code == 409
    assert error_code(caught.value) == "ScopeLocked"
    assert resource_client.resource_groups.get(group).properties.provisioning_state == "Succeeded"
    lock_client.management_locks.delete_at_resource_group_level(group, "keep")
    assert list(lock_client.management_locks.list_at_resource_group_level(group)) == []
    resource_client.resource_groups.begin_delete(group).result()


def test_a_group_being_deleted_refuses_a_patch(resource_client: Any, devstack: Any) -> None:
    name = unique("rg-patch-del-")
    resource_client.resource_groups.create_or_update(name, {"location": "westeurope"})
    poller = resource_client.resource_groups.begin_delete(name)
    url = f"/subscriptions/{devstack.subscription}/resourcegroups/{name}?api-version=2025-04-01"
    response = raw(resource_client, devstack, "PATCH", url, json={"tags": {"a": "b"}})
    poller.result()
    assert response.status_code == 409, response.text
    assert response.json()["error"] == {
        "code": "ResourceGroupBeingDeleted",
        "message": f"The resource group '{name}' is in deprovisioning state and cannot perform this "
        "operation.",
    }


def test_read_only_lock_blocks_writes(resource_client: Any, lock_client: Any, group: str) -> None:
    lock_client.management_locks.create_or_update_at_resource_group_level(group, "ro", {"level": "ReadOnly"})
    with pytest.raises(HttpResponseError) as caught:
        resource_client.resource_groups.update(group, {"tags": {"a": "b"}})
    assert error_code(caught.value) == "ScopeLocked"


def test_bad_lock_level(lock_client: Any, group: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        lock_client.management_locks.create_or_update_at_resource_group_level(group, "x", {"level": "Maybe"})
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PUT", "/resourcegroups/bad*name!", {"location": "x"}, 400, "InvalidResourceGroup"),
        ("PUT", "/resourcegroups/lab%0A", {"location": "x"}, 400, "InvalidResourceGroup"),
        ("PUT", "/resourcegroups/lab%0D", {"location": "x"}, 400, "InvalidResourceGroup"),
        ("PUT", "/resourcegroups/no-location", {}, 400, "LocationRequired"),
        ("PUT", "/resourcegroups/broken", None, 400, "InvalidRequestContent"),
    ],
)
def test_bad_input_gets_arm_errors(
    resource_client: Any, devstack: Any, method: str, path: str, body: Any, status: int, code: str
) -> None:
    url = f"/subscriptions/{devstack.subscription}{path}?api-version=2025-04-01"
    kwargs: dict[str, Any] = {"json": body} if body is not None else {"content": b"{not json"}
    response = raw(
        resource_client, devstack, method, url, headers={"Content-Type": "application/json"}, **kwargs
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_api_version_and_subscription_checks(resource_client: Any, devstack: Any) -> None:
    base = f"/subscriptions/{devstack.subscription}/resourcegroups"
    missing = raw(resource_client, devstack, "GET", base)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    unknown = raw(resource_client, devstack, "GET", base + "?api-version=1999-01-01")
    assert unknown.status_code == 400
    assert "supported api-versions" in unknown.json()["error"]["message"]
    other = raw(
        resource_client,
        devstack,
        "GET",
        "/subscriptions/00000000-0000-0000-0000-000000000009/resourcegroups?api-version=2025-04-01",
    )
    assert (other.status_code, other.json()["error"]["code"]) == (404, "SubscriptionNotFound")


def test_requests_without_a_token_are_refused(devstack: Any) -> None:
    import ssl

    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=devstack.endpoints["caBundle"])) as client:
        url = f"{devstack.arm}/subscriptions/{devstack.subscription}/resourcegroups?api-version=2025-04-01"
        anonymous = client.get(url)
        forged = client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "AuthenticationFailed")
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_managed_identity_endpoint_checks_its_header(devstack: Any) -> None:
    import httpx

    endpoint = devstack.endpoints["identityEndpoint"]
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert httpx.get(endpoint, params=params).status_code == 401
    good = httpx.get(
        endpoint, params=params, headers={"X-IDENTITY-HEADER": devstack.endpoints["identityHeader"]}
    )
    assert good.status_code == 200
    assert int(good.json()["expires_on"]) > time.time()


def test_an_identity_header_outside_ascii_is_a_wrong_header(devstack: Any) -> None:
    import httpx

    endpoint = devstack.endpoints["identityEndpoint"]
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    wrong = httpx.get(endpoint, params=params, headers={"X-IDENTITY-HEADER": "wrong"})
    assert wrong.status_code == 401
    accented = httpx.get(endpoint, params=params, headers={b"X-IDENTITY-HEADER": "cl\u00e9".encode()})
    assert (accented.status_code, accented.json()) == (401, wrong.json())


def test_paging_survives_deletions_between_pages(resource_client: Any) -> None:
    marker = unique("m")
    names = sorted(unique("rg-stable-") for _ in range(6))
    for name in names:
        resource_client.resource_groups.create_or_update(
            name, {"location": "westeurope", "tags": {"batch": marker}}
        )
    try:
        pages = resource_client.resource_groups.list(
            filter=f"tagName eq 'batch' and tagValue eq '{marker}'", top=2
        )
        iterator = pages.by_page()
        first = [g.name for g in next(iterator)]
        resource_client.resource_groups.begin_delete(first[0]).result()  # gone before the next page is read
        rest = [g.name for page in iterator for g in page]
        assert sorted(first + rest) == names, "nothing skipped or repeated"
    finally:
        for name in names:
            if resource_client.resource_groups.check_existence(name):
                resource_client.resource_groups.begin_delete(name, polling=False)


def test_a_groups_resources_are_listed(
    resource_client: Any, acr_client: Any, devstack: Any, group: str
) -> None:
    """Resources_ListByResourceGroup: the group's top-level resources as GenericResourceExpanded; an
    unknown group is ARM's 404; `$filter` (its own grammar, not sent by the app) is refused."""
    resource_client.resource_groups.create_or_update(group, {"location": "westeurope"})
    assert list(resource_client.resources.list_by_resource_group(group)) == []
    name = unique("held")
    body = {"location": "westeurope", "sku": {"name": "Basic"}, "tags": {"team": "a"}}
    acr_client.registries.begin_create(group, name, body).result()
    (found,) = resource_client.resources.list_by_resource_group(group)
    assert (found.type, found.name, found.location, found.tags, found.sku.name) == (
        "Microsoft.ContainerRegistry/registries",
        name,
        "westeurope",
        {"team": "a"},
        "Basic",
    )
    assert found.id.lower().endswith(
        f"/resourcegroups/{group}/providers/microsoft.containerregistry/registries/{name}".lower()
    )
    with pytest.raises(ResourceNotFoundError):
        list(resource_client.resources.list_by_resource_group(unique("absent")))
    path = f"/subscriptions/{devstack.subscription}/resourceGroups/{group}/resources"
    refused = raw(
        resource_client, devstack, "GET", path, params={"api-version": "2022-09-01", "$filter": "x"}
    )
    assert refused.status_code == 400
