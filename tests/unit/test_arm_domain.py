"""The emulator's ARM providers below HTTP: resource groups and locks, registries, runs, operations."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.arm.groups import ResourceGroups
from devstack.emulator.arm.locks import Locks, ancestors
from devstack.emulator.arm.operations import Operations, polling_headers
from devstack.emulator.arm.records import KIND_REGISTRY, KIND_RUN, RegistryRecord
from devstack.emulator.arm.registry_resources import Registries
from devstack.emulator.arm.runs import Runs
from devstack.emulator.blobs import Blobs
from devstack.emulator.errors import ArmError
from devstack.emulator.store import Store
from devstack.emulator.tokens import TokenService
from devstack.executor import Executor
from tests.support.emulator import offline_config

SUB = "00000000-0000-0000-0000-0000000000aa"
OTHER_SUB = "00000000-0000-0000-0000-0000000000bb"
ARM = "https://arm.test"


@dataclass
class Arm:
    store: Store
    operations: Operations
    groups: ResourceGroups
    registries: Registries
    deletions: list[tuple[str, str, str]] = field(default_factory=list)


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[Arm]:
    store = Store(tmp_path / "emulator.sqlite")
    operations = Operations(store, ARM)
    deletions: list[tuple[str, str, str]] = []
    groups = ResourceGroups(
        store, operations, Locks(store), [SUB, OTHER_SUB], lambda *deletion: deletions.append(deletion)
    )
    yield Arm(store, operations, groups, Registries(store, groups, operations), deletions)
    store.close()


def refused(code: str, call: Any, *args: Any) -> ArmError:
    with pytest.raises(ArmError) as caught:
        call(*args)
    assert caught.value.code == code
    return caught.value


# Resource groups and locks --------------------------------------------------------------
def test_a_group_is_created_then_updated_in_its_first_location(arm: Arm) -> None:
    group, created = arm.groups.put(SUB, "Lab", {"location": "westeurope", "tags": {"purpose": "lab"}})
    assert created
    assert group["id"] == f"/subscriptions/{SUB}/resourceGroups/Lab"
    again, created = arm.groups.put(SUB, "lab", {"location": "WestEurope", "managedBy": "x"})
    assert not created
    assert again["name"] == "Lab"
    assert again["tags"] == {}
    assert again["managedBy"] == "x"
    refused("InvalidResourceGroupLocation", arm.groups.put, SUB, "lab", {"location": "eastus"})
    refused("LocationRequired", arm.groups.put, SUB, "other", {})
    refused("InvalidTag", arm.groups.put, SUB, "other", {"location": "eastus", "tags": {"n": 1}})
    refused("SubscriptionNotFound", arm.groups.get, "another", "lab")
    refused("ResourceGroupNotFound", arm.groups.get, SUB, "missing")


def test_locks_refuse_what_their_level_forbids(arm: Arm) -> None:
    group, _ = arm.groups.put(SUB, "lab", {"location": "westeurope"})
    lock, created = arm.groups.put_lock(group, "keep", {"properties": {"level": "CanNotDelete"}})
    assert created
    assert lock["properties"] == {"level": "CanNotDelete"}
    arm.groups.open_for_writes(SUB, "lab")  # CanNotDelete still lets the group change
    refused("ScopeLocked", arm.groups.begin_delete, SUB, "lab")
    arm.groups.put_lock(group, "frozen", {"properties": {"level": "ReadOnly", "notes": "why"}})
    refused("ScopeLocked", arm.groups.open_for_writes, SUB, "lab")
    refused("LockLevelInvalid", arm.groups.put_lock, group, "odd", {"properties": {"level": "Odd"}})
    assert [lock["name"] for lock in arm.groups.list_locks(SUB, "lab", None, -1)] == ["frozen", "keep"]
    assert arm.groups.delete_lock(SUB, "lab", "keep")
    assert not arm.groups.delete_lock(SUB, "lab", "keep")
    refused("LockNotFound", arm.groups.get_lock, SUB, "lab", "keep")


def test_a_lock_on_a_resource_refuses_its_groups_delete_not_its_writes(arm: Arm) -> None:
    registry = create_registry(arm)
    can_not_delete = {"properties": {"level": "CanNotDelete"}}
    arm.groups.locks.put(registry.id, "keep-registry", can_not_delete)
    error = refused("ScopeLocked", arm.groups.begin_delete, SUB, "lab")
    assert error.message == (
        f"The scope '/subscriptions/{SUB}/resourceGroups/lab' cannot perform delete operation because "
        f"following scope(s) are locked: '{registry.id}'. Please remove the lock and try again."
    )
    refused("ScopeLocked", arm.registries.deletable, SUB, "lab", "labregistry")
    arm.groups.open_for_writes(SUB, "lab")  # a lock below the group leaves the group's tags writable
    arm.registries.writable(SUB, "lab", "labregistry")  # CanNotDelete lets the registry change
    arm.groups.locks.put(registry.id, "frozen", {"properties": {"level": "ReadOnly"}})
    refused("ScopeLocked", arm.registries.writable, SUB, "lab", "labregistry")
    arm.groups.open_for_writes(SUB, "lab")
    listed = arm.groups.list_locks(SUB, "lab", None, -1)  # the group's listing shows what is below it
    assert [lock["name"] for lock in listed] == ["frozen", "keep-registry"]
    arm.groups.locks.delete(registry.id, "frozen")
    arm.groups.locks.delete(registry.id, "keep-registry")
    assert arm.groups.begin_delete(SUB, "lab")


def test_a_subscription_lock_is_inherited_by_every_group_and_resource(arm: Arm) -> None:
    registry = create_registry(arm)
    arm.groups.put(SUB, "other", {"location": "westeurope"})
    arm.groups.put(OTHER_SUB, "other", {"location": "westeurope"})
    arm.groups.locks.put(f"/subscriptions/{SUB}", "everything", {"properties": {"level": "ReadOnly"}})
    for call, args in (
        (arm.groups.begin_delete, (SUB, "other")),
        (arm.groups.open_for_writes, (SUB, "other")),
        (arm.registries.writable, (SUB, "lab", "labregistry")),
        (arm.registries.deletable, (SUB, "lab", "labregistry")),
    ):
        refused("ScopeLocked", call, *args)
    assert arm.groups.begin_delete(OTHER_SUB, "other")  # another subscription's groups are not locked
    assert ancestors(registry.id + "/runs/r1") == [
        f"/subscriptions/{SUB}",
        f"/subscriptions/{SUB}/resourceGroups/lab",
        registry.id,
    ]


def test_a_subscriptions_locks_page_in_id_order_whatever_else_it_holds(arm: Arm) -> None:
    names = [f"g{n:03d}" for n in range(30)]
    for name in names:
        group, _ = arm.groups.put(SUB, name, {"location": "westeurope"})
        if int(name[1:]) % 3 == 0:
            arm.groups.put_lock(group, "keep", {"properties": {"level": "CanNotDelete"}})
    arm.groups.put(SUB, "g1", {"location": "westeurope"})  # a prefix of other names: no lock of theirs
    assert arm.groups.list_locks(SUB, "g1", None, -1) == []
    scope, pages, after = f"/subscriptions/{SUB}", [], None
    while page := arm.groups.locks.at_and_below(scope, after, 4):
        pages.append([lock["id"].split("/")[4] for lock in page])
        after = page[-1]["id"]
    assert pages == [["g000", "g003", "g006", "g009"], ["g012", "g015", "g018", "g021"], ["g024", "g027"]]
    assert arm.groups.locks.at_and_below(f"/subscriptions/{OTHER_SUB}") == []


def test_a_group_deletion_is_accepted_once_and_ends_with_its_locks(arm: Arm) -> None:
    group, _ = arm.groups.put(SUB, "lab", {"location": "westeurope"})
    operation = arm.groups.begin_delete(SUB, "lab")
    assert arm.groups.begin_delete(SUB, "lab") == operation  # a second delete joins the first
    assert arm.deletions == [(SUB, "lab", operation)]
    assert arm.groups.deleting() == [(SUB, "lab", operation)]
    assert arm.operations.get(operation)["status"] == "InProgress"  # type: ignore[index]
    refused("ResourceGroupBeingDeleted", arm.groups.put, SUB, "lab", {"location": "westeurope"})
    arm.groups.remove(group["id"])
    assert arm.groups.find(SUB, "lab") is None
    assert arm.groups.deleting() == []


def test_a_group_being_deleted_takes_no_writes_from_any_provider(arm: Arm) -> None:
    create_registry(arm)
    assert arm.groups.open_for_writes(SUB, "LAB")["name"] == "lab"
    arm.groups.begin_delete(SUB, "lab")
    message = "The resource group 'lab' is in deprovisioning state and cannot perform this operation."
    for call, args in (
        (arm.groups.put, (SUB, "lab", {"location": "westeurope"})),
        (arm.registries.creatable_in, (SUB, "lab", "labregistry")),
        (arm.registries.writable, (SUB, "lab", "labregistry")),  # a registry's PATCH
        (
            arm.groups.open_for_writes,
            (SUB, "lab"),
        ),  # the group's PATCH, Event Grid's topics and subscriptions
    ):
        error = refused("ResourceGroupBeingDeleted", call, *args)
        assert (error.status, error.message) == (409, message)


def test_a_write_into_a_group_is_refused_for_its_deletion_before_its_locks(arm: Arm) -> None:
    group, _ = arm.groups.put(SUB, "lab", {"location": "westeurope"})
    arm.groups.put_lock(group, "frozen", {"properties": {"level": "ReadOnly"}})
    refused("ScopeLocked", arm.groups.open_for_writes, SUB, "lab")
    arm.groups.delete_lock(SUB, "lab", "frozen")
    arm.groups.begin_delete(SUB, "lab")
    arm.groups.put_lock(group, "frozen", {"properties": {"level": "ReadOnly"}})
    refused("ResourceGroupBeingDeleted", arm.groups.open_for_writes, SUB, "lab")


def test_groups_filter_by_tag_names_in_any_case_values_exactly(arm: Arm) -> None:
    arm.groups.put(SUB, "a", {"location": "x", "tags": {"Purpose": "lab"}})
    arm.groups.put(SUB, "b", {"location": "x", "tags": {"purpose": "prod", "PURPOSE": "lab"}})
    arm.groups.put(SUB, "c", {"location": "x", "tags": {"purpose": "Lab"}})
    arm.groups.put(SUB, "d", {"location": "x", "tags": {"owner": "lab"}})
    arm.groups.put(OTHER_SUB, "e", {"location": "x", "tags": {"purpose": "lab"}})

    def names(*tag: str | None, after: str | None = None, limit: int = 10) -> list[str]:
        return [g["name"] for g in arm.groups.in_subscription(SUB, (tag[0] or "", tag[1]), after, limit)]

    assert names("PURPOSE", None) == ["a", "b", "c"]
    assert names("purpose", "lab") == ["a", "b"]
    assert names("purpose", "lab", limit=1) == ["a"]
    assert names("purpose", None, after=f"/subscriptions/{SUB}/resourcegroups/a") == ["b", "c"]
    arm.groups.update(SUB, arm.groups.get(SUB, "a"), {"tags": {"purpose": "done"}})  # the index follows
    assert names("purpose", "lab") == ["b"]
    arm.groups.remove(arm.groups.get(SUB, "b")["id"])
    assert names("purpose", None) == ["a", "c"]


def test_a_store_from_before_the_tag_index_is_indexed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store = Store(path)
    store.put(
        "resourceGroup",
        f"/subscriptions/{SUB}/resourceGroups/old",
        f"/subscriptions/{SUB}",
        {"tags": {"a": "b"}},
    )
    store._db.execute("DROP TABLE tags")  # as a state directory written before the index existed
    store.close()
    reopened = Store(path)
    try:
        assert reopened.tagged("resourceGroup", f"/subscriptions/{SUB}", "A", "b", None, 10) == [
            {"tags": {"a": "b"}}
        ]
    finally:
        reopened.close()


def test_an_operation_ends_with_its_error(arm: Arm) -> None:
    operation = arm.operations.start(SUB, "createRegistry", "/x")
    arm.operations.finish(operation, "Failed", {"code": "InternalServerError", "message": "no port"})
    record = arm.operations.get(operation)
    assert record is not None
    assert record["status"] == "Failed"
    assert "endTime" in record
    assert record.get("error") == {"code": "InternalServerError", "message": "no port"}
    assert arm.operations.location_headers(SUB, operation, "2021-04-01") == {
        "Location": f"{ARM}/subscriptions/{SUB}/operationresults/{operation}?api-version=2021-04-01",
        "Retry-After": "1",
    }


def test_an_operation_status_is_shown_with_each_providers_id(arm: Arm) -> None:
    operation = arm.operations.start(SUB, "createRegistry", "/x")
    running = arm.operations.status(operation, operation)
    assert list(running) == ["id", "status", "startTime"]
    assert polling_headers(running) == {"Retry-After": "1"}
    arm.operations.finish(operation, "Failed", {"code": "InternalServerError", "message": "no port"})
    path = f"/subscriptions/{SUB}/providers/Microsoft.EventGrid/locations/westeurope/operationsStatus/x"
    ended = arm.operations.status(operation, path, name=operation)
    assert list(ended) == ["id", "name", "status", "startTime", "endTime", "error"]  # Azure's key order
    assert (ended["id"], ended.get("name"), ended["status"]) == (path, operation, "Failed")
    assert polling_headers(ended) == {}
    refused("OperationNotFound", arm.operations.status, "missing", "missing")
    refused("OperationNotFound", arm.operations.require, "missing")


def test_an_operation_can_be_over_as_it_starts(arm: Arm) -> None:
    operation = arm.operations.finished(SUB, "createTopic", "/x")
    assert arm.operations.require(operation)["status"] == "Succeeded"


# Registries ---------------------------------------------------------------------------------
def create_registry(arm: Arm, name: str = "labregistry", **properties: Any) -> RegistryRecord:
    group, _ = arm.groups.put(SUB, "lab", {"location": "westeurope"})
    body = {"location": "westeurope", "sku": {"name": "Basic"}, "properties": properties}
    registry, operation = arm.registries.create(SUB, group, name, body, "2025-11-01")
    assert operation is not None
    return registry


def test_a_new_registry_keeps_its_passwords_out_of_what_arm_shows(arm: Arm) -> None:
    registry = create_registry(arm, adminUserEnabled=True)
    assert registry.resource["properties"]["provisioningState"] == "Creating"
    assert registry.resource["properties"]["roleAssignmentMode"] == "LegacyRegistryPermissions"
    assert not any(key.startswith("_") for key in registry.resource)
    stored = arm.store.get(KIND_REGISTRY, registry.id)
    assert stored is not None
    assert stored["_passwords"] == registry.passwords  # where the data plane reads them
    assert arm.registries.credentials(SUB, "lab", "labregistry") == ("labregistry", registry.passwords)
    assert arm.registries.name_taken("LABREGISTRY")
    assert arm.registries.name_availability("labregistry")["reason"] == "AlreadyExists"
    assert arm.registries.name_availability("no")["reason"] == "Invalid"


def test_a_registry_create_refuses_what_acr_refuses(arm: Arm) -> None:
    group, _ = arm.groups.put(SUB, "lab", {"location": "westeurope"})
    refused("InvalidRegistryName", arm.registries.creatable_in, SUB, "lab", "a-b")
    body = {"location": "westeurope", "sku": {"name": "Basic"}}
    refused("InvalidSku", arm.registries.create, SUB, group, "labregistry", {**body, "sku": {}}, "2025-11-01")
    with_mode = {**body, "properties": {"roleAssignmentMode": "AbacRepositoryPermissions"}}
    refused(
        "InvalidRequestContent", arm.registries.create, SUB, group, "labregistry", with_mode, "2025-04-01"
    )
    create_registry(arm)
    other, _ = arm.groups.put(SUB, "other", {"location": "westeurope"})
    refused("AlreadyInUse", arm.registries.create, SUB, other, "LabRegistry", body, "2025-11-01")


def test_a_registry_is_provisioned_updated_and_forgotten(arm: Arm) -> None:
    registry = create_registry(arm)
    arm.registries.provisioned(registry.id, "127.0.0.1:5001", 5001)
    found = arm.registries.get(SUB, "lab", "labregistry")
    assert found.port == 5001
    assert found.resource["properties"]["loginServer"] == "127.0.0.1:5001"
    refused("AdminUserDisabled", arm.registries.credentials, SUB, "lab", "labregistry")
    body = {"tags": {"a": "b"}, "properties": {"adminUserEnabled": True}}
    arm.registries.update(arm.registries.writable(SUB, "lab", "labregistry"), body, "2025-11-01")
    assert arm.registries.get(SUB, "lab", "labregistry").resource["tags"] == {"a": "b"}
    arm.store.put("acrattributes", f"{registry.id}|repo", registry.id, {"x": 1})
    deletable = arm.registries.deletable(SUB, "lab", "labregistry")
    assert deletable is not None
    arm.registries.forget(deletable)
    assert arm.store.items("acrattributes", registry.id) == {}
    assert arm.registries.deletable(SUB, "lab", "labregistry") is None
    refused("ResourceNotFound", arm.registries.get, SUB, "lab", "labregistry")


# Runs ------------------------------------------------------------------------------------------
class NoEnvironment:
    @property
    def blobs(self) -> Blobs:
        raise AssertionError("no blob is needed here")

    @property
    def downloads_port(self) -> int:
        raise AssertionError("no download is needed here")


def runs_of(arm: Arm, home: Path) -> Runs:
    config = offline_config(home, subscription_id=SUB)
    tokens = TokenService(config.signing_key, config.tenant_id, ARM)
    return Runs(arm.store, config, tokens, Executor(1, home / "work"), NoEnvironment())


def stored_run(arm: Arm, registry: RegistryRecord, number: int, status: str) -> str:
    key = f"{registry.id}/runs/dm{number}"
    body = {
        "id": key,
        "name": f"dm{number}",
        "type": "t",
        "properties": {"runId": f"dm{number}", "status": status},
    }
    arm.store.put(KIND_RUN, key, registry.id, {**body, "_registryId": registry.id, "_timeout": 600})
    return key


def test_a_run_on_a_registry_not_ready_is_refused(arm: Arm, tmp_path: Path) -> None:
    registry = create_registry(arm)
    with pytest.raises(ArmError) as caught:
        asyncio.run(runs_of(arm, tmp_path).schedule(registry, {"type": "DockerBuildRequest"}, None))
    assert caught.value.code == "RegistryNotReady"


def test_runs_list_newest_first_and_an_update_keeps_their_registry(arm: Arm, tmp_path: Path) -> None:
    registry = create_registry(arm)
    runs = runs_of(arm, tmp_path)
    for number in (1, 2, 3):
        stored_run(arm, registry, number, "Succeeded")
    assert [run["name"] for run in runs.newest_first(registry, None)] == ["dm3", "dm2", "dm1"]
    assert [run["name"] for run in runs.newest_first(registry, 1)] == ["dm3"]
    assert runs.update(runs.get(registry, "dm2"), {"isArchiveEnabled": 1})["properties"]["isArchiveEnabled"]
    stored = arm.store.get(KIND_RUN, f"{registry.id}/runs/dm2")
    assert stored is not None
    assert stored["_registryId"] == registry.id
    refused("ResourceNotFound", runs.get, registry, "dm9")


def test_runs_a_restart_interrupted_end_in_error(arm: Arm, tmp_path: Path) -> None:
    registry = create_registry(arm)
    runs = runs_of(arm, tmp_path)
    stored_run(arm, registry, 1, "Running")
    stored_run(arm, registry, 2, "Succeeded")
    key = stored_run(arm, registry, 3, "Queued")
    stored = arm.store.get(KIND_RUN, key)
    assert stored is not None
    del stored["_registryId"]  # as an update once stored it
    arm.store.put(KIND_RUN, key, registry.id, stored)
    runs.fail_unfinished()
    statuses = {run["name"]: run["properties"]["status"] for run in runs.newest_first(registry, None)}
    assert statuses == {"dm1": "Error", "dm2": "Succeeded", "dm3": "Error"}
    assert runs.get(registry, "dm3").registry_id == registry.id
