"""Typed records of the ARM providers (resource groups, locks, operations, registries, runs) and their ids.

A resource is what ARM returns, key for key; the emulator's own fields of a registry or a run live beside
it in a dataclass. The store keeps one JSON body per record: a resource as it is, with the emulator's
fields under `_`-prefixed keys (the data plane reads a registry's `_port` and `_passwords` there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

from ..store import public

KIND_GROUP = "resourceGroup"
KIND_LOCK = "lock"
KIND_OPERATION = "operation"
KIND_REGISTRY = "registry"
KIND_RUN = "run"
REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"
REGISTRY_PROVIDER = "/providers/Microsoft.ContainerRegistry/registries"
RUN_TYPE = "Microsoft.ContainerRegistry/registries/runs"
LOCK_TYPE = "Microsoft.Authorization/locks"


def group_id(subscription: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{name}"


def subscription_key(subscription: str) -> str:
    return f"/subscriptions/{subscription}"


def registry_id(group: str, name: str) -> str:
    return f"{group}{REGISTRY_PROVIDER}/{name}"


def parent_group(resource_id: str) -> str:
    """The resource group id a provider resource's id starts with."""
    return resource_id.rsplit("/providers/", 1)[0]


def backend_namespace(registry: Mapping[str, Any]) -> str:
    """The docker-registry namespace a registry's repositories live under: its name, lowercased."""
    return str(registry["name"]).lower()


class GroupProperties(TypedDict):
    provisioningState: str  # Succeeded, or Deleting once a delete is accepted
    operationId: NotRequired[str]  # the delete's operation, while Deleting


class ResourceGroup(TypedDict):
    id: str
    name: str
    type: str
    location: str
    tags: dict[str, str]
    properties: GroupProperties
    managedBy: NotRequired[str | None]


class LockOwner(TypedDict):
    applicationId: str


class LockProperties(TypedDict):
    level: str  # CanNotDelete or ReadOnly
    notes: NotRequired[str]
    owners: NotRequired[list[LockOwner]]


class Lock(TypedDict):
    id: str
    type: str
    name: str
    properties: LockProperties


class OperationError(TypedDict):
    code: str
    message: str


class Operation(TypedDict):
    """A long-running operation as its status URL reports it."""

    id: str
    kind: str
    target: str
    status: str  # InProgress, Succeeded or Failed
    startTime: str
    endTime: NotRequired[str]
    error: NotRequired[OperationError]
    httpStatus: NotRequired[int]


class Sku(TypedDict):
    name: str
    tier: str


class RegistryProperties(TypedDict):
    loginServer: str
    creationDate: str
    provisioningState: str  # Creating, Succeeded or Failed
    adminUserEnabled: bool
    policies: dict[str, dict[str, Any]]
    encryption: dict[str, str]
    dataEndpointEnabled: bool
    dataEndpointHostNames: list[str]
    privateEndpointConnections: list[dict[str, Any]]
    publicNetworkAccess: str
    networkRuleBypassOptions: str
    zoneRedundancy: str
    anonymousPullEnabled: bool
    roleAssignmentMode: str


class RegistryResource(TypedDict):
    id: str
    name: str
    type: str
    location: str
    tags: dict[str, str]
    sku: Sku
    properties: RegistryProperties


@dataclass
class RegistryRecord:
    """A registry and what only the emulator knows of it: the admin passwords and its front's port."""

    resource: RegistryResource
    passwords: list[str]
    port: int | None = None

    @property
    def id(self) -> str:
        return self.resource["id"]

    @property
    def name(self) -> str:
        return self.resource["name"]

    @property
    def group_id(self) -> str:
        return parent_group(self.id)

    @classmethod
    def load(cls, stored: dict[str, Any]) -> RegistryRecord:
        return cls(cast(RegistryResource, public(stored)), list(stored["_passwords"]), stored.get("_port"))

    def dump(self) -> dict[str, Any]:
        stored: dict[str, Any] = {**self.resource, "_passwords": self.passwords}
        if self.port is not None:
            stored["_port"] = self.port
        return stored


class RunProperties(TypedDict, total=False):
    runId: str
    status: str  # Queued, Running, then one of executor.TERMINAL
    lastUpdatedTime: str
    runType: str
    createTime: str
    startTime: str
    finishTime: str
    outputImages: list[dict[str, str]]
    platform: dict[str, Any]
    agentConfiguration: dict[str, Any]
    isArchiveEnabled: bool
    provisioningState: str
    runErrorMessage: str


class RunResource(TypedDict):
    id: str
    name: str
    type: str
    properties: RunProperties


@dataclass
class RunRecord:
    """A run and what only the emulator keeps of it: its registry and its timeout."""

    resource: RunResource
    registry_id: str
    timeout: int

    @property
    def id(self) -> str:
        return self.resource["id"]

    @classmethod
    def load(cls, stored: dict[str, Any]) -> RunRecord:
        resource = cast(RunResource, public(stored))
        # Older records lost `_registryId` when a run was updated: the id names the registry too.
        registry = stored.get("_registryId") or resource["id"].rsplit("/runs/", 1)[0]
        return cls(resource, registry, int(stored.get("_timeout") or 0))

    def dump(self) -> dict[str, Any]:
        return {**self.resource, "_registryId": self.registry_id, "_timeout": self.timeout}
