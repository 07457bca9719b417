"""ARM over HTTP: resource groups and asynchronous operation results (their locks: `lock_routes`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import EmulatorConfig
from ..errors import ArmError
from .groups import ResourceGroups, check_group_name, parse_tag_filter
from .operations import Operations
from .paging import indexed_page, parse_top
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


# What Resources_ListByResourceGroup shows of a resource (GenericResourceExpanded, resources.json), when
# its record has it.
GENERIC_FIELDS = ("id", "name", "type", "location", "kind", "managedBy", "sku", "identity", "tags")


class ResourceGroupsApi:
    """The HTTP face of resource groups and operation results: one method per route."""

    def __init__(
        self,
        groups: ResourceGroups,
        operations: Operations,
        config: EmulatorConfig,
        resource_kinds: tuple[str, ...] = (),
    ) -> None:
        self.groups = groups
        self.operations = operations
        self.config = config
        self.resource_kinds = resource_kinds  # the store kinds of the top-level resources a group holds

    def register(self, router: ArmRouter) -> None:
        group = "/subscriptions/{sub}/resourcegroups/{rg}"
        result = "/subscriptions/{sub}/operationresults/{operation}"
        routes: list[tuple[str, str, set[str], str, Handler]] = [
            ("PUT", group, RG_VERSIONS, "resourceGroups", self.put_group),
            ("GET", group, RG_VERSIONS, "resourceGroups", self.get_group),
            ("HEAD", group, RG_VERSIONS, "resourceGroups", self.head_group),
            ("PATCH", group, RG_VERSIONS, "resourceGroups", self.patch_group),
            ("DELETE", group, RG_VERSIONS, "resourceGroups", self.delete_group),
            ("GET", "/subscriptions/{sub}/resourcegroups", RG_VERSIONS, "resourceGroups", self.list_groups),
            ("GET", group + "/resources", RG_VERSIONS, "resources", self.list_resources),
            ("GET", result, RG_VERSIONS, "operationresults", self.operation_result),
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
        tag_filter = parse_tag_filter(request.query_params.get("$filter"))
        top = parse_top(request)
        self.groups.check_subscription(sub)
        return indexed_page(
            self.config,
            request,
            lambda after, limit: self.groups.in_subscription(sub, tag_filter, after, limit),
            top,
        )

    async def list_resources(self, request: Request, sub: str, rg: str) -> Response:
        """Resources_ListByResourceGroup: the group's top-level resources, one page. `$filter` and
        `$expand` have their own grammar and the app sends neither: refused (stricter)."""
        for unsupported in ("$filter", "$expand"):
            if unsupported in request.query_params:
                raise ArmError(
                    400, "InvalidRequestParameter", f"devstack does not support {unsupported} here."
                )
        found = [
            {key: body[key] for key in GENERIC_FIELDS if body.get(key) not in (None, {})}
            for body in self.groups.resources(sub, rg, self.resource_kinds)
        ]
        return JSONResponse({"value": found})

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
