"""The executor's own behaviour, without the emulator around it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.executor import Executor, RunJob
from devstack.taskfile import RunContext, parse


class MemoryLog:
    def __init__(self) -> None:
        self.text = ""
        self.status: str | None = None

    def write(self, text: str) -> None:
        self.text += text

    async def close(self, status: str) -> None:
        self.status = status


def run_once(tmp_path: Path, job_log: MemoryLog) -> list[tuple[str, dict[str, object]]]:
    statuses: list[tuple[str, dict[str, object]]] = []

    async def on_status(status: str, extra: dict[str, object]) -> None:
        statuses.append((status, extra))

    async def main() -> None:
        executor = Executor(agents=1, work_root=tmp_path)
        executor.start()
        context = RunContext(run_id="dm1", registry="127.0.0.1:1", registry_name="r")
        executor.submit(
            RunJob(
                run_id="dm1",
                registry_name="r",
                login_server="127.0.0.1:1",
                task=parse("steps:\n  - cmd: $Registry/a:v1\n", context),
                timeout=60,
                log=job_log,
                on_status=on_status,
            )
        )
        for _ in range(100):
            if statuses and statuses[-1][0] not in ("Queued", "Running"):
                break
            await asyncio.sleep(0.05)
        await executor.stop()

    asyncio.run(main())
    return statuses


def test_missing_engine_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    log = MemoryLog()
    statuses = run_once(tmp_path, log)
    final, extra = statuses[-1]
    assert final == "Error"
    message = str(extra["runErrorMessage"])
    assert "podman" in message
    assert "apt-get install" in message
    assert log.status == "Error"
    assert "apt-get install" in log.text
