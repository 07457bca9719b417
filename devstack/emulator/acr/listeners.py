"""Extra listeners in the emulator's event loop (managed identity, one per registry, the storage stand-in).

uvicorn serves the ARM app; these reuse its HTTP protocol on further sockets so
that one process and one loop hold every endpoint.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState

from ..config import EmulatorConfig


async def listen(
    app: Any, host: str, port: int, certfile: Path | None = None, keyfile: Path | None = None
) -> tuple[asyncio.AbstractServer, ServerState]:
    tls: dict[str, Any] = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)} if certfile else {}
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **tls)
    config.load()
    state = ServerState()
    protocol: Any = functools.partial(
        config.http_protocol_class,  # type: ignore[call-arg]
        config=config,
        server_state=state,
        app_state={},
    )
    server = await asyncio.get_running_loop().create_server(protocol, host, port, ssl=config.ssl)
    return server, state


def close(server: asyncio.AbstractServer, state: ServerState) -> None:
    server.close()
    for connection in list(state.connections):
        connection.shutdown()


class RegistryListeners:
    """The data plane's sockets: one HTTPS listener per registry login server, and the storage
    stand-in's (once, with the first front), all serving apps given ready-made."""

    def __init__(self, config: EmulatorConfig, front: ASGIApp, storage: ASGIApp) -> None:
        self._config = config
        self._front = front
        self._storage = storage
        self.by_port: dict[int, str] = {}  # listening port → registry id
        self._servers: dict[str, tuple[asyncio.AbstractServer, ServerState]] = {}
        self._storage_server: tuple[asyncio.AbstractServer, ServerState] | None = None
        self._storage_lock = asyncio.Lock()
        self.storage_port = 0  # known once a front has started

    def serves(self, registry_id: str) -> bool:
        return registry_id.lower() in self._servers

    async def start(self, registry_id: str, port: int) -> int:
        """The registry's listener on `port` (0: any free one); returns the port it took."""
        await self._start_storage()
        config = self._config
        server, state = await listen(self._front, config.host, port, config.tls_cert, config.tls_key)
        bound = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._servers[registry_id.lower()] = (server, state)
        self.by_port[bound] = registry_id
        return bound

    def stop(self, registry_id: str) -> None:
        entry = self._servers.pop(registry_id.lower(), None)
        if entry is not None:
            close(*entry)
        self.by_port = {p: r for p, r in self.by_port.items() if r.lower() != registry_id.lower()}

    def close(self) -> None:
        for registry_id in list(self._servers):
            close(*self._servers.pop(registry_id))
        if self._storage_server is not None:
            close(*self._storage_server)
            self._storage_server = None

    async def _start_storage(self) -> None:
        async with self._storage_lock:
            if self._storage_server is not None:
                return
            config = self._config
            self._storage_server = await listen(
                self._storage, config.host, config.blob_port, config.tls_cert, config.tls_key
            )
            self.storage_port = int(self._storage_server[0].sockets[0].getsockname()[1])  # type: ignore[attr-defined]
