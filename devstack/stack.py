"""Start, stop and describe the local stack: docker-registry, Azurite and the emulator."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.emulator.eventgrid.notifications import PATH as NOTIFICATIONS_PATH
from devstack.emulator.eventgrid.notifications import notification_token

from .certs import TlsFiles, ensure_tls
from .emulator.config import EmulatorConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
AZURITE_ACCOUNT = "devstoreaccount1"
# Children started by this process, reaped when stopped (a `down` from another process uses pids).
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """The stack cannot start or is not running."""


def default_home() -> Path:
    return Path(os.environ.get("DEVSTACK_HOME", REPO_ROOT / ".devstack")).resolve()


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, for a service to bind a moment later. Chosen below the kernel's
    ephemeral range: a port from that range (what binding port 0 gives) can be taken in between as the
    source port of any outgoing connection, and the service then fails with "address already in use"."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, low) if low > 10000 else random.randrange(1024, 65536)  # noqa: S311
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise StackError("no free port below the ephemeral range")


@dataclass
class Identity:
    subscription_id: str
    tenant_id: str
    identity_header: str
    signing_key: str
    storage_key: str


def load_identity(home: Path) -> Identity:
    """Ids and keys made once per state directory; never committed anywhere."""
    path = home / "secrets.json"
    if path.exists():
        return Identity(**json.loads(path.read_text()))
    identity = Identity(
        subscription_id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        identity_header=secrets.token_urlsafe(32),
        signing_key=secrets.token_urlsafe(48),
        storage_key=base64.b64encode(secrets.token_bytes(64)).decode(),
    )
    write_private(path, json.dumps(identity.__dict__))
    return identity


def other_subscriptions(identity: Identity, count: int = 2) -> tuple[str, ...]:
    """More subscriptions of the tenant, for what spans several (cleanup's CLEANUP_SUBSCRIPTIONS):
    named from the first, so a state directory keeps them."""
    first = uuid.UUID(identity.subscription_id)
    return tuple(str(uuid.uuid5(first, f"subscription-{n}")) for n in range(2, count + 2))


def _pids(home: Path) -> dict[str, int]:
    path = home / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, private from its creation (no window at 0644)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file from before this rule keeps its old mode through O_CREAT
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def make_private_home(home: Path) -> None:
    """The state directory holds every key devstack makes: its owner's alone."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)


def _spawn(name: str, args: list[str], home: Path, env: dict[str, str] | None = None, umask: int = -1) -> int:
    logs = home / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    descriptor = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "ab") as out:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
            umask=umask,
        )
    _children[process.pid] = process
    return process.pid


def _wait(name: str, check: Callable[[], bool], pid: int, home: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            tail = (home / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
            raise StackError(f"{name} exited during start-up; its log ends with:\n{tail}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise StackError(f"{name} did not become healthy within {timeout:.0f}s (see {home}/logs/{name}.log)")


def _tcp(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


def _http(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 (loopback only)
        return bool(response.status == 200)


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise StackError(f"{tool} not found: install it with 'apt-get install {package}' (make does it)")
    return path


def azurite_args(location: Path, blob_port: int, queue_port: int, table_port: int) -> list[str]:
    """Azurite's command line: blob, queue and table services persisted under `location`."""
    azurite_bin = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    ports = {"blob": blob_port, "queue": queue_port, "table": table_port}
    args = [str(azurite_bin), "--silent", "--location", str(location)]
    for service, port in ports.items():
        args += [f"--{service}Host", HOST, f"--{service}Port", str(port)]
    return [*args, "--skipApiVersionCheck", "--disableProductStyleUrl", "--disableTelemetry"]


def storage_connection_string(key: str, blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://{HOST}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{HOST}:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://{HOST}:{table_port}/{AZURITE_ACCOUNT};"
    )


def _registry_config(home: Path, registry_port: int, identity_port: int, signing_key: str) -> dict[str, Any]:
    return {
        "version": 0.1,
        # No access log: a line per request was a good part of docker-registry's CPU in a burst; the
        # emulator's own log and /_devstack/stats say what the fronts forwarded.
        "log": {"level": "warn", "fields": {"service": "registry"}, "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(home / "registry")},
            "delete": {"enabled": True},
            # Blob descriptors (digest → size, media type) from memory, not from the filesystem on every
            # request: docker-registry's own cache, kept right by docker-registry across deletes.
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"{HOST}:{registry_port}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        # Every push and delete is announced to the emulator, which turns them into ACR events.
        "notifications": {
            "endpoints": [
                {
                    "name": "devstack-eventgrid",
                    "url": f"http://{HOST}:{identity_port}{NOTIFICATIONS_PATH}",
                    "headers": {"Authorization": [f"Bearer {notification_token(signing_key)}"]},
                    "timeout": "5s",
                    "threshold": 3,
                    "backoff": "1s",
                    "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
                }
            ]
        },
    }


# Go's runtime for docker-registry, whose heap stays small: one P (no threads spinning for work on every
# wake-up) and a rarer GC halve its CPU per request (about 1.2 → 0.7 ms on 2 cores); it answers the same.
REGISTRY_ENV = {"GOMAXPROCS": "1", "GOGC": "400"}


def _start_registry(
    home: Path, registry_bin: str, identity: Identity, pids: dict[str, int]
) -> tuple[int, int]:
    """docker-registry: the real OCI registry behind every emulated login server. Returns its port and
    the identity listener's, chosen first: the registry's notifications go there."""
    registry_port = free_port()
    identity_port = free_port()
    (home / "registry").mkdir(mode=0o700, exist_ok=True)
    config = _registry_config(home, registry_port, identity_port, identity.signing_key)
    write_private(home / "registry.yml", yaml.safe_dump(config))  # the notification token
    # Its storage holds every registry's images, quarantined ones included: private (umask).
    pids["registry"] = _spawn(
        "registry", [registry_bin, "serve", str(home / "registry.yml")], home, env=REGISTRY_ENV, umask=0o077
    )
    return registry_port, identity_port


def _start_azurite(home: Path, identity: Identity, pids: dict[str, int]) -> str:
    """Azurite's three services; returns their connection string."""
    blob_port, queue_port, table_port = free_port(), free_port(), free_port()
    pids["azurite"] = _spawn(
        "azurite",
        azurite_args(home / "azurite", blob_port, queue_port, table_port),
        home,
        env={"AZURITE_ACCOUNTS": f"{AZURITE_ACCOUNT}:{identity.storage_key}"},
        umask=0o077,
    )
    _wait(
        "azurite",
        lambda: _tcp(blob_port) and _tcp(queue_port) and _tcp(table_port),
        pids["azurite"],
        home,
    )
    return storage_connection_string(identity.storage_key, blob_port, queue_port, table_port)


def _emulator_config(
    home: Path, identity: Identity, tls: TlsFiles, registry_port: int, identity_port: int, connection: str
) -> EmulatorConfig:
    env = os.environ
    max_source_bytes = int(env.get("DEVSTACK_MAX_SOURCE_BYTES", str(200 * 1024 * 1024)))
    return EmulatorConfig(
        state_dir=home,
        host=HOST,
        arm_port=free_port(),
        identity_port=identity_port,
        tls_cert=tls.server_cert,
        tls_key=tls.server_key,
        ca_cert=tls.ca_cert,
        tenant_id=identity.tenant_id,
        subscription_id=identity.subscription_id,
        other_subscriptions=other_subscriptions(identity),
        identity_header=identity.identity_header,
        signing_key=identity.signing_key,
        registry_backend=f"http://{HOST}:{registry_port}",
        registry_storage=home / "registry",
        storage_connection_string=connection,
        agents=int(env.get("DEVSTACK_AGENTS", "2")),
        delete_delay_seconds=float(env.get("DEVSTACK_DELETE_DELAY", "1")),
        page_size=int(env.get("DEVSTACK_PAGE_SIZE", "100")),
        max_source_bytes=max_source_bytes,
        max_source_expanded_bytes=int(
            env.get("DEVSTACK_MAX_SOURCE_EXPANDED_BYTES", str(10 * max_source_bytes))
        ),
        max_source_entries=int(env.get("DEVSTACK_MAX_SOURCE_ENTRIES", "100000")),
        **EmulatorConfig.eventgrid_from_env(env),
    )


def _start_emulator(home: Path, config: EmulatorConfig, ca_cert: Path, pids: dict[str, int]) -> None:
    config.dump(home / "emulator.json")
    pids["emulator"] = _spawn(
        "emulator", [sys.executable, "-m", "devstack.emulator", str(home / "emulator.json")], home
    )
    context = ssl.create_default_context(cafile=str(ca_cert))
    _wait(
        "emulator",
        lambda: _http(f"{config.arm_endpoint}/_devstack/health", context) and _tcp(config.identity_port),
        pids["emulator"],
        home,
    )


def _write_endpoints(
    home: Path, config: EmulatorConfig, identity: Identity, ca_cert: Path
) -> dict[str, object]:
    """endpoints.json for tools and tests, and `env` for a shell (`source .devstack/env`)."""
    connection = config.storage_connection_string
    endpoints: dict[str, object] = {
        "armEndpoint": config.arm_endpoint,
        "authorityHost": config.arm_endpoint,
        "caBundle": str(ca_cert),
        "identityEndpoint": config.identity_endpoint,
        "identityHeader": identity.identity_header,
        "subscriptionId": identity.subscription_id,
        "subscriptionIds": list(config.subscriptions),
        "tenantId": identity.tenant_id,
        "storageConnectionString": connection,
        "registryBackend": config.registry_backend,
        "home": str(home),
    }
    write_private(home / "endpoints.json", json.dumps(endpoints, indent=2))
    exports = {
        "DEVSTACK_HOME": str(home),
        "AZURE_RESOURCE_MANAGER_ENDPOINT": config.arm_endpoint,
        "AZURE_AUTHORITY_HOST": config.arm_endpoint,
        "AZURE_SUBSCRIPTION_ID": identity.subscription_id,
        "AZURE_TENANT_ID": identity.tenant_id,
        "IDENTITY_ENDPOINT": config.identity_endpoint,
        "IDENTITY_HEADER": identity.identity_header,
        "REQUESTS_CA_BUNDLE": str(ca_cert),
        "SSL_CERT_FILE": str(ca_cert),
        "AzureWebJobsStorage": connection,
    }
    write_private(home / "env", "".join(f"export {k}='{v}'\n" for k, v in exports.items()))
    return endpoints


def up(home: Path | None = None) -> dict[str, object]:
    home = home or default_home()
    make_private_home(home)
    if any(_alive(pid) for pid in _pids(home).values()):
        raise StackError(f"devstack is already running from {home}; run 'python -m devstack down' first")
    registry_bin = _need("docker-registry", "docker-registry")
    azurite_bin = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not azurite_bin.exists():
        raise StackError("Azurite not found: run 'npm install' in the repository (make does it)")
    _need("node", "nodejs")
    identity = load_identity(home)
    tls = ensure_tls(home / "tls")
    pids: dict[str, int] = {}
    try:
        registry_port, identity_port = _start_registry(home, registry_bin, identity, pids)
        connection = _start_azurite(home, identity, pids)
        _wait("registry", lambda: _http(f"http://{HOST}:{registry_port}/v2/"), pids["registry"], home)
        config = _emulator_config(home, identity, tls, registry_port, identity_port, connection)
        _start_emulator(home, config, tls.ca_cert, pids)
    except BaseException:
        _stop(pids)
        raise
    write_private(home / "pids.json", json.dumps(pids))
    return _write_endpoints(home, config, identity, tls.ca_cert)


def _stop(pids: dict[str, int], timeout: float = 15) -> list[str]:
    # The app host first (no new work), then the emulator, so it can cancel its runs while the
    # registry still answers.
    order = sorted(pids, key=lambda name: {"host": 0, "emulator": 1}.get(name, 2))
    for name in order:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pids[name]) and time.monotonic() < deadline:
            time.sleep(0.05)
    survivors = []
    for name, pid in pids.items():
        if _alive(pid):
            survivors.append(name)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout=timeout)
    return survivors


def spawn_service(home: Path, name: str, args: list[str], env: dict[str, str]) -> int:
    """Start one more service of the stack; `down` stops it with the rest."""
    pids = _pids(home)
    if name in pids and _alive(pids[name]):
        raise StackError(f"{name} is already running")
    pid = _spawn(name, args, home, env)
    pids[name] = pid
    write_private(home / "pids.json", json.dumps(pids))
    return pid


def stop_service(home: Path, name: str) -> None:
    pids = _pids(home)
    if name in pids:
        _stop({name: pids.pop(name)})
        write_private(home / "pids.json", json.dumps(pids))


def wait_until(name: str, check: Callable[[], bool], pid: int, home: Path, timeout: float = 60) -> None:
    _wait(name, check, pid, home, timeout)


def down(home: Path | None = None) -> list[str]:
    home = home or default_home()
    pids = _pids(home)
    killed = _stop(pids)
    (home / "pids.json").unlink(missing_ok=True)
    return killed


def status(home: Path | None = None) -> dict[str, bool]:
    home = home or default_home()
    return {name: _alive(pid) for name, pid in _pids(home).items()}
