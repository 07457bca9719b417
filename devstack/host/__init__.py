"""A local Azure Functions host for Python v2 apps, for machines without Core Tools.

`python -m devstack.host --app MODULE --port N [--settings local.settings.json] [--host-json host.json]
[--state-dir DIR]` serves HTTP triggers (an ASGI app through azure.functions' AsgiMiddleware, as in
Azure), the Event Grid webhook, queue triggers and output bindings on Azure Storage queues, and timer
triggers, on 127.0.0.1. It refuses to start where the Functions host would (a route ASP.NET refuses,
a route in the host's own space) and serves routes in the host's order (by function name).
"""

from __future__ import annotations

from .errors import HostError
from .server import Host, main

__all__ = ["Host", "HostError", "main"]
