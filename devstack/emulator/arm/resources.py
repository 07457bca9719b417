"""ARM over HTTP: resource groups, management locks at group scope, asynchronous operation results."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import EmulatorConfig
from .groups import ResourceGroups, check_group_name, parse_tag_filter
from .operations import Operations
from .paging import page, parse_top
from .routing import ArmRouter, Handler, read_json

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


class ResourceGroupsApi:
    """The HTTP face of resource groups, their locks and operation results: one method per route."""

    def __init__(self, groups: ResourceGroups, operations: Operations, config: EmulatorConfig) -> None:
        self.groups = groups
        self.operations = operations
        self.config = config

    def register(self, router: ArmRouter) -> None:
        group = "/subscriptions/{sub}/resourcegroups/{rg}"
        lock = group + "/providers/Microsoft.Authorization/locks/{name}"
        result = "/subscriptions/{sub}/operationresults/{operation}"
        routes: list[tuple[str, str, set[str], str, Handler]] = [
            ("PUT", group, RG_VERSIONS, "resourceGroups", self.put_group),
            ("GET", group, RG_VERSIONS, "resourceGroups", self.get_group),
            ("HEAD", group, RG_VERSIONS, "resourceGroups", self.head_group),
            ("PATCH", group, RG_VERSIONS, "resourceGroups", self.patch_group),
            ("DELETE", group, RG_VERSIONS, "resourceGroups", self.delete_group),
            ("GET", "/subscriptions/{sub}/resourcegroups", RG_VERSIONS, "resourceGroups", self.list_groups),
            ("GET", result, RG_VERSIONS, "operationresults", self.operation_result),
            ("PUT", lock, LOCK_VERSIONS, "locks", self.put_lock),
            ("GET", lock, LOCK_VERSIONS, "locks", self.get_lock),
            ("DELETE", lock, LOCK_VERSIONS, "locks", self.delete_lock),
            ("GET", lock.removesuffix("/{name}"), LOCK_VERSIONS, "locks", self.list_locks),
        ]
        for method, template, versions, resource_type, handler in routes:
            router.add(method, template, versions, resource_type)(handler)

    # Resource groups -----------------------------------------------------------------
    async def put_group(self, request: Request, sub: str, rg: str) -> Response:
        check_group_name(rg)
        group, created = self.groups.put(sub, rg, await read_json(request))
        return JSONResponse(group, status_code=201 if created else 200)

    async def get_group(self, request: Request, sub: str, rg: str) -> Response:
        return JSONResponse(self.groups.get(sub, rg))

    async def head_group(self, request: Request, sub: str, rg: str) -> Response:
        return Response(status_code=204 if self.groups.find(sub, rg) else 404)

    async def patch_group(self, request: Request, sub: str, rg: str) -> Response:
        group = self.groups.open_for_writes(sub, rg)
        return JSONResponse(self.groups.update(sub, group, await read_json(request)))

    async def delete_group(self, request: Request, sub: str, rg: str) -> Response:
        operation = self.groups.begin_delete(sub, rg)
        version = request.query_params["api-version"]
        return Response(status_code=202, headers=self.operations.location_headers(sub, operation, version))

    async def list_groups(self, request: Request, sub: str) -> Response:
        groups = self.groups.in_subscription(sub, parse_tag_filter(request.query_params.get("$filter")))
        return page(self.config, request, groups, parse_top(request))

    async def operation_result(self, request: Request, sub: str, operation: str) -> Response:
        record = self.operations.require(operation)
        if record["status"] == "InProgress":
            version = request.query_params["api-version"]
            return Response(
                status_code=202, headers=self.operations.location_headers(sub, operation, version)
            )
        if record["status"] == "Failed":
            error = record.get("error") or {"code": "InternalServerError", "message": "failed"}
            return JSONResponse({"error": error}, status_code=record.get("httpStatus", 500))
        return Response(status_code=200)

    # Locks at resource-group scope ------------------------------------------------------
    async def put_lock(self, request: Request, sub: str, rg: str, name: str) -> Response:
        group = self.groups.get(sub, rg)
        lock, created = self.groups.put_lock(group, name, await read_json(request))
        return JSONResponse(lock, status_code=201 if created else 200)

    async def get_lock(self, request: Request, sub: str, rg: str, name: str) -> Response:
        return JSONResponse(self.groups.get_lock(sub, rg, name))

    async def delete_lock(self, request: Request, sub: str, rg: str, name: str) -> Response:
        return Response(status_code=200 if self.groups.delete_lock(sub, rg, name) else 204)

    async def list_locks(self, request: Request, sub: str, rg: str) -> Response:
        return page(self.config, request, self.groups.list_locks(sub, rg))
