"""A network of its own for each ACR Tasks run: only its registry's login server is reachable.

buildah downloads `ADD <url>` and pulls `FROM` images in its own process, and a run's containers share
the machine's network unless told otherwise: on the executor's host that reaches docker-registry's
unauthenticated backend (every registry's images), Azurite, the emulator and any local service. An ACR
Tasks agent has no path into other registries' storage or the service's own endpoints. So each run's
engines enter a fresh network namespace (`unshare --net`: loopback only, no route out) in which a relay
listens on the loopback ports of the run's login server and of the blob-download link, and carries each
connection over a Unix socket (reachable across network namespaces) to the real port on the host.

`python -m devstack.netns PORT=SOCKET ...` is the relay, run inside the new namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

LOOPBACK = "127.0.0.1"
READY = b"ready\n"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    other_reader: asyncio.StreamReader,
    other_writer: asyncio.StreamWriter,
) -> None:
    """Carry bytes both ways until both sides are done, then close both."""
    try:
        await asyncio.gather(_pipe(reader, other_writer), _pipe(other_reader, writer))
    finally:
        for side in (writer, other_writer):
            side.close()
            with contextlib.suppress(OSError, ConnectionError):
                await side.wait_closed()


class HostSide:
    """The host's end: one Unix socket per forwarded port, each connection carried to that loopback port."""

    def __init__(self, directory: Path, ports: Iterable[int]) -> None:
        self.sockets = {port: directory / f"{port}.sock" for port in ports}
        self._servers: list[asyncio.AbstractServer] = []
        self._relay: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        for port, path in self.sockets.items():

            async def carry(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int = port
            ) -> None:
                try:
                    upstream_reader, upstream_writer = await asyncio.open_connection(LOOPBACK, port)
                except OSError:
                    writer.close()
                    return
                await splice(reader, writer, upstream_reader, upstream_writer)

            self._servers.append(await asyncio.start_unix_server(carry, path=str(path)))
            path.chmod(0o600)
        arguments = [f"{port}={path}" for port, path in self.sockets.items()]
        self._relay = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--", sys.executable, "-m", "devstack.netns", *arguments,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._relay.stdout is not None
        line = await asyncio.wait_for(self._relay.stdout.readline(), timeout=30)
        if line != READY:
            assert self._relay.stderr is not None
            error = (await self._relay.stderr.read()).decode(errors="replace")
            raise RuntimeError(f"the run's network did not start: {error or line!r}")

    def enter(self) -> list[str]:
        """The command prefix that runs a program in the run's network namespace."""
        assert self._relay is not None
        return ["nsenter", f"--net=/proc/{self._relay.pid}/ns/net", "--"]

    async def close(self) -> None:
        if self._relay is not None and self._relay.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._relay.kill()
            await self._relay.wait()
        for server in self._servers:
            server.close()
        for path in self.sockets.values():
            path.unlink(missing_ok=True)


async def relay(forwards: dict[int, str]) -> None:
    """Inside the namespace: listen on each loopback port, carry each connection to its socket."""

    def handler(socket_path: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(socket_path)
            except OSError:
                writer.close()
                return
            await splice(reader, writer, upstream_reader, upstream_writer)

        return carry

    servers = [await asyncio.start_server(handler(path), LOOPBACK, port) for port, path in forwards.items()]
    os.write(1, READY)
    # Until the executor closes stdin (or dies): the namespace lives as long as this process.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    for server in servers:
        server.close()


def main() -> None:
    forwards = {int(port): path for port, _, path in (arg.partition("=") for arg in sys.argv[1:])}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # a new namespace's loopback is down
    asyncio.run(relay(forwards))


if __name__ == "__main__":
    main()
