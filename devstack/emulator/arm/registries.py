"""ARM over HTTP: container registries (create LRO, get, list, update, delete, credentials)."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import EmulatorConfig
from .operations import Operations, polling_headers
from .paging import page
from .records import REGISTRY_PROVIDER, RegistryRecord
from .registry_resources import Registries
from .routing import ArmRouter, Handler, read_json

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
PROVIDER = REGISTRY_PROVIDER


class RegistryLifecycle(Protocol):
    """What a registry's creation and deletion set going beyond its record: its front, runs, events."""

    def schedule_registry_creation(self, registry_id: str, operation: str) -> None: ...

    async def delete_registry(self, registry: RegistryRecord) -> None: ...


class RegistriesApi:
    """The HTTP face of container registries: one method per route."""

    def __init__(
        self,
        registries: Registries,
        operations: Operations,
        lifecycle: RegistryLifecycle,
        config: EmulatorConfig,
    ) -> None:
        self.registries = registries
        self.operations = operations
        self.lifecycle = lifecycle
        self.config = config

    def register(self, router: ArmRouter) -> None:
        in_group = "/subscriptions/{sub}/resourcegroups/{rg}" + PROVIDER
        registry = in_group + "/{name}"
        check_name = "/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/checkNameAvailability"
        routes: list[tuple[str, str, str, Handler]] = [
            ("PUT", registry, "registries", self.create),
            ("GET", registry + "/operationStatuses/{operation}", "registries", self.operation_status),
            ("GET", registry, "registries", self.get),
            ("PATCH", registry, "registries", self.update),
            ("DELETE", registry, "registries", self.delete),
            ("GET", in_group, "registries", self.list_in_group),
            ("GET", "/subscriptions/{sub}" + PROVIDER, "registries", self.list_in_subscription),
            ("POST", check_name, "checkNameAvailability", self.check_name),
            ("POST", registry + "/listCredentials", "registries", self.list_credentials),
            ("GET", registry + "/listUsages", "registries", self.list_usages),
        ]
        for method, template, resource_type, handler in routes:
            router.add(method, template, ACR_VERSIONS, resource_type)(handler)

    async def create(self, request: Request, sub: str, rg: str, name: str) -> Response:
        group = self.registries.creatable_in(sub, rg, name)
        version = request.query_params["api-version"]
        registry, operation = self.registries.create(sub, group, name, await read_json(request), version)
        if operation is None:
            return JSONResponse(registry.resource)
        self.lifecycle.schedule_registry_creation(registry.id, operation)
        status_url = (
            f"{self.config.arm_endpoint}{registry.id}/operationStatuses/{operation}?api-version={version}"
        )
        return JSONResponse(
            registry.resource,
            status_code=201,
            headers={"Azure-AsyncOperation": status_url, "Retry-After": "1"},
        )

    async def operation_status(
        self, request: Request, sub: str, rg: str, name: str, operation: str
    ) -> Response:
        status = self.operations.status(operation, operation)
        return JSONResponse(status, headers=polling_headers(status))

    async def get(self, request: Request, sub: str, rg: str, name: str) -> Response:
        return JSONResponse(self.registries.get(sub, rg, name).resource)

    async def update(self, request: Request, sub: str, rg: str, name: str) -> Response:
        registry = self.registries.writable(sub, rg, name)
        version = request.query_params["api-version"]
        return JSONResponse(self.registries.update(registry, await read_json(request), version).resource)

    async def delete(self, request: Request, sub: str, rg: str, name: str) -> Response:
        registry = self.registries.deletable(sub, rg, name)
        if not registry:
            return Response(status_code=204)
        await self.lifecycle.delete_registry(registry)
        return Response(status_code=200)

    async def list_in_group(self, request: Request, sub: str, rg: str) -> Response:
        return page(self.config, request, [r.resource for r in self.registries.list_in_group(sub, rg)])

    async def list_in_subscription(self, request: Request, sub: str) -> Response:
        return page(self.config, request, [r.resource for r in self.registries.in_subscription(sub)])

    async def check_name(self, request: Request, sub: str) -> Response:
        body = await read_json(request)
        return JSONResponse(self.registries.name_availability(str(body.get("name", ""))))

    async def list_credentials(self, request: Request, sub: str, rg: str, name: str) -> Response:
        username, passwords = self.registries.credentials(sub, rg, name)
        return JSONResponse(
            {
                "username": username,
                "passwords": [
                    {"name": "password", "value": passwords[0]},
                    {"name": "password2", "value": passwords[1]},
                ],
            }
        )

    async def list_usages(self, request: Request, sub: str, rg: str, name: str) -> Response:
        self.registries.get(sub, rg, name)
        return JSONResponse({"value": []})
