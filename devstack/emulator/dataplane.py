"""ACR data plane: one HTTPS listener per registry login server, in front of docker-registry.

Each registry's repositories live in docker-registry under a namespace named after
the registry. The front authenticates with ACR's token flow, proxies `/v2/`
(streaming both ways, headers rewritten to the login server), serves `/acr/v1/`
from docker-registry's storage, and enforces ACR's changeable attributes.

A blob GET answers 307 with a signed, short-lived link on another host, as ACR sends
downloads to its storage account (a SAS URL on `*.blob.core.windows.net`) or to a
dedicated data endpoint: one more HTTPS listener, the storage stand-in, serves the
bytes for a valid link and, as Azure Storage does, refuses any `Authorization` header.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from xml.sax.saxutils import escape

import httpx
import jwt
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from .errors import AcrError
from .listeners import close, listen
from .registry_storage import ManifestRecord, RegistryStorage, TagRecord
from .timeutil import iso

if TYPE_CHECKING:
    from .service import Emulator

SCOPE = re.compile(r"(repository|registry):(.+):([a-z_*,]+)")
REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # the distribution spec's, ASCII
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
V2_PATH = re.compile(r"(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags)(?:/(?P<ref>.*))?")
ATTRIBUTES = ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "authorization", "content-length",
}  # fmt: skip
PASS_RESPONSE = {
    "content-type", "content-length", "content-range", "range", "docker-content-digest",
    "docker-upload-uuid", "docker-distribution-api-version", "etag", "accept-ranges", "location", "link",
    "oci-subject", "last-modified",
}  # fmt: skip
DEFAULT_PAGE_SIZE = 100  # listings page like ACR's: clients follow the Link header
DENIED = "The operation is disallowed on this registry, repository or image."
# The storage stand-in serves /{registry namespace}/{repository}/blobs/{digest}?sv&sr&sp&se&sig: ACR's
# links carry a blob SAS, `sv=2018-03-28&sr=b&sp=r&se=<expiry>&sig=...` (MicrosoftDocs/azure-docs#116188).
LINK_PATH = re.compile(r"/(?P<ns>[a-z0-9]+)/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})")
LINK_TIME = "%Y-%m-%dT%H:%M:%SZ"
SAS_VERSION = "2018-03-28"
PASS_BLOB = {"content-type", "content-length", "content-range", "accept-ranges", "etag", "last-modified"}
AUTH_FAILED = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
    "correctly including the signature."
)
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
INTERNAL = "Server encountered an internal error. Please try again after some time."


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, as the token endpoints take."""
    try:
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise AcrError(400, "UNSUPPORTED", "the form body is not valid UTF-8") from exc


def parse_scopes(raw: str) -> list[dict[str, Any]]:
    access = []
    for item in raw.split():
        found = SCOPE.fullmatch(item)
        if not found:
            raise AcrError(400, "UNSUPPORTED", f"invalid scope '{item}'")
        kind, name, actions = found.groups()
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


NULL_GUID_USER = "00000000-0000-0000-0000-000000000000"


def denied() -> AcrError:
    return AcrError(403, "DENIED", DENIED)


def check_repository(name: str) -> None:
    if len(name) > 256 or not REPOSITORY.fullmatch(name):
        raise AcrError(400, "NAME_INVALID", "invalid repository name", detail={"name": name})


def link_signature(key: str, namespace: str, repository: str, digest: str, expiry: str) -> str:
    """The `sig` of a download link: an HMAC over what it grants (read, until when, which blob)."""
    secret = hmac.new(key.encode(), b"devstack blob download links", hashlib.sha256).digest()
    granted = "\n".join(("r", expiry, namespace, repository, digest)).encode()
    return base64.b64encode(hmac.new(secret, granted, hashlib.sha256).digest()).decode()


class StorageError(Exception):
    """Azure Storage's error: an XML `<Error>` body, the code also in `x-ms-error-code`."""

    def __init__(self, status: int, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def response(self) -> Response:
        request_id = str(uuid.uuid4())
        time = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        detail = (
            self.detail and f"<AuthenticationErrorDetail>{escape(self.detail)}</AuthenticationErrorDetail>"
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}\n"
            f"RequestId:{request_id}\nTime:{time}</Message>{detail or ''}</Error>"
        )
        headers = {"x-ms-error-code": self.code, "x-ms-request-id": request_id, "x-ms-version": SAS_VERSION}
        return Response(body, status_code=self.status, media_type="application/xml", headers=headers)


class Fronts:
    """Starts and stops the per-registry listeners inside the emulator's event loop."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.by_port: dict[int, str] = {}
        self._servers: dict[str, tuple[asyncio.AbstractServer, ServerState]] = {}
        self._http: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/v2/", self.ping, methods=["GET", "HEAD"]),
                Route("/v2/_catalog", self.v2_catalog, methods=["GET"]),
                Route("/v2/{rest:path}", self.v2, methods=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]),
                Route("/oauth2/exchange", self.exchange, methods=["POST"]),
                Route("/oauth2/token", self.token, methods=["GET", "POST"]),
                Route("/acr/v1/_catalog", self.catalog, methods=["GET"]),
                Route("/acr/v1/{rest:path}", self.acr, methods=["GET", "PATCH", "DELETE"]),
            ]
        )
        self.app.add_exception_handler(AcrError, self._error)  # type: ignore[arg-type]
        self.downloads_app = Starlette(routes=[Route("/{rest:path}", self.download, methods=METHODS)])
        self.downloads_app.add_exception_handler(StorageError, self._error)  # type: ignore[arg-type]
        self._downloads: tuple[asyncio.AbstractServer, ServerState] | None = None
        self._downloads_port = 0
        self._downloads_lock = asyncio.Lock()

    @staticmethod
    async def _error(request: Request, exc: AcrError | StorageError) -> Response:
        return exc.response()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.emu.config.registry_backend,
                timeout=httpx.Timeout(60, read=600),
                limits=httpx.Limits(max_connections=64),
            )
        return self._http

    async def start(self, registry: dict[str, Any]) -> int:
        await self._start_downloads()
        if registry["id"].lower() in self._servers:
            return int(registry["_port"])
        server, state = await listen(
            self.emu.faults.wrap(self.app, "dataplane"),
            self.emu.config.host,
            int(registry.get("_port") or 0),
            self.emu.config.tls_cert,
            self.emu.config.tls_key,
        )
        port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._servers[registry["id"].lower()] = (server, state)
        self.by_port[port] = registry["id"]
        return port

    async def stop(self, registry: dict[str, Any]) -> None:
        entry = self._servers.pop(registry["id"].lower(), None)
        if entry is not None:
            close(*entry)
        self.by_port = {p: r for p, r in self.by_port.items() if r.lower() != registry["id"].lower()}

    async def close(self) -> None:
        for registry_id in list(self._servers):
            close(*self._servers.pop(registry_id))
        if self._downloads is not None:
            close(*self._downloads)
            self._downloads = None
        if self._http is not None:
            await self._http.aclose()

    async def _start_downloads(self) -> None:
        """The storage stand-in's listener, once, with the first front. Its requests count and take
        faults as `dataplane`'s: they are the second half of a registry download."""
        async with self._downloads_lock:
            if self._downloads is not None:
                return
            config = self.emu.config
            self._downloads = await listen(
                self.emu.faults.wrap(self.downloads_app, "dataplane"),
                config.host,
                config.blob_port,
                config.tls_cert,
                config.tls_key,
            )
            self._downloads_port = int(self._downloads[0].sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    @property
    def downloads_port(self) -> int:
        """The storage stand-in's port (blob GETs redirect there); known once a front has started."""
        return self._downloads_port

    # Registry, storage and attributes ------------------------------------------------
    def _registry(self, request: Request) -> dict[str, Any]:
        registry_id = self.by_port.get(request.scope["server"][1])
        registry = self.emu.store.get("registry", registry_id) if registry_id else None
        if registry is None:
            raise AcrError(404, "NAME_UNKNOWN", "registry not found")
        return registry

    def _storage(self, registry: dict[str, Any]) -> RegistryStorage:
        return RegistryStorage(self.emu.config.registry_storage, self.emu.backend_namespace(registry))

    @staticmethod
    def _service(registry: dict[str, Any]) -> str:
        return str(registry["properties"]["loginServer"])

    def _attributes(
        self, registry: dict[str, Any], key: str, table: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, bool]:
        full = f"{registry['id']}|{key}"
        stored = (
            table.get(full.lower()) if table is not None else self.emu.store.get("acrattributes", full)
        ) or {}
        return {name: bool(stored.get(name, True)) for name in ATTRIBUTES}

    def _attribute_table(self, registry: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """All of a registry's attributes at once, for listings (thousands of tags, one query)."""
        return self.emu.store.items("acrattributes", registry["id"])

    def _update_attributes(self, registry: dict[str, Any], key: str, patch: Any) -> dict[str, bool]:
        if not isinstance(patch, dict) or not set(patch) <= {*ATTRIBUTES, "teleportEnabled"}:
            raise AcrError(400, "UNSUPPORTED", f"changeable attributes are {', '.join(ATTRIBUTES)}")
        if not all(isinstance(value, bool) for value in patch.values()):
            raise AcrError(400, "UNSUPPORTED", "changeable attributes take true or false")
        current = self._attributes(registry, key)
        current.update({k: v for k, v in patch.items() if k in ATTRIBUTES})
        self.emu.store.put("acrattributes", f"{registry['id']}|{key}", registry["id"], current)
        return current

    # Authentication ----------------------------------------------------------------------
    def _challenge(self, registry: dict[str, Any], scope: str | None) -> AcrError:
        service = self._service(registry)
        header = f'Bearer realm="https://{service}/oauth2/token",service="{service}"'
        if scope:
            header += f',scope="{scope}"'
        return AcrError(401, "UNAUTHORIZED", "authentication required", headers={"WWW-Authenticate": header})

    def _claims(self, request: Request, registry: dict[str, Any]) -> dict[str, Any] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            claims = self.emu.tokens.decode(token)
        except jwt.PyJWTError:
            return None
        if claims.get("aud") != self._service(registry) or claims.get("grant") != "access":
            return None
        return claims

    def _authorize(
        self, request: Request, registry: dict[str, Any], kind: str, name: str, action: str
    ) -> None:
        scope = f"{kind}:{name}:{action}"
        claims = self._claims(request, registry)
        if claims is None:
            raise self._challenge(registry, scope)
        for entry in claims.get("access", []):
            actions = entry["actions"]
            if (
                entry["type"] == kind
                and entry["name"] in (name, "*")
                and (action in actions or "*" in actions)
            ):
                return
        error = self._challenge(registry, scope)
        error.detail = [{"Type": kind, "Name": name, "Action": action}]
        raise error

    def _check_admin(self, registry: dict[str, Any], username: str, password: str) -> bool:
        if not registry["properties"].get("adminUserEnabled") or username.lower() != registry["name"].lower():
            return False
        return any(hmac.compare_digest(password, p) for p in registry["_passwords"])

    async def ping(self, request: Request) -> Response:
        registry = self._registry(request)
        if self._claims(request, registry) is None:
            raise self._challenge(registry, None)
        return JSONResponse({}, headers={"Docker-Distribution-Api-Version": "registry/2.0"})

    async def exchange(self, request: Request) -> Response:
        registry = self._registry(request)
        form = await read_form(request)
        if form.get("grant_type") != "access_token":
            raise AcrError(400, "UNSUPPORTED", "grant_type must be access_token")
        if form.get("service") != self._service(registry):
            raise AcrError(400, "UNSUPPORTED", f"service must be {self._service(registry)}")
        try:
            claims = self.emu.tokens.decode(form.get("access_token", ""))
        except jwt.PyJWTError:
            raise AcrError(401, "UNAUTHORIZED", "the Entra access token is invalid or expired") from None
        if not self.emu.tokens.is_acr_audience(str(claims.get("aud", "")), self.emu.config.arm_endpoint):
            raise AcrError(401, "UNAUTHORIZED", "the Entra access token has the wrong audience")
        refresh, _ = self.emu.tokens.issue(self._service(registry), subject=claims["sub"], grant="refresh")
        return JSONResponse({"refresh_token": refresh})

    async def token(self, request: Request) -> Response:
        registry = self._registry(request)
        service = self._service(registry)
        if request.method == "GET":
            params: dict[str, str] = dict(request.query_params)
            scope = " ".join(request.query_params.getlist("scope"))
            subject = self._basic_subject(request, registry)
        else:
            params = await read_form(request)
            scope = params.get("scope", "")
            grant = params.get("grant_type")
            if grant == "refresh_token":
                subject = self._refresh_subject(registry, params.get("refresh_token", "")) or ""
                if not subject:
                    raise AcrError(
                        401, "UNAUTHORIZED", "the refresh token is invalid, expired or not for this registry"
                    )
            elif grant == "password":
                if not self._check_admin(registry, params.get("username", ""), params.get("password", "")):
                    raise AcrError(401, "UNAUTHORIZED", "invalid username or password")
                subject = str(registry["name"])
            else:
                raise AcrError(400, "UNSUPPORTED", "grant_type must be refresh_token or password")
        if params.get("service") not in (None, service):
            raise AcrError(400, "UNSUPPORTED", f"service must be {service}")
        access = parse_scopes(scope) if scope else []
        token, _ = self.emu.tokens.issue(service, subject=subject, grant="access", access=access)
        return JSONResponse({"access_token": token, "token": token})

    def _refresh_subject(self, registry: dict[str, Any], token: str) -> str | None:
        """Whom an ACR refresh token for this registry names; None if it is not one."""
        try:
            claims = self.emu.tokens.decode(token)
        except jwt.PyJWTError:
            return None
        if claims.get("grant") != "refresh" or claims.get("aud") != self._service(registry):
            return None
        return str(claims["sub"])

    def _basic_subject(self, request: Request, registry: dict[str, Any]) -> str:
        """Basic auth on the token endpoint: the admin user, or (as `docker login` after `az acr login
        --expose-token`) the null GUID user with a refresh token for this registry as its password."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                username, password = "", ""
            if self._check_admin(registry, username, password):
                return str(registry["name"])
            if username == NULL_GUID_USER and (subject := self._refresh_subject(registry, password)):
                return subject
        raise AcrError(
            401,
            "UNAUTHORIZED",
            "authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{self._service(registry)}"'},
        )

    # /v2/ --------------------------------------------------------------------------------------
    async def v2_catalog(self, request: Request) -> Response:
        registry = self._registry(request)
        self._authorize(request, registry, "registry", "catalog", "*")
        names = self._listed_repositories(registry)
        last = request.query_params.get("last")
        if last:
            names = [n for n in names if n > last]
        return self._page(request, {"repositories": names}, "repositories", "/v2/_catalog")

    async def v2(self, request: Request) -> Response:
        registry = self._registry(request)
        found = V2_PATH.fullmatch(request.path_params["rest"])
        if not found:
            raise AcrError(404, "NAME_UNKNOWN", "unsupported /v2/ path")
        name, kind, ref = found.group("name"), found.group("kind"), found.group("ref") or ""
        check_repository(name)
        method = request.method
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")
        self._authorize(request, registry, "repository", name, action)
        storage = self._storage(registry)
        repo_attributes = self._attributes(registry, name)
        if (action == "pull" and not repo_attributes["readEnabled"]) or (
            action == "push" and not repo_attributes["writeEnabled"]
        ):
            raise denied()
        if kind == "manifests":
            await self._check_manifest(registry, storage, name, ref, method)
        if kind == "blobs" and method == "GET" and DIGEST.fullmatch(ref):
            redirect = await self._download_link(registry, name, ref)
            if redirect is not None:
                return redirect
        query = dict(request.query_params)
        if kind == "blobs/uploads" and "from" in query:
            check_repository(query["from"])
            self._authorize(request, registry, "repository", query["from"], "pull")
            query["from"] = f"{self.emu.backend_namespace(registry)}/{query['from']}"
        suffix = f"{kind}/{ref}" if ref or kind != "blobs/uploads" else f"{kind}/"
        return await self._proxy(
            request, registry, f"/v2/{self.emu.backend_namespace(registry)}/{name}/{suffix}", query
        )

    async def _check_manifest(
        self, registry: dict[str, Any], storage: RegistryStorage, name: str, ref: str, method: str
    ) -> None:
        """Enforce ACR's changeable attributes on manifests and tags."""

        def allowed(key: str, attribute: str) -> bool:
            return self._attributes(registry, key)[attribute]

        is_digest = DIGEST.fullmatch(ref) is not None
        if not is_digest and not TAG.fullmatch(ref):
            raise AcrError(400, "MANIFEST_INVALID", "invalid manifest reference", detail={"reference": ref})
        tag = None if is_digest else await asyncio.to_thread(storage.tag, name, ref)
        if method in ("GET", "HEAD"):
            digest = ref if is_digest else tag.digest if tag else None
            if digest and not allowed(f"{name}@{digest}", "readEnabled"):
                raise denied()
            if tag and not allowed(f"{name}:{ref}", "readEnabled"):
                raise denied()
        elif method == "PUT" and tag is not None:
            if not allowed(f"{name}:{ref}", "writeEnabled") or not allowed(
                f"{name}@{tag.digest}", "writeEnabled"
            ):
                raise denied()
        elif method == "DELETE" and is_digest:
            tagged = [t.name for t in await asyncio.to_thread(storage.tags, name) if t.digest == ref]
            if not allowed(f"{name}@{ref}", "deleteEnabled") or any(
                not allowed(f"{name}:{t}", "deleteEnabled") for t in tagged
            ):
                raise denied()

    async def _download_link(self, registry: dict[str, Any], name: str, digest: str) -> Response | None:
        """ACR's answer to a blob GET: 307 to a signed link on the storage host (a HEAD stays 200 here;
        the spec allows a 307 for it as well, see FIDELITY.md). None when the repository has no such
        blob: the backend's BLOB_UNKNOWN then answers on the login server, as ACR's does."""
        namespace = self.emu.backend_namespace(registry)
        try:
            found = await self.http.head(f"/v2/{namespace}/{name}/blobs/{digest}")
        except httpx.HTTPError as exc:
            raise AcrError(503, "UNAVAILABLE", f"the registry backend is unreachable: {exc}") from exc
        if found.status_code != 200:
            return None
        config = self.emu.config
        expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=config.blob_link_seconds)).strftime(
            LINK_TIME
        )
        query = {
            "sv": SAS_VERSION,
            "sr": "b",
            "sp": "r",
            "se": expiry,
            "sig": link_signature(config.signing_key, namespace, name, digest, expiry),
        }
        link = f"https://{config.blob_host}:{self._downloads_port}/{namespace}/{name}/blobs/{digest}"
        return Response(
            status_code=307,
            headers={
                "Location": f"{link}?{urlencode(query)}",
                "Docker-Distribution-Api-Version": "registry/2.0",
            },
        )

    async def download(self, request: Request) -> Response:
        """The storage stand-in: a blob for a valid, unexpired link, and never with `Authorization`.

        Azure Storage takes any Authorization header for the request's credential (Shared Key, or a
        Bearer token as Entra auth) and refuses a registry's token: ACR's FAQ quotes this 400 for
        clients that follow the redirect with their headers (`curl -L`); see Azure/acr#217."""
        if "authorization" in request.headers:
            raise StorageError(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information is not given in the correct format. "
                "Check the value of Authorization header.",
            )
        found = LINK_PATH.fullmatch(request.scope["path"])
        if found is None:
            raise StorageError(
                400, "InvalidUri", "The requested URI does not represent any resource on the server."
            )
        namespace, name, digest = found.group("ns"), found.group("name"), found.group("digest")
        query = request.query_params
        expiry, signature = query.get("se", ""), query.get("sig", "")
        try:
            expires = dt.datetime.strptime(expiry, LINK_TIME).replace(tzinfo=dt.UTC)
        except ValueError:
            expires = None
        if expires is None or not signature or query.get("sp") != "r" or query.get("sr") != "b":
            raise StorageError(403, "AuthenticationFailed", AUTH_FAILED, "Signature fields not well formed.")
        expected = link_signature(self.emu.config.signing_key, namespace, name, digest, expiry)
        if not hmac.compare_digest(signature, expected):
            raise StorageError(403, "AuthenticationFailed", AUTH_FAILED, "Signature did not match.")
        now = dt.datetime.now(dt.UTC)
        if now >= expires:
            raise StorageError(
                403,
                "AuthenticationFailed",
                AUTH_FAILED,
                "Signature not valid in the specified time frame: "
                f"Expiry [{expires:%a, %d %b %Y %H:%M:%S} GMT] - Current [{now:%a, %d %b %Y %H:%M:%S} GMT]",
            )
        if request.method not in ("GET", "HEAD"):  # the link grants read (`sp=r`) and nothing else
            raise StorageError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
        headers = [("Range", request.headers["range"])] if "range" in request.headers else []
        upstream_request = self.http.build_request(
            request.method, f"/v2/{namespace}/{name}/blobs/{digest}", headers=headers
        )
        try:
            upstream = await self.http.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise StorageError(500, "InternalError", INTERNAL) from exc
        if upstream.status_code not in (200, 206):
            await upstream.aclose()
            if upstream.status_code == 404:
                raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
            if upstream.status_code == 416:
                raise StorageError(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                )
            raise StorageError(500, "InternalError", INTERNAL)
        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_BLOB}
        response_headers.update({"x-ms-version": SAS_VERSION, "x-ms-blob-type": "BlockBlob"})
        if request.method == "HEAD":
            await upstream.aclose()
            return Response(status_code=upstream.status_code, headers=response_headers)
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )

    def _rewrite(self, registry: dict[str, Any], value: str) -> str:
        """Backend URLs (absolute or relative) → the same path on the login server, relative as ACR."""
        parts = urlsplit(value)
        path = parts.path
        prefix = f"/v2/{self.emu.backend_namespace(registry)}/"
        if path.startswith(prefix):
            path = "/v2/" + path[len(prefix) :]
        query = parts.query
        if "from=" in query or "last=" in query:
            ns = self.emu.backend_namespace(registry) + "/"
            pairs = [
                (k, v[len(ns) :] if k in ("from", "last") and v.startswith(ns) else v)
                for k, v in parse_qsl(query)
            ]
            query = urlencode(pairs)
        return path + (f"?{query}" if query else "")

    async def _proxy(
        self, request: Request, registry: dict[str, Any], path: str, query: dict[str, str]
    ) -> Response:
        # A list, not a dict: clients repeat headers (podman sends one Accept per manifest type).
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        body_allowed = request.method in ("PUT", "PATCH", "POST")
        if body_allowed and "content-length" in request.headers:
            headers.append(("Content-Length", request.headers["content-length"]))
        upstream_request = self.http.build_request(
            request.method,
            path,
            params=query,
            headers=headers,
            content=request.stream() if body_allowed else None,
        )
        try:
            upstream = await self.http.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise AcrError(503, "UNAVAILABLE", f"the registry backend is unreachable: {exc}") from exc
        response_headers = {}
        for key, value in upstream.headers.items():
            if key.lower() not in PASS_RESPONSE:
                continue
            if key.lower() == "location":
                value = self._rewrite(registry, value)
            elif key.lower() == "link":
                url, _, rest = value.partition(">")
                value = f"<{self._rewrite(registry, url.lstrip('<'))}>{rest}"
            response_headers[key] = value
        if upstream.status_code == 401:
            await upstream.aclose()
            raise AcrError(503, "UNAVAILABLE", "the registry backend refused the request")
        if request.method == "HEAD" or (
            upstream.status_code in (202, 204) and not upstream.headers.get("content-length")
        ):
            await upstream.aclose()
            return Response(status_code=upstream.status_code, headers=response_headers)
        if "json" in upstream.headers.get("content-type", "") and upstream.status_code >= 400:
            body = await upstream.aread()
            await upstream.aclose()
            text = body.decode(errors="replace").replace(f"{self.emu.backend_namespace(registry)}/", "")
            response_headers.pop("content-length", None)
            response_headers.pop("Content-Length", None)
            return Response(text, status_code=upstream.status_code, headers=response_headers)
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )

    # /acr/v1/ ------------------------------------------------------------------------------
    def _listed_repositories(self, registry: dict[str, Any]) -> list[str]:
        names = self._storage(registry).repositories()
        table = self._attribute_table(registry)
        return [n for n in names if self._attributes(registry, n, table)["listEnabled"]]

    async def catalog(self, request: Request) -> Response:
        registry = self._registry(request)
        self._authorize(request, registry, "registry", "catalog", "*")
        names = await asyncio.to_thread(self._listed_repositories, registry)
        last = request.query_params.get("last")
        if last:
            names = [n for n in names if n > last]
        return self._page(request, {"repositories": names}, "repositories", "/acr/v1/_catalog")

    @staticmethod
    def _page_size(request: Request) -> int:
        raw = request.query_params.get("n", str(DEFAULT_PAGE_SIZE))
        if not raw.isdigit() or int(raw) < 1:
            raise AcrError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
        return int(raw)

    def _page(self, request: Request, body: dict[str, Any], key: str, path: str) -> Response:
        size = self._page_size(request)
        items = body[key]
        body[key] = items[:size]
        headers = {}
        if len(items) > size:
            last = body[key][-1]
            query: dict[str, str] = {
                "last": last["name"] if key == "tags" else last["digest"] if key == "manifests" else last,
                "n": str(size),
            }
            for carried in ("orderby", "digest"):
                if request.query_params.get(carried):
                    query[carried] = request.query_params[carried]
            headers["Link"] = f'<{path}?{urlencode(query, quote_via=quote)}>; rel="next"'
        return JSONResponse(body, headers=headers)

    async def acr(self, request: Request) -> Response:
        registry = self._registry(request)
        rest: str = request.path_params["rest"]
        for marker, handler in (("/_tags", self._tags), ("/_manifests", self._manifests)):
            if rest.endswith(marker):
                name = rest[: -len(marker)]
                check_repository(name)
                return await handler(request, registry, name, None)
            if marker + "/" in rest:
                name, _, ref = rest.rpartition(marker + "/")
                check_repository(name)
                return await handler(request, registry, name, ref)
        check_repository(rest)
        return await self._repository(request, registry, rest)

    def _require(self, request: Request, registry: dict[str, Any], name: str) -> RegistryStorage:
        action = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}[request.method]
        self._authorize(request, registry, "repository", name, action)
        storage = self._storage(registry)
        if not storage.exists(name):
            raise AcrError(
                404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": name}
            )
        return storage

    def _tag_view(
        self,
        registry: dict[str, Any],
        name: str,
        tag: TagRecord,
        table: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return {
            "name": tag.name,
            "digest": tag.digest,
            "createdTime": iso(tag.created),
            "lastUpdateTime": iso(tag.updated),
            "signed": False,
            "changeableAttributes": self._attributes(registry, f"{name}:{tag.name}", table),
        }

    def _manifest_view(
        self,
        registry: dict[str, Any],
        name: str,
        manifest: ManifestRecord,
        tags: list[TagRecord],
        table: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        view: dict[str, Any] = {
            "digest": manifest.digest,
            "imageSize": manifest.size,
            "createdTime": iso(manifest.created),
            "lastUpdateTime": iso(
                max([manifest.created, *(t.updated for t in tags if t.digest == manifest.digest)])
            ),
            "mediaType": manifest.media_type,
            "tags": sorted(t.name for t in tags if t.digest == manifest.digest),
            "changeableAttributes": self._attributes(registry, f"{name}@{manifest.digest}", table),
        }
        if manifest.config_media_type:
            view["configMediaType"] = manifest.config_media_type
        if manifest.architecture:
            view["architecture"] = manifest.architecture
        if manifest.os:
            view["os"] = manifest.os
        if manifest.references:
            view["references"] = manifest.references
        return view

    def _order(self, request: Request, items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        order = request.query_params.get("orderby", "")
        if order == "timedesc":
            return sorted(items, key=lambda i: i["lastUpdateTime"], reverse=True)
        if order == "timeasc":
            return sorted(items, key=lambda i: i["lastUpdateTime"])
        if order:
            raise AcrError(400, "UNSUPPORTED", "orderby must be timedesc or timeasc")
        return sorted(items, key=lambda i: i[key])

    @staticmethod
    def _after(items: list[dict[str, Any]], key: str, last: str | None) -> list[dict[str, Any]]:
        if not last:
            return items
        keys = [i[key] for i in items]
        return items[keys.index(last) + 1 :] if last in keys else [i for i in items if i[key] > last]

    async def _repository(self, request: Request, registry: dict[str, Any], name: str) -> Response:
        storage = self._require(request, registry, name)
        if request.method == "PATCH":
            self._update_attributes(registry, name, await self._json(request))
        elif request.method == "DELETE":
            if not self._attributes(registry, name)["deleteEnabled"]:
                raise denied()
            tags = await asyncio.to_thread(storage.tags, name)
            manifests = await asyncio.to_thread(storage.manifests, name)
            for digest in manifests:
                await self.http.delete(
                    f"/v2/{self.emu.backend_namespace(registry)}/{name}/manifests/{digest}"
                )
            await asyncio.to_thread(storage.remove_repository, name)
            for key in [name, *(f"{name}:{t.name}" for t in tags), *(f"{name}@{d}" for d in manifests)]:
                self.emu.store.delete(f"{registry['id']}|{key}")
            return JSONResponse(
                {"manifestsDeleted": sorted(manifests), "tagsDeleted": sorted(t.name for t in tags)},
                status_code=202,
            )
        tags = await asyncio.to_thread(storage.tags, name)
        manifests = await asyncio.to_thread(storage.manifests, name)
        times = [*manifests.values(), *(t.updated for t in tags)]
        return JSONResponse(
            {
                "registry": self._service(registry),
                "imageName": name,
                "createdTime": iso(min(times)),
                "lastUpdateTime": iso(max(times)),
                "manifestCount": len(manifests),
                "tagCount": len(tags),
                "changeableAttributes": self._attributes(registry, name),
            }
        )

    @staticmethod
    async def _json(request: Request) -> Any:
        import json

        try:
            return json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AcrError(400, "UNSUPPORTED", f"the body is not valid JSON: {exc}") from exc

    async def _tags(self, request: Request, registry: dict[str, Any], name: str, tag: str | None) -> Response:
        storage = self._require(request, registry, name)
        if tag is None:
            if request.method != "GET":
                raise AcrError(405, "UNSUPPORTED", "method not allowed")
            digest, last = request.query_params.get("digest"), request.query_params.get("last")
            table = self._attribute_table(registry)

            def listed(tag_name: str) -> bool:
                return bool(self._attributes(registry, f"{name}:{tag_name}", table)["listEnabled"])

            if digest is None and not request.query_params.get("orderby"):
                # By name, the default: read only this page's tags (and one more, for the Link).
                size = self._page_size(request)
                records = await asyncio.to_thread(storage.tags_after, name, last, size + 1, listed)
                views = [self._tag_view(registry, name, t, table) for t in records]
            else:
                records = await asyncio.to_thread(storage.tags, name)
                views = [
                    self._tag_view(registry, name, t, table)
                    for t in records
                    if (digest is None or t.digest == digest) and listed(t.name)
                ]
                views = self._after(self._order(request, views, "name"), "name", last)
            body = {"registry": self._service(registry), "imageName": name, "tags": views}
            return self._page(request, body, "tags", f"/acr/v1/{name}/_tags")
        found = await asyncio.to_thread(storage.tag, name, tag)
        if found is None:
            raise AcrError(404, "TAG_UNKNOWN", "the specified tag does not exist", detail={"tag": tag})
        if request.method == "DELETE":
            if not self._attributes(registry, f"{name}:{tag}")["deleteEnabled"]:
                raise denied()
            await asyncio.to_thread(storage.untag, name, tag)
            self.emu.store.delete(f"{registry['id']}|{name}:{tag}")
            return Response(status_code=202)
        if request.method == "PATCH":
            self._update_attributes(registry, f"{name}:{tag}", await self._json(request))
        return JSONResponse(
            {
                "registry": self._service(registry),
                "imageName": name,
                "tag": self._tag_view(registry, name, found),
            }
        )

    async def _manifests(
        self, request: Request, registry: dict[str, Any], name: str, digest: str | None
    ) -> Response:
        storage = self._require(request, registry, name)
        tags = await asyncio.to_thread(storage.tags, name)
        if digest is None:
            if request.method != "GET":
                raise AcrError(405, "UNSUPPORTED", "method not allowed")
            records = await asyncio.to_thread(
                lambda: [m for d in storage.manifests(name) if (m := storage.manifest(name, d)) is not None]
            )
            table = self._attribute_table(registry)
            views = [
                self._manifest_view(registry, name, m, tags, table)
                for m in records
                if self._attributes(registry, f"{name}@{m.digest}", table)["listEnabled"]
            ]
            views = self._after(
                self._order(request, views, "digest"), "digest", request.query_params.get("last")
            )
            body = {"registry": self._service(registry), "imageName": name, "manifests": views}
            return self._page(request, body, "manifests", f"/acr/v1/{name}/_manifests")
        if not DIGEST.fullmatch(digest):
            raise AcrError(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        manifest = await asyncio.to_thread(storage.manifest, name, digest)
        if manifest is None:
            raise AcrError(404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"digest": digest})
        if request.method == "DELETE":
            raise AcrError(405, "UNSUPPORTED", "delete manifests through /v2/{name}/manifests/{digest}")
        if request.method == "PATCH":
            self._update_attributes(registry, f"{name}@{digest}", await self._json(request))
        return JSONResponse(
            {
                "registry": self._service(registry),
                "imageName": name,
                "manifest": self._manifest_view(registry, name, manifest, tags),
            }
        )
