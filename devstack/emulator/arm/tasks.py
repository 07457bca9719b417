"""ARM over HTTP: ACR Tasks quick runs (scheduleRun, runs, logs, build-source upload)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import EmulatorConfig
from ..errors import ArmError
from .paging import page
from .registry_resources import Registries
from .routing import ArmRouter, Handler, read_json
from .run_requests import source_registry_denial
from .runs import Runs, run_number

TASK_VERSIONS = {"2019-04-01", "2019-06-01-preview", "2025-03-01-preview"}


class TasksApi:
    """The HTTP face of ACR Tasks quick runs: one method per route."""

    def __init__(self, registries: Registries, runs: Runs, config: EmulatorConfig) -> None:
        self.registries = registries
        self.runs = runs
        self.config = config

    def register(self, router: ArmRouter) -> None:
        registry = (
            "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
        run = registry + "/runs/{run}"
        routes: list[tuple[str, str, str, Handler]] = [
            ("POST", registry + "/scheduleRun", "registries/scheduleRun", self.schedule_run),
            ("GET", run, "registries/runs", self.get_run),
            ("PATCH", run, "registries/runs", self.update_run),
            ("GET", registry + "/runs", "registries/runs", self.list_runs),
            ("POST", run + "/cancel", "registries/runs", self.cancel_run),
            ("POST", run + "/listLogSasUrl", "registries/runs", self.log_url),
            ("POST", registry + "/listBuildSourceUploadUrl", "registries", self.upload_url),
        ]
        for method, template, resource_type, handler in routes:
            router.add(method, template, TASK_VERSIONS, resource_type)(handler)

    async def schedule_run(self, request: Request, sub: str, rg: str, name: str) -> Response:
        registry = self.registries.get(sub, rg, name)
        body = await read_json(request)
        denied = source_registry_denial(registry.resource, body, request.query_params["api-version"])
        return JSONResponse(await self.runs.schedule(registry, body, denied))

    async def get_run(self, request: Request, sub: str, rg: str, name: str, run: str) -> Response:
        return JSONResponse(self.runs.get(self.registries.get(sub, rg, name), run).resource)

    async def update_run(self, request: Request, sub: str, rg: str, name: str, run: str) -> Response:
        record = self.runs.get(self.registries.get(sub, rg, name), run)
        return JSONResponse(self.runs.update(record, await read_json(request)))

    async def list_runs(self, request: Request, sub: str, rg: str, name: str) -> Response:
        registry = self.registries.get(sub, rg, name)
        if "$filter" in request.query_params:
            # The spec allows an OData filter over run properties; the app sends none, and a filter
            # ignored would list what the caller asked to leave out (stricter: refused).
            raise ArmError(400, "InvalidParameter", "$filter is not supported by devstack's Runs_List.")
        top = request.query_params.get("$top")
        if top is not None and not top.isdigit():
            raise ArmError(400, "InvalidParameter", f"The value '{top}' of $top is invalid.")
        runs = self.runs.newest_first(registry, None if top is None else int(top))
        return page(self.config, request, runs, key=lambda run: -run_number(run))

    async def cancel_run(self, request: Request, sub: str, rg: str, name: str, run: str) -> Response:
        await self.runs.cancel(self.registries.get(sub, rg, name), run)
        return Response(status_code=200)

    async def log_url(self, request: Request, sub: str, rg: str, name: str, run: str) -> Response:
        return JSONResponse({"logLink": self.runs.log_url(self.registries.get(sub, rg, name), run)})

    async def upload_url(self, request: Request, sub: str, rg: str, name: str) -> Response:
        url, relative = self.runs.upload_url(self.registries.get(sub, rg, name))
        return JSONResponse({"uploadUrl": url, "relativePath": relative})
