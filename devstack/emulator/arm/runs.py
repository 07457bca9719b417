"""ACR Tasks quick runs without HTTP: schedule one on the executor, follow its status, list, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from devstack.executor import TERMINAL, Executor, RegistryLogin, RunJob, StepFailed
from devstack.taskfile import RunContext

from ..blobs import Blobs, SourceError, SourceLimits
from ..config import EmulatorConfig
from ..errors import ArmError, not_found
from ..store import Store
from ..timeutil import now_iso
from ..tokens import TokenService
from .records import KIND_RUN, RUN_TYPE, RegistryRecord, RunProperties, RunRecord, RunResource
from .run_requests import build_task

# The user name ACR takes with a refresh token as the password (`az acr login --expose-token`).
NULL_GUID_USER = "00000000-0000-0000-0000-000000000000"
RUN_TOKEN_MARGIN_SECONDS = 300  # a run queued behind others still holds a valid token when it starts
RUN_PREFIX = "dm"  # run ids: dm1, dm2...


class RunEnvironment(Protocol):
    """What a run needs that exists only once the emulator has started."""

    @property
    def blobs(self) -> Blobs: ...

    @property
    def downloads_port(self) -> int: ...


def run_number(run: Mapping[str, Any]) -> int:
    return int(run["name"].removeprefix(RUN_PREFIX))


class Runs:
    def __init__(
        self,
        store: Store,
        config: EmulatorConfig,
        tokens: TokenService,
        executor: Executor,
        environment: RunEnvironment,
    ) -> None:
        self._store = store
        self._config = config
        self._tokens = tokens
        self._executor = executor
        self._environment = environment

    # Reads ----------------------------------------------------------------------------
    def load(self, key: str) -> RunRecord | None:
        stored = self._store.get(KIND_RUN, key)
        return RunRecord.load(stored) if stored else None

    def get(self, registry: RegistryRecord, run_id: str) -> RunRecord:
        record = self.load(f"{registry.id}/runs/{run_id}")
        if not record:
            raise not_found("Microsoft.ContainerRegistry/registries/runs", run_id)
        return record

    def newest_first(self, registry: RegistryRecord, top: int | None) -> list[RunResource]:
        runs = [
            RunRecord.load(stored).resource for stored in reversed(self._store.list(KIND_RUN, registry.id))
        ]
        return runs if top is None else runs[:top]

    def all(self) -> list[RunRecord]:
        return [RunRecord.load(stored) for stored in self._store.list(KIND_RUN)]

    def log_url(self, registry: RegistryRecord, run_id: str) -> str:
        self.get(registry, run_id)
        return self._environment.blobs.log_url(registry.name, run_id)

    def upload_url(self, registry: RegistryRecord) -> tuple[str, str]:
        """Where to upload a build context, and the relative path a run then names it by."""
        return self._environment.blobs.upload_url(registry.name)

    # Writes ---------------------------------------------------------------------------
    async def schedule(
        self, registry: RegistryRecord, body: dict[str, Any], denied: str | None
    ) -> RunResource:
        """Queue a quick run; `denied` says why it may not use its own registry (None if it may)."""
        if registry.resource["properties"]["provisioningState"] != "Succeeded":
            raise ArmError(409, "RegistryNotReady", f"The registry '{registry.name}' is not ready.")
        run_id = f"{RUN_PREFIX}{self._store.next_counter(KIND_RUN)}"
        login_server = registry.resource["properties"]["loginServer"]
        context = RunContext(run_id=run_id, registry=login_server, registry_name=registry.name)
        task, timeout, needs_source = build_task(body, context, denied)
        record = RunRecord(new_run(registry.id, run_id, body), registry.id, timeout)
        self._save(record)
        sink = await asyncio.to_thread(self._environment.blobs.open_log, registry.name, run_id)
        source = body.get("sourceLocation") if needs_source else None
        self._executor.submit(
            RunJob(
                run_id=run_id,
                registry_name=registry.name,
                login_server=login_server,
                login=RegistryLogin(
                    NULL_GUID_USER, self._run_token(registry, run_id, timeout), self._config.ca_cert
                ),
                reachable_ports=(int(login_server.rpartition(":")[2]), self._environment.downloads_port),
                task=task,
                timeout=timeout,
                log=sink,
                on_status=lambda status, extra: self._record_status(record.id, status, extra),
                prepare_source=self._source_preparer(registry.name, str(source)) if source else None,
            )
        )
        return record.resource

    def update(self, record: RunRecord, body: dict[str, Any]) -> RunResource:
        if "isArchiveEnabled" in body:
            record.resource["properties"]["isArchiveEnabled"] = bool(body["isArchiveEnabled"])
            self._save(record)
        return record.resource

    async def cancel(self, registry: RegistryRecord, run_id: str) -> None:
        record = self.get(registry, run_id)
        if record.resource["properties"]["status"] in TERMINAL:
            return
        await self._executor.cancel(run_id)

    async def delete_all(self, registry: RegistryRecord) -> None:
        for stored in self._store.list(KIND_RUN, registry.id):
            await self._executor.cancel(stored["name"])
            self._store.delete(stored["id"])

    def fail_unfinished(self) -> None:
        """After a restart: a run the previous process left unfinished ends in Error."""
        for record in self.all():
            properties = record.resource["properties"]
            if properties["status"] not in TERMINAL:
                properties["status"] = "Error"
                properties["runErrorMessage"] = "the agent restarted while the run was in progress"
                properties["finishTime"] = now_iso()
                self._save(record)

    # The run's progress -------------------------------------------------------------
    def _run_token(self, registry: RegistryRecord, run_id: str, timeout: int) -> str:
        """The run's own login: a refresh token for this registry only, valid while the run may last."""
        token, _ = self._tokens.issue(
            registry.resource["properties"]["loginServer"],
            subject=f"acr-task-run/{registry.name}/{run_id}",
            grant="refresh",
            exp=int(time.time()) + timeout + RUN_TOKEN_MARGIN_SECONDS,
        )
        return token

    async def _record_status(self, key: str, status: str, extra: dict[str, object]) -> None:
        record = self.load(key)
        if not record:
            return
        properties = record.resource["properties"]
        if properties["status"] in TERMINAL:
            return
        properties["status"] = status
        properties["lastUpdatedTime"] = now_iso()
        if status == "Running":
            properties["startTime"] = properties["lastUpdatedTime"]
        if status in TERMINAL:
            properties["finishTime"] = properties["lastUpdatedTime"]
            properties.setdefault("startTime", properties["finishTime"])
        properties.update(cast(RunProperties, extra))
        self._save(record)

    def _source_preparer(self, registry_name: str, source: str) -> Callable[[Path], Awaitable[None]]:
        limits = SourceLimits(
            self._config.max_source_bytes,
            self._config.max_source_expanded_bytes,
            self._config.max_source_entries,
        )

        async def prepare(workdir: Path) -> None:
            try:
                await asyncio.to_thread(
                    self._environment.blobs.extract_source, registry_name, source, workdir, limits
                )
            except SourceError as exc:
                raise StepFailed(str(exc)) from exc

        return prepare

    def _save(self, record: RunRecord) -> None:
        self._store.put(KIND_RUN, record.id, record.registry_id, record.dump())


def new_run(registry_id: str, run_id: str, body: dict[str, Any]) -> RunResource:
    now = now_iso()
    return RunResource(
        id=f"{registry_id}/runs/{run_id}",
        name=run_id,
        type=RUN_TYPE,
        properties=RunProperties(
            runId=run_id,
            status="Queued",
            lastUpdatedTime=now,
            runType="QuickRun",
            createTime=now,
            outputImages=[],
            platform=body.get("platform") or {"os": "Linux", "architecture": "amd64"},
            agentConfiguration=body.get("agentConfiguration") or {"cpu": 2},
            isArchiveEnabled=bool(body.get("isArchiveEnabled", False)),
            provisioningState="Succeeded",
        ),
    )
