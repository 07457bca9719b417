"""HTTP handlers of a registry's login server (the token endpoints and `/v2/`) and of the storage stand-in
its blob downloads redirect to: one method per route, over the domain operations."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import AcrError
from .attributes import manifest_target, tag_target
from .auth import RegistryAuth, challenge
from .backend import RegistryBackend, relay
from .blob_links import INTERNAL, SAS_VERSION, BlobLinks, BlobRef, StorageError
from .http import Resolve, authorization, method_not_allowed, paged, read_bounded, read_form
from .metadata import RepositoryMetadata
from .names import DIGEST, REFERRERS_PATH, V2_PATH, check_repository, denied
from .records import FrontRegistry
from .referrers import IMAGE_INDEX, MANIFEST_LIMIT, Referrer, ReferrersIndex, pushed_subject
from .registry_storage import RegistryStorage
from .rules import ImageRules, v2_action

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}
# ACR's page of referrers is undocumented: small, so that clients are seen to follow the `Link`.
REFERRERS_PAGE_SIZE = 2
PASS_BLOB = {"content-type", "content-length", "content-range", "accept-ranges", "etag", "last-modified"}


async def catalog(
    request: Request, registry: FrontRegistry, auth: RegistryAuth, metadata: RepositoryMetadata, path: str
) -> Response:
    """`/v2/_catalog` and `/acr/v1/_catalog` list the same repositories: a page of those after `last`."""
    auth.authorize(registry, authorization(request), "registry", "catalog", "*")
    names = await asyncio.to_thread(metadata.listed_repositories, registry)  # reads the storage's files
    last = request.query_params.get("last")
    if last:
        names = [n for n in names if n > last]
    page, headers = paged(request, names, str, path)
    return JSONResponse({"repositories": page}, headers=headers)


class TokenRoutes:
    """`/oauth2/exchange` and `/oauth2/token`."""

    def __init__(self, resolve: Resolve, auth: RegistryAuth) -> None:
        self._resolve = resolve
        self._auth = auth

    async def exchange(self, request: Request) -> Response:
        registry = self._resolve(request)
        refresh = self._auth.exchange(registry, await read_form(request))
        return JSONResponse({"refresh_token": refresh})

    async def token(self, request: Request) -> Response:
        """GET with Basic auth (`docker login`), POST with a refresh token or the admin user's password."""
        registry = self._resolve(request)
        if request.method == "GET":
            params: dict[str, str] = dict(request.query_params)
            scope = " ".join(request.query_params.getlist("scope"))
            subject = self._auth.basic_subject(registry, authorization(request))
        else:
            params = await read_form(request)
            scope = params.get("scope", "")
            subject = self._auth.form_subject(registry, params)
        token = self._auth.access_token(registry, subject, scope, params.get("service"))
        return JSONResponse({"access_token": token, "token": token})


class V2Routes:
    """`/v2/`: the API version check, the catalog, and everything else forwarded to docker-registry."""

    def __init__(
        self,
        resolve: Resolve,
        auth: RegistryAuth,
        rules: ImageRules,
        metadata: RepositoryMetadata,
        backend: RegistryBackend,
        links: BlobLinks,
    ) -> None:
        self._resolve = resolve
        self._auth = auth
        self._rules = rules
        self._metadata = metadata
        self._backend = backend
        self._links = links
        self._referrers = ReferrersIndex()

    async def ping(self, request: Request) -> Response:
        registry = self._resolve(request)
        if self._auth.grants(registry, authorization(request)) is None:
            raise challenge(registry, None)
        return JSONResponse({}, headers=API_VERSION)

    async def catalog(self, request: Request) -> Response:
        return await catalog(request, self._resolve(request), self._auth, self._metadata, "/v2/_catalog")

    async def forward(self, request: Request) -> Response:
        """`/v2/{name}/(manifests|blobs|blobs/uploads|tags)/...`, with ACR's attributes enforced, and
        `/v2/{name}/referrers/{digest}`, which the front serves itself."""
        registry = self._resolve(request)
        listing = REFERRERS_PATH.fullmatch(request.path_params["rest"])
        if listing:
            return await self.referrers(request, registry, listing.group("name"), listing.group("digest"))
        found = V2_PATH.fullmatch(request.path_params["rest"])
        if not found:
            raise AcrError(404, "NAME_UNKNOWN", "unsupported /v2/ path")
        name, kind, ref = found.group("name"), found.group("kind"), found.group("ref") or ""
        check_repository(name)
        action = v2_action(request.method)
        self._auth.authorize(registry, authorization(request), "repository", name, action)
        storage = self._metadata.storage(registry)
        self._rules.check_repository(registry, name, action)
        if kind == "manifests":
            await self._rules.check_manifest(registry, storage, name, ref, request.method)
        if kind == "blobs" and request.method == "GET" and DIGEST.fullmatch(ref):
            redirect = await self._download_link(BlobRef(registry.namespace, name, ref))
            if redirect is not None:
                return redirect
        query = dict(request.query_params)
        if kind == "blobs/uploads" and "from" in query:
            query["from"] = self._mount_source(request, registry, query["from"])
        suffix = f"{kind}/{ref}" if ref or kind != "blobs/uploads" else f"{kind}/"
        path = f"/v2/{registry.namespace}/{name}/{suffix}"
        if kind == "manifests" and request.method == "PUT":
            return await self._put_manifest(request, registry, name, path, query)
        if kind == "manifests" and request.method == "DELETE" and DIGEST.fullmatch(ref):
            await self._delete_referrers(registry, storage, name, ref)
        return await self._backend.forward(request, registry.namespace, path, query)

    async def referrers(self, request: Request, registry: FrontRegistry, name: str, digest: str) -> Response:
        """The OCI 1.1 referrers API (distribution spec "Listing Referrers"): a read of the repository and
        of the subject, as a pull of it is; 400 for a digest of invalid syntax; never 404 (an unknown
        digest, or repository, has an empty list); `artifactType` filters; pages linked with `Link`."""
        if request.method != "GET":
            raise method_not_allowed(["GET"])
        check_repository(name)
        self._auth.authorize(registry, authorization(request), "repository", name, "pull")
        self._rules.check_repository(registry, name, "pull")
        if not DIGEST.fullmatch(digest):
            raise AcrError(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                detail={"digest": digest},
            )
        self._rules.check_subject_read(registry, name, digest)
        storage = self._metadata.storage(registry)
        found = await asyncio.to_thread(self._referrers.referrers, storage, name, digest)
        headers = dict(API_VERSION)
        artifact_type = request.query_params.get("artifactType")
        if artifact_type:
            found = [r for r in found if r.artifact_type == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        last = request.query_params.get("last")
        if last:
            found = [r for r in found if r.digest > last]
        page = found[:REFERRERS_PAGE_SIZE]
        if len(found) > len(page):
            headers["Link"] = referrers_link(name, digest, page[-1], artifact_type)
        body = {"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": [r.descriptor for r in page]}
        return JSONResponse(body, media_type=IMAGE_INDEX, headers=headers)

    async def _put_manifest(
        self, request: Request, registry: FrontRegistry, name: str, path: str, query: dict[str, str]
    ) -> Response:
        """A manifest push, read whole (docker-registry's limit) to learn its `subject`: with one, the
        answer carries `OCI-Subject`, as a registry serving the referrers API must send (the spec,
        "Pushing Manifests with Subject"); docker-registry 2.8 stores the field but sends no such header."""
        body = await read_bounded(request, MANIFEST_LIMIT)
        subject = pushed_subject(body)
        response = await self._backend.forward(request, registry.namespace, path, query, content=body)
        self._referrers.touched(registry.namespace, name)
        if subject is not None and response.status_code == 201:
            response.headers["OCI-Subject"] = subject
        return response

    async def _delete_referrers(
        self, registry: FrontRegistry, storage: RegistryStorage, name: str, digest: str
    ) -> None:
        """ACR deletes a subject's referrers with it, recursively ("By deleting the root artifact, all
        related artifacts are also deleted"), the farthest first, each through docker-registry (which
        notifies: an ImageDeleted each). A locked referrer refuses the whole delete before any of it."""
        if not await asyncio.to_thread(storage.has_manifest, name, digest):
            return  # docker-registry answers the delete of an unknown manifest; nothing cascades
        doomed = await asyncio.to_thread(self._referrers.closure, storage, name, digest)
        if not doomed:
            return
        tags = await asyncio.to_thread(storage.tags, name)
        table = self._metadata.attributes.table(registry)
        if not all(self._rules.deletable(registry, name, d, tags, table) for d in doomed):
            raise denied()
        for referrer in doomed:
            await self._backend.delete(
                f"/v2/{registry.namespace}/{name}/manifests/{referrer}", registry.namespace
            )
            targets = [tag_target(name, t.name) for t in tags if t.digest == referrer]
            self._metadata.attributes.forget(registry, [manifest_target(name, referrer), *targets])

    def _mount_source(self, request: Request, registry: FrontRegistry, source: str) -> str:
        """A cross-repository mount's `from`: pulled from, so it needs pull on that repository too."""
        check_repository(source)
        self._auth.authorize(registry, authorization(request), "repository", source, "pull")
        return f"{registry.namespace}/{source}"

    async def _download_link(self, blob: BlobRef) -> Response | None:
        """ACR's answer to a blob GET: 307 to a signed link on the storage host (a HEAD stays 200 here;
        the spec allows a 307 for it as well, see FIDELITY.md). None when the repository has no such
        blob: the backend's BLOB_UNKNOWN then answers on the login server, as ACR's does."""
        if not await self._backend.has_blob(blob.backend_path):
            return None
        return Response(status_code=307, headers={"Location": self._links.issue(blob), **API_VERSION})


def referrers_link(name: str, digest: str, last: Referrer, artifact_type: str | None) -> str:
    """The next page's `Link` (RFC 5988, `rel="next"`, as the spec asks), the filter carried on."""
    query = {"last": last.digest, **({"artifactType": artifact_type} if artifact_type else {})}
    return f'</v2/{name}/referrers/{digest}?{urlencode(query, quote_via=quote)}>; rel="next"'


class StorageRoutes:
    """The storage stand-in: a blob for a valid, unexpired link, and never with `Authorization`."""

    def __init__(self, links: BlobLinks, backend: RegistryBackend) -> None:
        self._links = links
        self._backend = backend

    async def download(self, request: Request) -> Response:
        """Azure Storage takes any Authorization header for the request's credential (Shared Key, or a
        Bearer token as Entra auth) and refuses a registry's token: ACR's FAQ quotes this 400 for
        clients that follow the redirect with their headers (`curl -L`); see Azure/acr#217."""
        if "authorization" in request.headers:
            raise StorageError(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information is not given in the correct format. "
                "Check the value of Authorization header.",
            )
        blob = self._links.verify(request.scope["path"], request.query_params, request.method)
        upstream = await self._open(request, blob)
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_BLOB}
        headers.update({"x-ms-version": SAS_VERSION, "x-ms-blob-type": "BlockBlob"})
        if request.method == "HEAD":
            await upstream.aclose()
            return Response(status_code=upstream.status_code, headers=headers)
        return relay(upstream, headers)

    async def _open(self, request: Request, blob: BlobRef) -> httpx.Response:
        """The blob (or the range asked) from docker-registry; its failures in Azure Storage's words."""
        headers = [(k, v) for k, v in request.headers.raw if k.lower() == b"range"]  # as sent, any octets
        try:
            upstream = await self._backend.open(request.method, blob.backend_path, headers)
        except httpx.HTTPError as exc:
            raise StorageError(500, "InternalError", INTERNAL) from exc
        if upstream.status_code in (200, 206):
            return upstream
        await upstream.aclose()
        if upstream.status_code == 404:
            raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
        if upstream.status_code == 416:
            raise StorageError(
                416, "InvalidRange", "The range specified is invalid for the current size of the resource."
            )
        raise StorageError(500, "InternalError", INTERNAL)
