"""A local Azure Functions host for Python v2 apps, for machines without Core Tools.

`python -m devstack.host --app MODULE --port N [--settings local.settings.json] [--host-json host.json]
[--state-dir DIR]` serves HTTP triggers (also an AsgiFunctionApp), the Event Grid webhook, queue
triggers and output bindings on Azure Storage queues, and timer triggers, on 127.0.0.1.
"""

from __future__ import annotations

from .errors import HostError
from .server import Host, main

__all__ = ["Host", "HostError", "main"]
