"""What the registry front needs from the emulator: a Protocol, so that the front never imports the
service that starts it (no import cycle, and tests can hand it a small stand-in)."""

from __future__ import annotations

from typing import Any, Protocol

from ..config import EmulatorConfig
from ..faults import Faults
from ..store import Store
from ..tokens import TokenService


class RegistryHost(Protocol):
    @property
    def config(self) -> EmulatorConfig: ...

    @property
    def store(self) -> Store: ...

    @property
    def tokens(self) -> TokenService: ...

    @property
    def faults(self) -> Faults: ...

    def backend_namespace(self, registry: dict[str, Any]) -> str:
        """The registry's namespace in docker-registry."""
        ...
