"""The emulator's configuration: one JSON file written by `python -m devstack up`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmulatorConfig:
    state_dir: Path
    host: str
    arm_port: int
    identity_port: int
    tls_cert: Path
    tls_key: Path
    ca_cert: Path
    tenant_id: str
    subscription_id: str
    identity_header: str
    signing_key: str
    registry_backend: str  # docker-registry, e.g. http://127.0.0.1:5000
    registry_storage: Path  # docker-registry's filesystem root
    storage_connection_string: str  # Azurite: build sources and run logs
    agents: int = 2
    delete_delay_seconds: float = 1.0
    page_size: int = 100
    max_source_bytes: int = 200 * 1024 * 1024

    @property
    def arm_endpoint(self) -> str:
        return f"https://{self.host}:{self.arm_port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://{self.host}:{self.identity_port}/msi/token"

    @classmethod
    def load(cls, path: Path) -> EmulatorConfig:
        raw = json.loads(path.read_text())
        for key in ("state_dir", "tls_cert", "tls_key", "ca_cert", "registry_storage"):
            raw[key] = Path(raw[key])
        return cls(**raw)

    def dump(self, path: Path) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)
