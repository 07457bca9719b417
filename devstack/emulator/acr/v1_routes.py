"""HTTP handlers of `/acr/v1/`, ACR's metadata API: one method per route, over `RepositoryMetadata`.

Repository names hold slashes, so one Starlette route takes the whole rest of the path and `target`
splits it: `{name}`, `{name}/_tags[/{tag}]`, `{name}/_manifests[/{digest}]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import AcrError
from .attributes import manifest_target, tag_target
from .auth import RegistryAuth
from .http import Resolve, authorization, method_not_allowed, page_size, paged, read_json
from .metadata import RepositoryMetadata, after, manifest_digest, ordered, tag_name
from .names import check_repository
from .records import FrontRegistry
from .registry_storage import ManifestRecord, RegistryStorage, TagRecord
from .routes import catalog

Kind = Literal["repository", "tags", "manifests"]
SCOPE_ACTION = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}


@dataclass(frozen=True)
class Target:
    """What an `/acr/v1/` path names: a repository, its tags or manifests, or one of them (`ref`)."""

    kind: Kind
    repository: str
    ref: str | None = None


MARKERS: tuple[tuple[str, Kind], ...] = (("/_tags", "tags"), ("/_manifests", "manifests"))
# The methods `ACRDATA` lists for each path, by what it names and whether it names one tag or manifest.
# No HEAD anywhere (Starlette routes HEAD to every GET route; ASP.NET Core's routing does not).
ALLOWED: dict[tuple[Kind, bool], tuple[str, ...]] = {
    ("repository", False): ("DELETE", "GET", "PATCH"),
    ("tags", False): ("GET",),
    ("tags", True): ("DELETE", "GET", "PATCH"),
    ("manifests", False): ("GET",),
    ("manifests", True): ("GET", "PATCH"),
}


def target(rest: str) -> Target:
    for marker, kind in MARKERS:
        if rest.endswith(marker):
            name = rest[: -len(marker)]
            check_repository(name)
            return Target(kind, name)
        if marker + "/" in rest:
            name, _, ref = rest.rpartition(marker + "/")
            check_repository(name)
            return Target(kind, name, ref)
    check_repository(rest)
    return Target("repository", rest)


@dataclass(frozen=True)
class Call:
    """One `/acr/v1/` request, once its registry and repository are known."""

    request: Request
    registry: FrontRegistry
    storage: RegistryStorage
    target: Target

    @property
    def name(self) -> str:
        return self.target.repository

    @property
    def ref(self) -> str:
        return self.target.ref or ""


Handler = Callable[[Call], Awaitable[Response]]


class MetadataRoutes:
    def __init__(self, resolve: Resolve, auth: RegistryAuth, metadata: RepositoryMetadata) -> None:
        self._resolve = resolve
        self._auth = auth
        self._metadata = metadata
        self._attributes = metadata.attributes
        self._handlers: dict[tuple[Kind, bool, str], Handler] = {
            ("repository", False, "GET"): self.get_repository,
            ("repository", False, "PATCH"): self.patch_repository,
            ("repository", False, "DELETE"): self.delete_repository,
            ("tags", False, "GET"): self.list_tags,
            ("tags", True, "GET"): self.get_tag,
            ("tags", True, "PATCH"): self.patch_tag,
            ("tags", True, "DELETE"): self.delete_tag,
            ("manifests", False, "GET"): self.list_manifests,
            ("manifests", True, "GET"): self.get_manifest,
            ("manifests", True, "PATCH"): self.patch_manifest,
            ("manifests", True, "DELETE"): self.delete_manifest,
        }

    async def catalog(self, request: Request) -> Response:
        """`/acr/v1/_catalog`."""
        return await catalog(request, self._resolve(request), self._auth, self._metadata, "/acr/v1/_catalog")

    async def dispatch(self, request: Request) -> Response:
        """`/acr/v1/{rest}`: authorized for the method (read, write or delete metadata) on a repository
        that exists, then handed to the route's method."""
        registry = self._resolve(request)
        found = target(request.path_params["rest"])
        allowed = ALLOWED[found.kind, found.ref is not None]
        action = SCOPE_ACTION.get(request.method)
        if action is None:  # HEAD: refused as routing refuses it, before any credential is looked at
            raise method_not_allowed(allowed)
        self._auth.authorize(registry, authorization(request), "repository", found.repository, action)
        storage = self._metadata.existing(registry, found.repository)
        handler = self._handlers.get((found.kind, found.ref is not None, request.method))
        if handler is None:
            raise method_not_allowed(allowed)
        return await handler(Call(request, registry, storage, found))

    # Repositories -------------------------------------------------------------------------------
    async def get_repository(self, call: Call) -> Response:
        return JSONResponse(await self._metadata.repository(call.registry, call.storage, call.name))

    async def patch_repository(self, call: Call) -> Response:
        self._attributes.update(call.registry, call.name, await read_json(call.request))
        return await self.get_repository(call)

    async def delete_repository(self, call: Call) -> Response:
        deleted = await self._metadata.delete_repository(call.registry, call.storage, call.name)
        return JSONResponse(deleted, status_code=202)

    # Tags ---------------------------------------------------------------------------------------
    async def list_tags(self, call: Call) -> Response:
        query = call.request.query_params
        digest, last = query.get("digest"), query.get("last")
        if digest is None and not query.get("orderby"):
            # By name, the default: read only this page's tags (and one more, for the Link).
            size = page_size(call.request)
            views = await self._metadata.tag_page(call.registry, call.storage, call.name, last, size + 1)
        else:
            views = await self._metadata.tags(call.registry, call.storage, call.name, digest)
            views = after(ordered(views, query.get("orderby", ""), tag_name), tag_name, last)
        page, headers = paged(call.request, views, tag_name, f"/acr/v1/{call.name}/_tags")
        body = {"registry": call.registry.login_server, "imageName": call.name, "tags": page}
        return JSONResponse(body, headers=headers)

    async def get_tag(self, call: Call) -> Response:
        return self._tag(call, await self._metadata.tag(call.storage, call.name, call.ref))

    async def patch_tag(self, call: Call) -> Response:
        found = await self._metadata.tag(call.storage, call.name, call.ref)
        self._attributes.update(call.registry, tag_target(call.name, call.ref), await read_json(call.request))
        return self._tag(call, found)

    def _tag(self, call: Call, found: TagRecord) -> Response:
        view = self._metadata.tag_view(call.registry, call.name, found)
        return JSONResponse({"registry": call.registry.login_server, "imageName": call.name, "tag": view})

    async def delete_tag(self, call: Call) -> Response:
        await self._metadata.tag(call.storage, call.name, call.ref)
        await self._metadata.untag(call.registry, call.storage, call.name, call.ref)
        return Response(status_code=202)

    # Manifests ----------------------------------------------------------------------------------
    async def list_manifests(self, call: Call) -> Response:
        query = call.request.query_params
        if not query.get("orderby"):
            # By digest, the default: build only this page's views (and one more, for the Link).
            size = page_size(call.request)
            views = await self._metadata.manifest_page(
                call.registry, call.storage, call.name, query.get("last"), size + 1
            )
        else:
            views = await self._metadata.manifests(call.registry, call.storage, call.name)
            views = after(
                ordered(views, query.get("orderby", ""), manifest_digest), manifest_digest, query.get("last")
            )
        page, headers = paged(call.request, views, manifest_digest, f"/acr/v1/{call.name}/_manifests")
        body = {"registry": call.registry.login_server, "imageName": call.name, "manifests": page}
        return JSONResponse(body, headers=headers)

    async def get_manifest(self, call: Call) -> Response:
        return await self._manifest(call, await self._metadata.manifest(call.storage, call.name, call.ref))

    async def patch_manifest(self, call: Call) -> Response:
        found = await self._metadata.manifest(call.storage, call.name, call.ref)
        patch = await read_json(call.request)
        self._attributes.update(call.registry, manifest_target(call.name, call.ref), patch)
        return await self._manifest(call, found)

    async def _manifest(self, call: Call, found: ManifestRecord) -> Response:
        view = await self._metadata.manifest_of(call.registry, call.storage, call.name, found)
        return JSONResponse(
            {"registry": call.registry.login_server, "imageName": call.name, "manifest": view}
        )

    async def delete_manifest(self, call: Call) -> Response:
        await self._metadata.manifest(call.storage, call.name, call.ref)
        raise AcrError(
            405,
            "UNSUPPORTED",
            "delete manifests through /v2/{name}/manifests/{digest}",
            headers={"Allow": ", ".join(ALLOWED["manifests", True])},
        )
