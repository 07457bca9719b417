"""The emulator's start on a state directory a previous process left: registries still being created."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import service
from devstack.emulator.config import EmulatorConfig
from devstack.emulator.service import Emulator
from tests.support.emulator import offline_config

SUB = "00000000-0000-0000-0000-0000000000aa"
BODY = {"location": "westeurope", "sku": {"name": "Basic"}}


class FakeFronts:
    """Registry fronts that record what they were asked to start, or fail to listen."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.started: dict[str, int] = {}  # registry id -> port
        self.calls = 0

    async def start(self, registry: dict[str, Any]) -> int:
        self.calls += 1
        if self.refuse:
            raise OSError(98, "Address already in use")
        return self.started.setdefault(registry["id"], 40000 + len(self.started))

    async def stop(self, registry: dict[str, Any]) -> None:
        self.started.pop(registry["id"], None)


class NoBlobs:
    def __init__(self, connection_string: str) -> None:
        pass


def config(home: Path) -> EmulatorConfig:
    return offline_config(home, subscription_id=SUB, agents=1)


def left_creating(home: Path) -> tuple[str, str]:
    """What an emulator stopped mid-create leaves: the registry `Creating`, its operation in progress."""
    emu = Emulator(config(home))
    group, _ = emu.groups.put(SUB, "lab", {"location": "westeurope"})
    registry, operation = emu.registries.create(SUB, group, "halfmade", BODY, "2025-04-01")
    emu.store.close()
    assert operation is not None
    return registry.id, operation


async def restart(home: Path, fronts: FakeFronts) -> Emulator:
    emu = Emulator(config(home))
    emu.fronts = fronts
    await emu.start()
    for _ in range(100):  # provisioning runs in the background
        if not emu._background:
            break
        await asyncio.sleep(0.01)
    return emu


@pytest.fixture(autouse=True)
def no_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "Blobs", NoBlobs)


def test_a_registry_being_created_comes_up_behind_one_front(tmp_path: Path) -> None:
    registry_id, operation = left_creating(tmp_path)

    async def scenario() -> None:
        fronts = FakeFronts()
        emu = await restart(tmp_path, fronts)
        try:
            registry = emu.registries.load(registry_id)
            assert registry is not None
            properties = registry.resource["properties"]
            assert properties["provisioningState"] == "Succeeded"
            assert (fronts.calls, fronts.started) == (1, {registry_id: registry.port})
            assert properties["loginServer"] == f"127.0.0.1:{registry.port}"
            assert emu.operations.status(operation, operation)["status"] == "Succeeded"
        finally:
            await emu.stop()

    asyncio.run(scenario())


def test_a_registry_whose_front_cannot_start_at_a_restart_fails(tmp_path: Path) -> None:
    registry_id, operation = left_creating(tmp_path)

    async def scenario() -> None:
        emu = await restart(tmp_path, FakeFronts(refuse=True))
        try:
            registry = emu.registries.load(registry_id)
            assert registry is not None
            assert registry.resource["properties"]["provisioningState"] == "Failed"
            status = emu.operations.status(operation, operation)
            assert status["status"] == "Failed"
            assert status.get("error", {}).get("code") == "InternalServerError"
        finally:
            await emu.stop()

    asyncio.run(scenario())
