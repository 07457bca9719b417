"""Container registries as ARM resources: create, update, find, list, credentials, without HTTP.

Bringing a registry's front up and tearing everything of it down involve the data plane, runs and Event
Grid: the composition (service.py) does those, through `provisioned`, `failed` and `forget` here.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, TypedDict

from ..errors import ArmError, not_found, require_location
from ..store import Store
from ..timeutil import now_iso
from .groups import ResourceGroups, ensure_not_deleting
from .operations import Operations
from .records import (
    KIND_REGISTRY,
    REGISTRY_TYPE,
    RegistryProperties,
    RegistryRecord,
    RegistryResource,
    ResourceGroup,
    registry_id,
    subscription_key,
)

# roleAssignmentMode is in RegistryProperties from 2025-03-01-preview on, but not in 2025-04-01 (its
# Bicep types end at anonymousPullEnabled); of the versions served here only 2025-11-01 has it.
ROLE_ASSIGNMENT_MODE_VERSIONS = {"2025-11-01"}
ROLE_ASSIGNMENT_MODES = ("AbacRepositoryPermissions", "LegacyRegistryPermissions")
ABAC = "AbacRepositoryPermissions"
LEGACY = "LegacyRegistryPermissions"
REGISTRY_NAME = re.compile(r"[a-zA-Z0-9]{5,50}")
SKUS = {"Basic", "Standard", "Premium"}


class NameAvailability(TypedDict, total=False):
    nameAvailable: bool
    reason: str
    message: str


def role_assignment_mode(properties: dict[str, Any], version: str) -> str | None:
    """The roleAssignmentMode a create or update sets, or None when it sets none. An api-version without
    the property refuses it rather than ignore it: a registry meant to be in ABAC mode must not come up
    in the legacy one unnoticed. (Stricter than known: ARM's own answer to an unknown property here is
    not documented.)"""
    if "roleAssignmentMode" not in properties:
        return None
    if version not in ROLE_ASSIGNMENT_MODE_VERSIONS:
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Could not find member "
            f"'roleAssignmentMode' on object of type 'RegistryProperties' (api-version {version}).'",
        )
    mode = properties["roleAssignmentMode"]
    if mode not in ROLE_ASSIGNMENT_MODES:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{mode}' of roleAssignmentMode is invalid. "
            f"Allowed values: {', '.join(ROLE_ASSIGNMENT_MODES)}.",
        )
    return str(mode)


def new_registry_properties(admin_user_enabled: bool, mode: str | None) -> RegistryProperties:
    """A new registry's properties, with the defaults ACR gives them."""
    return RegistryProperties(
        loginServer="",
        creationDate=now_iso(),
        provisioningState="Creating",
        adminUserEnabled=admin_user_enabled,
        policies={
            "quarantinePolicy": {"status": "disabled"},
            "trustPolicy": {"type": "Notary", "status": "disabled"},
            "retentionPolicy": {"days": 7, "status": "disabled"},
            "exportPolicy": {"status": "enabled"},
        },
        encryption={"status": "disabled"},
        dataEndpointEnabled=False,
        dataEndpointHostNames=[],
        privateEndpointConnections=[],
        publicNetworkAccess="Enabled",
        networkRuleBypassOptions="AzureServices",
        zoneRedundancy="Disabled",
        anonymousPullEnabled=False,
        roleAssignmentMode=mode or LEGACY,
    )


def registry_not_found(name: str, rg: str) -> ArmError:
    return not_found("Microsoft.ContainerRegistry/registries", name, rg)


class Registries:
    def __init__(self, store: Store, groups: ResourceGroups, operations: Operations) -> None:
        self._store = store
        self._groups = groups
        self._operations = operations

    # Reads ----------------------------------------------------------------------------
    def load(self, key: str) -> RegistryRecord | None:
        stored = self._store.get(KIND_REGISTRY, key)
        return RegistryRecord.load(stored) if stored else None

    def get(self, sub: str, rg: str, name: str) -> RegistryRecord:
        group = self._groups.get(sub, rg)
        registry = self.load(registry_id(group["id"], name))
        if not registry:
            raise registry_not_found(name, group["name"])
        return registry

    def all(self) -> list[RegistryRecord]:
        return [RegistryRecord.load(stored) for stored in self._store.list(KIND_REGISTRY)]

    def in_group(self, scope: str) -> list[RegistryRecord]:
        return [RegistryRecord.load(stored) for stored in self._store.list(KIND_REGISTRY, scope)]

    def list_in_group(self, sub: str, rg: str) -> list[RegistryRecord]:
        return self.in_group(self._groups.get(sub, rg)["id"])

    def in_subscription(self, sub: str) -> list[RegistryRecord]:
        prefix = subscription_key(sub).lower() + "/"
        return [registry for registry in self.all() if registry.id.lower().startswith(prefix)]

    def name_taken(self, name: str) -> bool:
        return any(registry.name.lower() == name.lower() for registry in self.all())

    def name_availability(self, name: str) -> NameAvailability:
        if not REGISTRY_NAME.fullmatch(name):
            return NameAvailability(
                nameAvailable=False,
                reason="Invalid",
                message="Registry names may contain only alpha numeric characters and must "
                "be between 5 and 50 characters",
            )
        if self.name_taken(name):
            return NameAvailability(
                nameAvailable=False,
                reason="AlreadyExists",
                message=f"The registry {name} is already in use.",
            )
        return NameAvailability(nameAvailable=True)

    def credentials(self, sub: str, rg: str, name: str) -> tuple[str, list[str]]:
        """The admin user's name and passwords."""
        registry = self.get(sub, rg, name)
        if not registry.resource["properties"]["adminUserEnabled"]:
            raise ArmError(
                400,
                "AdminUserDisabled",
                f"The admin user is disabled for registry '{registry.name}'. Enable it to list credentials.",
            )
        return registry.name, registry.passwords

    # Writes ---------------------------------------------------------------------------
    def creatable_in(self, sub: str, rg: str, name: str) -> ResourceGroup:
        """The group a registry of this name may be created or replaced in, before its body is read."""
        group = self._groups.get(sub, rg)
        ensure_not_deleting(group)
        if not REGISTRY_NAME.fullmatch(name):
            raise ArmError(
                400,
                "InvalidRegistryName",
                f"The registry name '{name}' is invalid: it must be 5 to 50 alphanumeric characters.",
            )
        return group

    def create(
        self, sub: str, group: ResourceGroup, name: str, body: dict[str, Any], version: str
    ) -> tuple[RegistryRecord, str | None]:
        """Create or replace a registry; returns it and, when new, the operation that provisions it."""
        sku = (body.get("sku") or {}).get("name")
        if sku not in SKUS:
            raise ArmError(
                400, "InvalidSku", f"The SKU '{sku}' is invalid. Supported: Basic, Standard, Premium."
            )
        location = require_location(body)
        key = registry_id(group["id"], name)
        self._groups.locks.ensure_unlocked(key, "write")
        existing = self.load(key)
        if not existing and self.name_taken(name):
            raise ArmError(
                409,
                "AlreadyInUse",
                f"The registry DNS name {name.lower()} is already in use. You can check if the "
                "name is already claimed using the checkNameAvailability API.",
            )
        properties = body.get("properties") or {}
        mode = role_assignment_mode(properties, version)
        admin = bool(properties.get("adminUserEnabled", False))
        if existing:
            existing.resource["tags"] = body.get("tags") or {}
            existing.resource["sku"] = {"name": sku, "tier": sku}
            existing.resource["properties"]["adminUserEnabled"] = admin
            if mode is not None:
                existing.resource["properties"]["roleAssignmentMode"] = mode
            self.save(existing)
            return existing, None
        resource = RegistryResource(
            id=key,
            name=name,
            type=REGISTRY_TYPE,
            location=location,
            tags=body.get("tags") or {},
            sku={"name": sku, "tier": sku},
            properties=new_registry_properties(admin, mode),
        )
        registry = RegistryRecord(resource, [secrets.token_urlsafe(24), secrets.token_urlsafe(24)])
        self.save(registry)
        return registry, self._operations.start(sub, "createRegistry", key)

    def writable(self, sub: str, rg: str, name: str) -> RegistryRecord:
        """A registry that may be changed (its group not being deleted, neither locked `ReadOnly`), before
        the change is read."""
        registry = self.get(sub, rg, name)
        self._groups.open_for_writes(sub, rg)
        self._groups.locks.ensure_unlocked(registry.id, "write")
        return registry

    def update(self, registry: RegistryRecord, body: dict[str, Any], version: str) -> RegistryRecord:
        mode = role_assignment_mode(body.get("properties") or {}, version)
        resource = registry.resource
        if "tags" in body:
            resource["tags"] = body["tags"] or {}
        if (body.get("sku") or {}).get("name") in SKUS:
            resource["sku"] = {"name": body["sku"]["name"], "tier": body["sku"]["name"]}
        properties = body.get("properties") or {}
        if "adminUserEnabled" in properties:
            resource["properties"]["adminUserEnabled"] = bool(properties["adminUserEnabled"])
        if mode is not None:
            resource["properties"]["roleAssignmentMode"] = mode
        self.save(registry)
        return registry

    def deletable(self, sub: str, rg: str, name: str) -> RegistryRecord | None:
        """The registry a delete removes (None: there is none, and nothing to do), once locks allow it."""
        group = self._groups.get(sub, rg)
        registry = self.load(registry_id(group["id"], name))
        if registry:
            self._groups.locks.ensure_unlocked(registry.id, "delete")
        return registry

    def provisioned(self, key: str, login_server: str, port: int) -> None:
        registry = self.load(key)
        if registry:
            registry.resource["properties"]["loginServer"] = login_server
            registry.resource["properties"]["provisioningState"] = "Succeeded"
            registry.port = port
            self.save(registry)

    def failed(self, key: str) -> None:
        registry = self.load(key)
        if registry:
            registry.resource["properties"]["provisioningState"] = "Failed"
            self.save(registry)

    def forget(self, registry: RegistryRecord) -> None:
        """Remove the registry and every record kept under it (tag and manifest attributes...)."""
        self._store.delete_children(registry.id)
        self._store.delete(registry.id)

    def save(self, registry: RegistryRecord) -> None:
        self._store.put(KIND_REGISTRY, registry.id, registry.group_id, registry.dump())
