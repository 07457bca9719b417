"""Extra listeners in the emulator's event loop (managed identity, one per registry).

uvicorn serves the ARM app; these reuse its HTTP protocol on further sockets so
that one process and one loop hold every endpoint.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState


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
