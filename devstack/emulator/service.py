"""The emulator's shared state and behaviour behind the HTTP handlers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from ..executor import TERMINAL, Executor, RegistryLogin, RunJob
from ..taskfile import RunContext
from .blobs import Blobs, SourceError, SourceLimits
from .config import EmulatorConfig
from .errors import ArmError, not_found
from .eventgrid_engine import EventGridEngine
from .faults import Faults
from .resources import group_id, new_operation_id
from .store import Store, public
from .timeutil import now_iso
from .tokens import TokenService

log = logging.getLogger("devstack.emulator")
# The user name ACR takes with a refresh token as the password (`az acr login --expose-token`).
NULL_GUID_USER = "00000000-0000-0000-0000-000000000000"
RUN_TOKEN_MARGIN_SECONDS = 300  # a run queued behind others still holds a valid token when it starts


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir / "emulator.sqlite")
        self.tokens = TokenService(config.signing_key, config.tenant_id, config.arm_endpoint)
        self.blobs: Blobs
        self.executor = Executor(config.agents, config.state_dir / "work")
        self.fronts: Any = None  # set by the app: starts/stops data-plane listeners
        self.faults = Faults(config.identity_header)
        self.eventgrid = EventGridEngine(config, self.store, self.finish_operation)
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.blobs = await asyncio.to_thread(Blobs, self.config.storage_connection_string)
        self.executor.start()
        # Resume what a previous process left half done, so a restart loses nothing.
        for registry in self.store.list("registry"):
            if registry["properties"]["provisioningState"] in ("Creating", "Succeeded"):
                await self.fronts.start(registry)
            if registry["properties"]["provisioningState"] == "Creating":
                self._spawn(self._finish_registry(registry["id"], None))
        for run in self.store.list("run"):
            if run["properties"]["status"] not in TERMINAL:
                run["properties"]["status"] = "Error"
                run["properties"]["runErrorMessage"] = "the agent restarted while the run was in progress"
                run["properties"]["finishTime"] = now_iso()
                self.store.put("run", run["id"], run["_registryId"], run)
        for group in self.store.list("resourceGroup"):
            if group["properties"]["provisioningState"] == "Deleting":
                sub = group["id"].split("/")[2]
                self.schedule_group_deletion(sub, group["name"], group["properties"]["operationId"])
        await self.eventgrid.start()  # resumes pending deliveries and validations

    async def stop(self) -> None:
        await self.eventgrid.stop()
        await self.executor.stop()
        for task in list(self._background):
            task.cancel()
        self.store.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Lookups ---------------------------------------------------------------
    def group(self, sub: str, rg: str) -> dict[str, Any]:
        self.check_subscription(sub)
        group = self.store.get("resourceGroup", group_id(sub, rg))
        if not group:
            raise not_found("resourceGroup", rg)
        return group

    def registry(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        group = self.group(sub, rg)
        registry = self.store.get(
            "registry", f"{group['id']}/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
        if not registry:
            raise not_found("Microsoft.ContainerRegistry/registries", name, group["name"])
        return registry

    def run(self, registry: dict[str, Any], run_id: str) -> dict[str, Any]:
        record = self.store.get("run", f"{registry['id']}/runs/{run_id}")
        if not record:
            raise not_found("Microsoft.ContainerRegistry/registries/runs", run_id)
        return public(record)

    def check_subscription(self, sub: str) -> None:
        if sub.lower() != self.config.subscription_id.lower():
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

    def registry_name_taken(self, name: str) -> bool:
        return any(r["name"].lower() == name.lower() for r in self.store.list("registry"))

    def ensure_unlocked(self, sub: str, rg: str, operation: str) -> None:
        scope = group_id(sub, rg)
        locks = self.store.list("lock", scope)
        blocking = [
            lock for lock in locks if operation == "delete" or lock["properties"]["level"] == "ReadOnly"
        ]
        if blocking:
            raise ArmError(
                409,
                "ScopeLocked",
                f"The scope '{scope}' cannot perform {operation} operation because following "
                f"scope(s) are locked: '{scope}'. Please remove the lock and try again.",
            )

    # Long-running operations -----------------------------------------------
    def start_operation(self, sub: str, kind: str, target: str) -> str:
        operation = new_operation_id()
        self.store.put(
            "operation",
            operation,
            f"/subscriptions/{sub}",
            {"id": operation, "kind": kind, "target": target, "status": "InProgress", "startTime": now_iso()},
        )
        return operation

    def finish_operation(self, operation: str, status: str, error: dict[str, str] | None = None) -> None:
        record = self.store.get("operation", operation)
        if record:
            record.update(status=status, endTime=now_iso())
            if error:
                record["error"] = error
            self.store.put("operation", operation, "/", record)

    def operation_headers(self, sub: str, operation: str, version: str) -> dict[str, str]:
        path = f"/subscriptions/{sub}/operationresults/{operation}"
        location = f"{self.config.arm_endpoint}{path}?api-version={version}"
        return {"Location": location, "Retry-After": "1"}

    # Resource groups ----------------------------------------------------------
    def schedule_group_deletion(self, sub: str, rg: str, operation: str) -> None:
        self._spawn(self._delete_group(sub, rg, operation))

    async def _delete_group(self, sub: str, rg: str, operation: str) -> None:
        await asyncio.sleep(self.config.delete_delay_seconds)
        scope = group_id(sub, rg)
        for registry in self.store.list("registry", scope):
            await self.delete_registry(registry)
        self.eventgrid.group_deleted(scope)  # system and custom topics, their subscriptions
        for lock in self.store.list("lock", scope):
            self.store.delete(lock["id"])
        self.store.delete(scope)
        self.finish_operation(operation, "Succeeded")
        log.info("resource group %s deleted", rg)

    # Registries -----------------------------------------------------------------
    def schedule_registry_creation(self, registry_id: str, operation: str) -> None:
        self._spawn(self._finish_registry(registry_id, operation))

    async def _finish_registry(self, registry_id: str, operation: str | None) -> None:
        registry = self.store.get("registry", registry_id)
        if not registry:
            return
        try:
            port = await self.fronts.start(registry)
        except OSError as exc:
            registry["properties"]["provisioningState"] = "Failed"
            self.store.put("registry", registry_id, registry_id.rsplit("/providers/", 1)[0], registry)
            if operation:
                self.finish_operation(
                    operation, "Failed", {"code": "InternalServerError", "message": str(exc)}
                )
            return
        registry["properties"]["loginServer"] = f"{self.config.host}:{port}"
        registry["properties"]["provisioningState"] = "Succeeded"
        registry["_port"] = port
        self.store.put("registry", registry_id, registry_id.rsplit("/providers/", 1)[0], registry)
        if operation:
            self.finish_operation(operation, "Succeeded")

    async def delete_registry(self, registry: dict[str, Any]) -> None:
        for run in self.store.list("run", registry["id"]):
            await self.executor.cancel(run["name"])
            self.store.delete(run["id"])
        self.eventgrid.registry_deleted(registry["id"])  # its system topic goes with it
        await self.fronts.stop(registry)
        shutil.rmtree(self.backend_storage(registry), ignore_errors=True)
        await asyncio.to_thread(self.blobs.delete_registry_data, registry["name"])
        self.store.delete_children(registry["id"])  # tag/manifest attributes and other registry-scoped state
        self.store.delete(registry["id"])

    def backend_namespace(self, registry: dict[str, Any]) -> str:
        return str(registry["name"]).lower()

    def backend_storage(self, registry: dict[str, Any]) -> Path:
        return (
            self.config.registry_storage
            / "docker/registry/v2/repositories"
            / self.backend_namespace(registry)
        )

    # Runs --------------------------------------------------------------------------
    async def schedule_run(self, registry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        from .tasks import build_task

        if registry["properties"]["provisioningState"] != "Succeeded":
            raise ArmError(409, "RegistryNotReady", f"The registry '{registry['name']}' is not ready.")
        run_id = f"dm{self.store.next_counter('run')}"
        login_server = registry["properties"]["loginServer"]
        context = RunContext(run_id=run_id, registry=login_server, registry_name=registry["name"])
        task, timeout, needs_source = build_task(body, context)
        platform = body.get("platform") or {"os": "Linux", "architecture": "amd64"}
        now = now_iso()
        record = {
            "id": f"{registry['id']}/runs/{run_id}",
            "name": run_id,
            "type": "Microsoft.ContainerRegistry/registries/runs",
            "properties": {
                "runId": run_id,
                "status": "Queued",
                "lastUpdatedTime": now,
                "runType": "QuickRun",
                "createTime": now,
                "outputImages": [],
                "platform": platform,
                "agentConfiguration": body.get("agentConfiguration") or {"cpu": 2},
                "isArchiveEnabled": bool(body.get("isArchiveEnabled", False)),
                "provisioningState": "Succeeded",
            },
            "_registryId": registry["id"],
            "_timeout": timeout,
        }
        self.store.put("run", record["id"], registry["id"], record)
        sink = await asyncio.to_thread(self.blobs.open_log, registry["name"], run_id)
        source = body.get("sourceLocation") if needs_source else None

        async def on_status(status: str, extra: dict[str, object]) -> None:
            current = self.store.get("run", record["id"])
            if not current:
                return
            properties = current["properties"]
            if properties["status"] in TERMINAL:
                return
            properties["status"] = status
            properties["lastUpdatedTime"] = now_iso()
            if status == "Running":
                properties["startTime"] = properties["lastUpdatedTime"]
            if status in TERMINAL:
                properties["finishTime"] = properties["lastUpdatedTime"]
                properties.setdefault("startTime", properties["finishTime"])
            properties.update(extra)
            self.store.put("run", record["id"], registry["id"], current)

        async def prepare(workdir: Path) -> None:
            try:
                await asyncio.to_thread(
                    self.blobs.extract_source,
                    registry["name"],
                    str(source),
                    workdir,
                    SourceLimits(
                        self.config.max_source_bytes,
                        self.config.max_source_expanded_bytes,
                        self.config.max_source_entries,
                    ),
                )
            except SourceError as exc:
                from ..executor import StepFailed

                raise StepFailed(str(exc)) from exc

        # The run's own login: a refresh token for this registry only, valid while the run may last.
        run_token, _ = self.tokens.issue(
            login_server,
            subject=f"acr-task-run/{registry['name']}/{run_id}",
            grant="refresh",
            exp=int(time.time()) + timeout + RUN_TOKEN_MARGIN_SECONDS,
        )
        self.executor.submit(
            RunJob(
                run_id=run_id,
                registry_name=registry["name"],
                login_server=login_server,
                login=RegistryLogin(NULL_GUID_USER, run_token, self.config.ca_cert),
                reachable_ports=(int(login_server.rpartition(":")[2]), self.fronts.downloads_port),
                task=task,
                timeout=timeout,
                log=sink,
                on_status=on_status,
                prepare_source=prepare if source else None,
            )
        )
        return public(record)

    async def cancel_run(self, registry: dict[str, Any], run_id: str) -> None:
        record = self.run(registry, run_id)
        if record["properties"]["status"] in TERMINAL:
            return
        await self.executor.cancel(run_id)
