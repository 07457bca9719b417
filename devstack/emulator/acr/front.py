"""ACR data plane: one HTTPS listener per registry login server, in front of docker-registry.

Each registry's repositories live in docker-registry under a namespace named after
the registry. The front authenticates with ACR's token flow (`acr_auth`), proxies `/v2/`
(streaming both ways, headers rewritten to the login server: `acr_backend`), serves `/acr/v1/`
from docker-registry's storage (`acr_metadata`), serves the OCI 1.1 referrers API, which docker-registry
2.8 lacks, from the manifests it stores (`acr_referrers`), and enforces ACR's changeable attributes
(`acr_rules`). The handlers of each API (`acr_routes`, `acr_v1_routes`) sit over those.

A blob GET answers 307 with a signed, short-lived link on another host, as ACR sends
downloads to its storage account (a SAS URL on `*.blob.core.windows.net`) or to a
dedicated data endpoint: one more HTTPS listener, the storage stand-in, serves the
bytes for a valid link and, as Azure Storage does, refuses any `Authorization` header
(`blob_links`).

`Fronts` puts these together for the emulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import AcrError
from .attributes import AttributeStore
from .auth import RegistryAuth, parse_scopes
from .backend import RegistryBackend
from .blob_links import BlobLinks, StorageError, link_signature
from .host import RegistryHost
from .http import method_not_allowed
from .listeners import RegistryListeners
from .metadata import RepositoryMetadata
from .names import DIGEST, REPOSITORY, SCOPE, TAG, V2_PATH, check_repository
from .records import FrontRegistry
from .routes import StorageRoutes, TokenRoutes, V2Routes
from .rules import ImageRules
from .v1_routes import MetadataRoutes

__all__ = [
    "DIGEST",
    "REPOSITORY",
    "SCOPE",
    "TAG",
    "V2_PATH",
    "Fronts",
    "check_repository",
    "link_signature",
    "parse_scopes",
]
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AcrError | StorageError)
    return exc.response()


def route(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> Route:
    """A route that takes `methods` and no other. Starlette also sends HEAD to every GET route; ACR's API
    (`ACRDATA`) has HEAD only where it lists it, and ASP.NET Core's routing answers a method no endpoint
    lists with 405 (`aspnet-routing`)."""

    async def only(request: Request) -> Response:
        if request.method not in methods:
            raise method_not_allowed(methods)
        return await endpoint(request)

    return Route(path, only, methods=methods)


class Fronts:
    """The registry fronts of one emulator: their apps, and the listeners that serve them."""

    def __init__(self, host: RegistryHost) -> None:
        self._host = host
        config = host.config
        self.backend = RegistryBackend(config.registry_backend)
        attributes = AttributeStore(host.store)
        auth = RegistryAuth(host.tokens, config.arm_endpoint)
        metadata = RepositoryMetadata(config.registry_storage, attributes, self.backend)
        self.links = BlobLinks(
            config.signing_key,
            config.blob_host,
            config.blob_link_seconds,
            lambda: self.listeners.storage_port,
        )
        tokens = TokenRoutes(self.registry, auth)
        v2 = V2Routes(self.registry, auth, ImageRules(attributes), metadata, self.backend, self.links)
        acr = MetadataRoutes(self.registry, auth, metadata)
        storage = StorageRoutes(self.links, self.backend)
        self.app = Starlette(
            routes=[
                route("/v2/", v2.ping, methods=["GET", "HEAD"]),
                route("/v2/_catalog", v2.catalog, methods=["GET"]),
                route(
                    "/v2/{rest:path}", v2.forward, methods=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
                ),
                route("/oauth2/exchange", tokens.exchange, methods=["POST"]),
                route("/oauth2/token", tokens.token, methods=["GET", "POST"]),
                route("/acr/v1/_catalog", acr.catalog, methods=["GET"]),
                # HEAD reaches `dispatch`, which knows what each path allows.
                Route("/acr/v1/{rest:path}", acr.dispatch, methods=["GET", "PATCH", "DELETE"]),
            ],
            exception_handlers={AcrError: error_response},
        )
        self.downloads_app = Starlette(
            routes=[Route("/{rest:path}", storage.download, methods=METHODS)],
            exception_handlers={StorageError: error_response},
        )
        # The storage stand-in's requests count and take faults as `dataplane`'s: they are the second
        # half of a registry download.
        self.listeners = RegistryListeners(
            config,
            host.faults.wrap(self.app, "dataplane"),
            host.faults.wrap(self.downloads_app, "dataplane"),
        )

    def registry(self, request: Request) -> FrontRegistry:
        """The registry whose login server (listening port) a request came to."""
        registry_id = self.listeners.by_port.get(request.scope["server"][1])
        record = self._host.store.get("registry", registry_id) if registry_id else None
        if record is None:
            raise AcrError(404, "NAME_UNKNOWN", "registry not found")
        return FrontRegistry.from_record(record, self._host.backend_namespace(record))

    @property
    def downloads_port(self) -> int:
        """The storage stand-in's port (blob GETs redirect there); known once a front has started."""
        return self.listeners.storage_port

    async def start(self, registry: dict[str, Any]) -> int:
        """The registry's front, on the port its record keeps (a new one if it has none yet)."""
        if self.listeners.serves(registry["id"]):
            return int(registry["_port"])
        return await self.listeners.start(registry["id"], int(registry.get("_port") or 0))

    async def stop(self, registry: dict[str, Any]) -> None:
        self.listeners.stop(registry["id"])

    async def close(self) -> None:
        self.listeners.close()
        await self.backend.close()
