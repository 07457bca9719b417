"""The emulator's configuration: one JSON file written by `python -m devstack up`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    subscription_id: str  # the default subscription; the identity's role covers every one
    identity_header: str
    signing_key: str
    registry_backend: str  # docker-registry, e.g. http://127.0.0.1:5000
    registry_storage: Path  # docker-registry's filesystem root
    storage_connection_string: str  # Azurite: build sources and run logs
    other_subscriptions: tuple[str, ...] = ()  # more subscriptions the tenant holds, empty at first
    agents: int = 2
    delete_delay_seconds: float = 1.0
    page_size: int = 100
    max_source_bytes: int = 200 * 1024 * 1024  # a build context as uploaded (tar.gz)
    max_source_expanded_bytes: int = 2 * 1024 * 1024 * 1024  # its files' content once extracted
    max_source_entries: int = 100_000  # files, directories and links in it
    # Event Grid delivery on a compressed schedule (Azure: 30 s timeout, retries from 10 s to 12 h).
    eventgrid_delivery_timeout_seconds: float = 30.0
    eventgrid_retry_base_seconds: float = 0.2  # first retry delay; doubles, with jitter
    eventgrid_retry_max_seconds: float = 5.0  # cap of a retry delay
    eventgrid_max_concurrency: int = 32  # HTTP deliveries in flight, all subscriptions
    eventgrid_subscription_concurrency: int = 4  # in flight per subscription
    eventgrid_validation_window_seconds: float = 300.0  # a validationUrl stays valid this long
    eventgrid_ttl_minute_seconds: float = 60.0  # length of one eventTimeToLiveInMinutes minute
    # Blob downloads: the login server answers 307 to a signed link on another host, as ACR sends them to
    # its storage (`*.blob.core.windows.net`) or data endpoint. Another name than `host` (clients drop
    # credentials only when the host changes) that the certificate covers; links last 20 minutes (ACR docs).
    blob_host: str = "localhost"
    blob_port: int = 0  # 0: any free port, chosen when the first registry front starts
    blob_link_seconds: float = 1200.0

    def __post_init__(self) -> None:
        if self.blob_host.lower() == self.host.lower():
            raise ValueError("blob_host must differ from host: redirected downloads must change host")

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (self.subscription_id, *self.other_subscriptions)

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
        raw["other_subscriptions"] = tuple(raw.get("other_subscriptions", ()))
        return cls(**raw)

    @staticmethod
    def eventgrid_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
        """The `DEVSTACK_EVENTGRID_*` knobs read by `python -m devstack up`, as config fields."""
        knobs: dict[str, tuple[str, type]] = {
            "DEVSTACK_EVENTGRID_DELIVERY_TIMEOUT": ("eventgrid_delivery_timeout_seconds", float),
            "DEVSTACK_EVENTGRID_RETRY_BASE": ("eventgrid_retry_base_seconds", float),
            "DEVSTACK_EVENTGRID_RETRY_MAX": ("eventgrid_retry_max_seconds", float),
            "DEVSTACK_EVENTGRID_CONCURRENCY": ("eventgrid_max_concurrency", int),
            "DEVSTACK_EVENTGRID_SUBSCRIPTION_CONCURRENCY": ("eventgrid_subscription_concurrency", int),
            "DEVSTACK_EVENTGRID_VALIDATION_WINDOW": ("eventgrid_validation_window_seconds", float),
            "DEVSTACK_EVENTGRID_TTL_MINUTE": ("eventgrid_ttl_minute_seconds", float),
        }
        return {field: kind(environ[name]) for name, (field, kind) in knobs.items() if environ.get(name)}

    def dump(self, path: Path) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)
