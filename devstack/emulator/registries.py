"""ARM: Microsoft.ContainerRegistry/registries (create LRO, get, list, update, delete, credentials)."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ArmError, not_found
from .resources import paged, subscription_key
from .routing import ArmRouter, read_json
from .store import public
from .timeutil import now_iso

if TYPE_CHECKING:
    from .service import Emulator

ACR_VERSIONS = {
    "2019-05-01",
    "2019-12-01-preview",
    "2021-09-01",
    "2022-12-01",
    "2023-01-01-preview",
    "2023-07-01",
    "2023-11-01-preview",
    "2024-11-01-preview",
    "2025-04-01",
    "2025-11-01",
}
# roleAssignmentMode is in RegistryProperties from 2025-03-01-preview on, but not in 2025-04-01 (its
# Bicep types end at anonymousPullEnabled); of the versions served here only 2025-11-01 has it.
ROLE_ASSIGNMENT_MODE_VERSIONS = {"2025-11-01"}
ROLE_ASSIGNMENT_MODES = ("AbacRepositoryPermissions", "LegacyRegistryPermissions")
ABAC = "AbacRepositoryPermissions"
REGISTRY_NAME = re.compile(r"[a-zA-Z0-9]{5,50}")
SKUS = {"Basic", "Standard", "Premium"}
PROVIDER = "/providers/Microsoft.ContainerRegistry/registries"


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


def public_view(registry: dict[str, Any]) -> dict[str, Any]:
    """The registry as ARM returns it: without the emulator's private fields."""
    return public(registry)


def register(router: ArmRouter, emu: Emulator) -> None:
    base = "/subscriptions/{sub}/resourcegroups/{rg}" + PROVIDER

    @router.add("PUT", base + "/{name}", ACR_VERSIONS, "registries")
    async def create(request: Request, sub: str, rg: str, name: str) -> Response:
        group = emu.group(sub, rg)
        if group["properties"]["provisioningState"] == "Deleting":
            raise ArmError(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{group['name']}' is in deprovisioning state and cannot "
                "perform this operation.",
            )
        if not REGISTRY_NAME.fullmatch(name):
            raise ArmError(
                400,
                "InvalidRegistryName",
                f"The registry name '{name}' is invalid: it must be 5 to 50 alphanumeric characters.",
            )
        body = await read_json(request)
        sku = (body.get("sku") or {}).get("name")
        if sku not in SKUS:
            raise ArmError(
                400, "InvalidSku", f"The SKU '{sku}' is invalid. Supported: Basic, Standard, Premium."
            )
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        emu.ensure_unlocked(sub, group["name"], "write")
        registry_id = f"{group['id']}{PROVIDER}/{name}"
        existing = emu.store.get("registry", registry_id)
        if not existing and emu.registry_name_taken(name):
            raise ArmError(
                409,
                "AlreadyInUse",
                f"The registry DNS name {name.lower()} is already in use. You can check if the "
                "name is already claimed using the checkNameAvailability API.",
            )
        properties = body.get("properties") or {}
        version = request.query_params["api-version"]
        mode = role_assignment_mode(properties, version)
        if existing:
            existing["tags"] = body.get("tags") or {}
            existing["sku"] = {"name": sku, "tier": sku}
            existing["properties"]["adminUserEnabled"] = bool(properties.get("adminUserEnabled", False))
            if mode is not None:
                existing["properties"]["roleAssignmentMode"] = mode
            emu.store.put("registry", registry_id, group["id"], existing)
            return JSONResponse(public_view(existing))
        registry = {
            "id": registry_id,
            "name": name,
            "type": "Microsoft.ContainerRegistry/registries",
            "location": location,
            "tags": body.get("tags") or {},
            "sku": {"name": sku, "tier": sku},
            "properties": {
                "loginServer": "",
                "creationDate": now_iso(),
                "provisioningState": "Creating",
                "adminUserEnabled": bool(properties.get("adminUserEnabled", False)),
                "policies": {
                    "quarantinePolicy": {"status": "disabled"},
                    "trustPolicy": {"type": "Notary", "status": "disabled"},
                    "retentionPolicy": {"days": 7, "status": "disabled"},
                    "exportPolicy": {"status": "enabled"},
                },
                "encryption": {"status": "disabled"},
                "dataEndpointEnabled": False,
                "dataEndpointHostNames": [],
                "privateEndpointConnections": [],
                "publicNetworkAccess": "Enabled",
                "networkRuleBypassOptions": "AzureServices",
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": False,
                "roleAssignmentMode": mode or "LegacyRegistryPermissions",
            },
            "_passwords": [secrets.token_urlsafe(24), secrets.token_urlsafe(24)],
        }
        emu.store.put("registry", registry_id, group["id"], registry)
        operation = emu.start_operation(sub, "createRegistry", registry_id)
        emu.schedule_registry_creation(registry_id, operation)
        status_url = (
            f"{emu.config.arm_endpoint}{registry_id}/operationStatuses/{operation}?api-version={version}"
        )
        return JSONResponse(
            public_view(registry),
            status_code=201,
            headers={"Azure-AsyncOperation": status_url, "Retry-After": "1"},
        )

    @router.add("GET", base + "/{name}/operationStatuses/{operation}", ACR_VERSIONS, "registries")
    async def operation_status(request: Request, sub: str, rg: str, name: str, operation: str) -> Response:
        record = emu.store.get("operation", operation)
        if not record:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation}' was not found.")
        body: dict[str, Any] = {"id": operation, "status": record["status"], "startTime": record["startTime"]}
        if record.get("endTime"):
            body["endTime"] = record["endTime"]
        if record.get("error"):
            body["error"] = record["error"]
        # Without Retry-After the SDK's poller waits its default 30 s between polls.
        headers = {"Retry-After": "1"} if record["status"] == "InProgress" else {}
        return JSONResponse(body, headers=headers)

    @router.add("GET", base + "/{name}", ACR_VERSIONS, "registries")
    async def get(request: Request, sub: str, rg: str, name: str) -> Response:
        return JSONResponse(public_view(emu.registry(sub, rg, name)))

    @router.add("PATCH", base + "/{name}", ACR_VERSIONS, "registries")
    async def update(request: Request, sub: str, rg: str, name: str) -> Response:
        registry = emu.registry(sub, rg, name)
        emu.ensure_unlocked(sub, rg, "write")
        body = await read_json(request)
        mode = role_assignment_mode(body.get("properties") or {}, request.query_params["api-version"])
        if "tags" in body:
            registry["tags"] = body["tags"] or {}
        if (body.get("sku") or {}).get("name") in SKUS:
            registry["sku"] = {"name": body["sku"]["name"], "tier": body["sku"]["name"]}
        properties = body.get("properties") or {}
        if "adminUserEnabled" in properties:
            registry["properties"]["adminUserEnabled"] = bool(properties["adminUserEnabled"])
        if mode is not None:
            registry["properties"]["roleAssignmentMode"] = mode
        emu.store.put("registry", registry["id"], emu.group(sub, rg)["id"], registry)
        return JSONResponse(public_view(registry))

    @router.add("DELETE", base + "/{name}", ACR_VERSIONS, "registries")
    async def delete(request: Request, sub: str, rg: str, name: str) -> Response:
        group = emu.group(sub, rg)
        registry = emu.store.get("registry", f"{group['id']}{PROVIDER}/{name}")
        if not registry:
            return Response(status_code=204)
        emu.ensure_unlocked(sub, group["name"], "delete")
        await emu.delete_registry(registry)
        return Response(status_code=200)

    @router.add("GET", base, ACR_VERSIONS, "registries")
    async def list_in_group(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        items = [public_view(r) for r in emu.store.list("registry", group["id"])]
        return paged(emu, request, items)

    @router.add("GET", "/subscriptions/{sub}" + PROVIDER, ACR_VERSIONS, "registries")
    async def list_in_subscription(request: Request, sub: str) -> Response:
        prefix = subscription_key(sub).lower() + "/"
        items = [public_view(r) for r in emu.store.list("registry") if r["id"].lower().startswith(prefix)]
        return paged(emu, request, items)

    @router.add(
        "POST",
        "/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/checkNameAvailability",
        ACR_VERSIONS,
        "checkNameAvailability",
    )
    async def check_name(request: Request, sub: str) -> Response:
        body = await read_json(request)
        name = str(body.get("name", ""))
        if not REGISTRY_NAME.fullmatch(name):
            return JSONResponse(
                {
                    "nameAvailable": False,
                    "reason": "Invalid",
                    "message": "Registry names may contain only alpha numeric characters and must "
                    "be between 5 and 50 characters",
                }
            )
        if emu.registry_name_taken(name):
            return JSONResponse(
                {
                    "nameAvailable": False,
                    "reason": "AlreadyExists",
                    "message": f"The registry {name} is already in use.",
                }
            )
        return JSONResponse({"nameAvailable": True})

    @router.add("POST", base + "/{name}/listCredentials", ACR_VERSIONS, "registries")
    async def list_credentials(request: Request, sub: str, rg: str, name: str) -> Response:
        registry = emu.registry(sub, rg, name)
        if not registry["properties"]["adminUserEnabled"]:
            raise ArmError(
                400,
                "AdminUserDisabled",
                f"The admin user is disabled for registry '{registry['name']}'. "
                "Enable it to list credentials.",
            )
        passwords = registry["_passwords"]
        return JSONResponse(
            {
                "username": registry["name"],
                "passwords": [
                    {"name": "password", "value": passwords[0]},
                    {"name": "password2", "value": passwords[1]},
                ],
            }
        )

    @router.add("GET", base + "/{name}/listUsages", ACR_VERSIONS, "registries")
    async def list_usages(request: Request, sub: str, rg: str, name: str) -> Response:
        emu.registry(sub, rg, name)
        return JSONResponse({"value": []})


def registry_not_found(name: str, rg: str) -> ArmError:
    return not_found("Microsoft.ContainerRegistry/registries", name, rg)
