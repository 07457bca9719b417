"""ARM: resource groups, management locks at group scope, and asynchronous operations."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ArmError
from .routing import ArmRouter, read_json

if TYPE_CHECKING:
    from .service import Emulator

RG_VERSIONS = {
    "2019-05-10",
    "2019-08-01",
    "2020-06-01",
    "2021-01-01",
    "2021-04-01",
    "2022-09-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-03-01",
    "2025-04-01",
}
LOCK_VERSIONS = {"2015-01-01", "2016-09-01", "2020-05-01"}
LOCK_LEVELS = {"CanNotDelete", "ReadOnly"}
RG_NAME = re.compile(r"[-\w._()]{1,90}")
TAG_FILTER = re.compile(
    r"\s*tagName\s+eq\s+'((?:[^']|'')*)'(?:\s+and\s+tagValue\s+eq\s+'((?:[^']|'')*)')?\s*",
    re.IGNORECASE,
)


def group_id(subscription: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{name}"


def subscription_key(subscription: str) -> str:
    return f"/subscriptions/{subscription}"


def by_id(item: dict[str, Any]) -> str | int:
    return str(item["id"]).lower()


def paged(
    emu: Emulator,
    request: Request,
    items: list[dict[str, Any]],
    top: int | None = None,
    key: Callable[[dict[str, Any]], str | int] = by_id,
) -> JSONResponse:
    """One page of `items` plus an opaque `nextLink`, as ARM lists answer.

    The skip token carries the last item's sort key, not a position, so a listing that runs while
    items are created or deleted neither skips nor repeats the ones that stay.
    """
    ordered = sorted(items, key=key)
    token = request.query_params.get("$skiptoken")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError as exc:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
        if not isinstance(after, str | int) or isinstance(after, bool):
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.")
        ordered = [item for item in ordered if type(key(item)) is type(after) and key(item) > after]  # type: ignore[operator]
    size = top if top else emu.config.page_size
    page = ordered[:size]
    body: dict[str, Any] = {"value": page}
    if len(ordered) > size:
        query = {k: v for k, v in request.query_params.items() if k != "$skiptoken"}
        query["$skiptoken"] = base64.urlsafe_b64encode(json.dumps(key(page[-1])).encode()).decode()
        body["nextLink"] = f"{emu.config.arm_endpoint}{request.url.path}?{urlencode(query)}"
    return JSONResponse(body)


def parse_top(request: Request) -> int | None:
    raw = request.query_params.get("$top")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ArmError(400, "InvalidTopInQueryString", f"The value '{raw}' of $top is invalid.")
    return int(raw)


def parse_tag_filter(raw: str | None) -> tuple[str, str | None] | None:
    if not raw:
        return None
    found = TAG_FILTER.fullmatch(raw)
    if not found:
        raise ArmError(
            400,
            "InvalidFilterInQueryString",
            f"Invalid $filter '{raw}' specified in the query string. Supported: "
            "\"tagName eq 'name'\" optionally followed by \"and tagValue eq 'value'\".",
        )
    name = found.group(1).replace("''", "'")
    value = found.group(2).replace("''", "'") if found.group(2) is not None else None
    return name, value


def tag_matches(tags: dict[str, str] | None, name: str, value: str | None) -> bool:
    for key, tag_value in (tags or {}).items():
        if key.lower() == name.lower() and (value is None or tag_value == value):
            return True
    return False


def register(router: ArmRouter, emu: Emulator) -> None:
    rg_path = "/subscriptions/{sub}/resourcegroups/{rg}"
    lock_path = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Authorization/locks"

    @router.add("PUT", rg_path, RG_VERSIONS, "resourceGroups")
    async def put_group(request: Request, sub: str, rg: str) -> Response:
        if not RG_NAME.fullmatch(rg) or rg.endswith("."):
            raise ArmError(
                400,
                "InvalidResourceGroup",
                f"The provided resource group name '{rg}' has these invalid characters or length. "
                "The name can only be a letter, digit, '-', '.', '(', ')' or '_', at most 90 "
                "characters, and cannot end with a period.",
            )
        body = await read_json(request)
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise ArmError(400, "InvalidTag", "Tags must be an object of string values.")
        existing = emu.store.get("resourceGroup", group_id(sub, rg))
        if existing:
            if existing["properties"]["provisioningState"] == "Deleting":
                raise ArmError(
                    409,
                    "ResourceGroupBeingDeleted",
                    f"The resource group '{existing['name']}' is in deprovisioning state and "
                    "cannot perform this operation.",
                )
            emu.ensure_unlocked(sub, existing["name"], "write")
            if existing["location"].lower() != location.lower():
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already "
                    f"exists in location '{existing['location']}' in resource group "
                    f"'{existing['name']}'.",
                )
        group: dict[str, Any] = {
            "id": existing["id"] if existing else group_id(sub, rg),
            "name": existing["name"] if existing else rg,
            "type": "Microsoft.Resources/resourceGroups",
            "location": existing["location"] if existing else location,
            "tags": tags,
            "properties": {"provisioningState": "Succeeded"},
        }
        if body.get("managedBy"):
            group["managedBy"] = body["managedBy"]
        emu.store.put("resourceGroup", group["id"], subscription_key(sub), group)
        return JSONResponse(group, status_code=200 if existing else 201)

    @router.add("GET", rg_path, RG_VERSIONS, "resourceGroups")
    async def get_group(request: Request, sub: str, rg: str) -> Response:
        return JSONResponse(emu.group(sub, rg))

    @router.add("HEAD", rg_path, RG_VERSIONS, "resourceGroups")
    async def head_group(request: Request, sub: str, rg: str) -> Response:
        found = emu.store.get("resourceGroup", group_id(sub, rg))
        return Response(status_code=204 if found else 404)

    @router.add("PATCH", rg_path, RG_VERSIONS, "resourceGroups")
    async def patch_group(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        emu.ensure_unlocked(sub, group["name"], "write")
        body = await read_json(request)
        if "tags" in body:
            group["tags"] = body["tags"] or {}
        if "managedBy" in body:
            group["managedBy"] = body["managedBy"]
        emu.store.put("resourceGroup", group["id"], subscription_key(sub), group)
        return JSONResponse(group)

    @router.add("DELETE", rg_path, RG_VERSIONS, "resourceGroups")
    async def delete_group(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        version = request.query_params["api-version"]
        state = group["properties"]["provisioningState"]
        if state != "Deleting":
            emu.ensure_unlocked(sub, group["name"], "delete")
            operation = emu.start_operation(sub, "deleteResourceGroup", group["id"])
            group["properties"]["provisioningState"] = "Deleting"
            group["properties"]["operationId"] = operation
            emu.store.put("resourceGroup", group["id"], subscription_key(sub), group)
            emu.schedule_group_deletion(sub, group["name"], operation)
        operation = group["properties"]["operationId"]
        return Response(status_code=202, headers=emu.operation_headers(sub, operation, version))

    @router.add("GET", "/subscriptions/{sub}/resourcegroups", RG_VERSIONS, "resourceGroups")
    async def list_groups(request: Request, sub: str) -> Response:
        tag_filter = parse_tag_filter(request.query_params.get("$filter"))
        groups = emu.store.list("resourceGroup", subscription_key(sub))
        if tag_filter:
            groups = [g for g in groups if tag_matches(g.get("tags"), *tag_filter)]
        return paged(emu, request, groups, parse_top(request))

    @router.add("GET", "/subscriptions/{sub}/operationresults/{operation}", RG_VERSIONS, "operationresults")
    async def operation_result(request: Request, sub: str, operation: str) -> Response:
        record = emu.store.get("operation", operation)
        if not record:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation}' was not found.")
        if record["status"] == "InProgress":
            version = request.query_params["api-version"]
            return Response(status_code=202, headers=emu.operation_headers(sub, operation, version))
        if record["status"] == "Failed":
            error = record.get("error") or {"code": "InternalServerError", "message": "failed"}
            return JSONResponse({"error": error}, status_code=record.get("httpStatus", 500))
        return Response(status_code=200)

    # Locks at resource-group scope.
    @router.add("PUT", lock_path + "/{name}", LOCK_VERSIONS, "locks")
    async def put_lock(request: Request, sub: str, rg: str, name: str) -> Response:
        group = emu.group(sub, rg)
        body = await read_json(request)
        properties = body.get("properties") or {}
        level = properties.get("level")
        if level not in LOCK_LEVELS:
            raise ArmError(
                400,
                "LockLevelInvalid",
                f"The lock level '{level}' is invalid. Supported levels: CanNotDelete, ReadOnly.",
            )
        lock_id = f"{group['id']}/providers/Microsoft.Authorization/locks/{name}"
        existing = emu.store.get("lock", lock_id)
        lock = {
            "id": lock_id,
            "type": "Microsoft.Authorization/locks",
            "name": name,
            "properties": {
                "level": level,
                **({"notes": properties["notes"]} if properties.get("notes") else {}),
                **({"owners": properties["owners"]} if properties.get("owners") else {}),
            },
        }
        emu.store.put("lock", lock_id, group["id"], lock)
        return JSONResponse(lock, status_code=200 if existing else 201)

    @router.add("GET", lock_path + "/{name}", LOCK_VERSIONS, "locks")
    async def get_lock(request: Request, sub: str, rg: str, name: str) -> Response:
        group = emu.group(sub, rg)
        lock = emu.store.get("lock", f"{group['id']}/providers/Microsoft.Authorization/locks/{name}")
        if not lock:
            raise ArmError(404, "LockNotFound", f"The lock '{name}' could not be found.")
        return JSONResponse(lock)

    @router.add("DELETE", lock_path + "/{name}", LOCK_VERSIONS, "locks")
    async def delete_lock(request: Request, sub: str, rg: str, name: str) -> Response:
        group = emu.group(sub, rg)
        removed = emu.store.delete(f"{group['id']}/providers/Microsoft.Authorization/locks/{name}")
        return Response(status_code=200 if removed else 204)

    @router.add("GET", lock_path, LOCK_VERSIONS, "locks")
    async def list_locks(request: Request, sub: str, rg: str) -> Response:
        group = emu.group(sub, rg)
        return paged(emu, request, emu.store.list("lock", group["id"]))


def new_operation_id() -> str:
    return base64.urlsafe_b64encode(f"{uuid.uuid4()}:{time.time_ns()}".encode()).decode().rstrip("=")
