"""The emulator's composition: its store, domain objects and services, and what spans providers.

The providers' domain objects (groups, registries, runs, operations) know nothing of each other's
neighbours; what crosses them lives here: a group's deletion takes its registries and Event Grid topics
along, a registry's provisioning and deletion start and stop its data-plane front, cancel its runs and
remove its storage. The HTTP handlers (resources, registries, tasks) are built over these objects by the app.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, cast

from ..executor import Executor
from .arm.groups import ResourceGroups
from .arm.locks import Locks
from .arm.operations import Operations
from .arm.records import OperationError, RegistryRecord, backend_namespace, group_id
from .arm.registry_resources import Registries
from .arm.runs import Runs
from .blobs import Blobs
from .config import EmulatorConfig
from .eventgrid.engine import EventGridEngine
from .eventgrid.resource_events import ResourceEvents
from .faults import Faults
from .store import Store
from .tokens import TokenService

log = logging.getLogger("devstack.emulator")


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir / "emulator.sqlite")
        self.tokens = TokenService(config.signing_key, config.tenant_id, config.arm_endpoint)
        self.blobs: Blobs
        self.executor = Executor(config.agents, config.state_dir / "work")
        self.fronts: Any = None  # set by the app: starts/stops data-plane listeners
        self.faults = Faults(config.identity_header)
        self.operations = Operations(self.store, config.arm_endpoint)
        self.locks = Locks(self.store)
        self.groups = ResourceGroups(
            self.store, self.operations, self.locks, config.subscriptions, self.schedule_group_deletion
        )
        self.registries = Registries(self.store, self.groups, self.operations)
        self.runs = Runs(self.store, config, self.tokens, self.executor, self)
        self.eventgrid = EventGridEngine(config, self.store, self.finish_operation)
        self.groups.events = ResourceEvents(self.eventgrid.records, self.eventgrid.publish, config.tenant_id)
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.blobs = await asyncio.to_thread(Blobs, self.config.storage_connection_string)
        self.executor.start()
        # Resume what a previous process left half done, so a restart loses nothing.
        for registry in self.registries.all():
            state = registry.resource["properties"]["provisioningState"]
            if state == "Succeeded":
                await self.fronts.start(registry.dump())
            elif state == "Creating":
                # A create cut short: provisioning opens its one front and ends it and its operation
                # `Succeeded`, or `Failed` when the front cannot listen.
                operation = self.operations.in_progress("createRegistry", registry.id)
                self._spawn(self._provision(registry.id, operation))
        self.runs.fail_unfinished()
        for sub, name, operation in self.groups.deleting():
            self.schedule_group_deletion(sub, name, operation)
        await self.eventgrid.start()  # resumes pending deliveries and validations

    async def stop(self) -> None:
        await self.eventgrid.stop()
        await self.executor.stop()
        for task in list(self._background):
            task.cancel()
        self.store.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def downloads_port(self) -> int:
        """The data plane's blob-download listener, which runs may reach."""
        return int(self.fronts.downloads_port)

    # What Event Grid and the data plane use -------------------------------------------
    def finish_operation(self, operation: str, status: str, error: dict[str, str] | None = None) -> None:
        self.operations.finish(operation, status, cast(OperationError | None, error))

    def backend_namespace(self, registry: Mapping[str, Any]) -> str:
        return backend_namespace(registry)

    def backend_storage(self, registry: Mapping[str, Any]) -> Path:
        return (
            self.config.registry_storage
            / "docker/registry/v2/repositories"
            / self.backend_namespace(registry)
        )

    # Resource groups ----------------------------------------------------------------------
    def schedule_group_deletion(self, sub: str, rg: str, operation: str) -> None:
        self._spawn(self._delete_group(sub, rg, operation))

    async def _delete_group(self, sub: str, rg: str, operation: str) -> None:
        await asyncio.sleep(self.config.delete_delay_seconds)
        scope = group_id(sub, rg)
        for registry in self.registries.in_group(scope):
            await self.delete_registry(registry)
        self.eventgrid.group_deleted(scope)  # system and custom topics, their subscriptions
        self.groups.remove(scope)
        self.operations.finish(operation, "Succeeded")
        log.info("resource group %s deleted", rg)

    # Registries ---------------------------------------------------------------------------
    def schedule_registry_creation(self, registry_id: str, operation: str) -> None:
        self._spawn(self._provision(registry_id, operation))

    async def _provision(self, registry_id: str, operation: str | None) -> None:
        """Bring up a new registry's front; the registry and its create operation then succeed or fail."""
        registry = self.registries.load(registry_id)
        if not registry:
            return
        try:
            port = await self.fronts.start(registry.dump())
        except OSError as exc:
            self.registries.failed(registry_id)
            if operation:
                self.operations.finish(
                    operation, "Failed", OperationError(code="InternalServerError", message=str(exc))
                )
            return
        self.registries.provisioned(registry_id, f"{self.config.host}:{port}", port)
        if operation:
            self.operations.finish(operation, "Succeeded")

    async def delete_registry(self, registry: RegistryRecord) -> None:
        await self.runs.delete_all(registry)
        self.eventgrid.registry_deleted(registry.id)  # its system topic goes with it
        await self.fronts.stop(registry.dump())
        shutil.rmtree(self.backend_storage(registry.resource), ignore_errors=True)
        self.fronts.backend.forget_blobs()  # a registry made again under the name starts empty
        await asyncio.to_thread(self.blobs.delete_registry_data, registry.name)
        self.registries.forget(registry)  # with its tag/manifest attributes and other registry-scoped state
