"""The host's one start-up error: what is wrong, naming the function and binding when there is one."""

from __future__ import annotations


class HostError(RuntimeError):
    """The host cannot start with this app, settings or host.json."""
