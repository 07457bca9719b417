"""ACR data plane: one HTTPS listener per registry login server, in front of docker-registry.

This covers the token flow and the `/acr/v1/` reads the SDK uses; repositories
live in docker-registry under a namespace named after the registry.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.server import ServerState

from .errors import AcrError
from .listeners import close, listen
from .timeutil import now_iso

if TYPE_CHECKING:
    from .service import Emulator

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
SCOPE = re.compile(r"^(repository|registry):(.+):([a-z_*,]+)$")
DEFAULT_ATTRIBUTES = {
    "deleteEnabled": True,
    "writeEnabled": True,
    "readEnabled": True,
    "listEnabled": True,
}


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, as the token endpoints take."""
    try:
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise AcrError(400, "UNSUPPORTED", "the form body is not valid UTF-8") from exc


def parse_scopes(raw: str) -> list[dict[str, Any]]:
    access = []
    for item in raw.split():
        found = SCOPE.match(item)
        if not found:
            raise AcrError(400, "UNSUPPORTED", f"invalid scope '{item}'")
        kind, name, actions = found.groups()
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


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
                Route("/oauth2/exchange", self.exchange, methods=["POST"]),
                Route("/oauth2/token", self.token, methods=["GET", "POST"]),
                Route("/acr/v1/_catalog", self.catalog, methods=["GET"]),
                Route("/acr/v1/{rest:path}", self.repository, methods=["GET"]),
            ]
        )
        self.app.add_exception_handler(AcrError, lambda _r, e: e.response())

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.emu.config.registry_backend, timeout=30)
        return self._http

    async def start(self, registry: dict[str, Any]) -> int:
        if registry["id"].lower() in self._servers:
            return int(registry["_port"])
        server, state = await listen(
            self.app,
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
        if entry is None:
            return
        close(*entry)
        self.by_port = {p: r for p, r in self.by_port.items() if r.lower() != registry["id"].lower()}

    async def close(self) -> None:
        for registry_id in list(self._servers):
            close(*self._servers.pop(registry_id))
        if self._http is not None:
            await self._http.aclose()

    # Helpers -------------------------------------------------------------------
    def _registry(self, request: Request) -> dict[str, Any]:
        port = request.scope["server"][1]
        registry_id = self.by_port.get(port)
        registry = self.emu.store.get("registry", registry_id) if registry_id else None
        if registry is None:
            raise AcrError(404, "NAME_UNKNOWN", "registry not found")
        return registry

    def _service(self, registry: dict[str, Any]) -> str:
        return str(registry["properties"]["loginServer"])

    def _challenge(self, registry: dict[str, Any], scope: str | None) -> AcrError:
        service = self._service(registry)
        header = f'Bearer realm="https://{service}/oauth2/token",service="{service}"'
        if scope:
            header += f',scope="{scope}"'
        return AcrError(401, "UNAUTHORIZED", "authentication required", headers={"WWW-Authenticate": header})

    def _authorize(
        self, request: Request, registry: dict[str, Any], kind: str, name: str, action: str
    ) -> None:
        scope = f"{kind}:{name}:{action}"
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise self._challenge(registry, scope)
        try:
            claims = self.emu.tokens.decode(token)
        except jwt.PyJWTError:
            raise self._challenge(registry, scope) from None
        if claims.get("aud") != self._service(registry) or claims.get("grant") != "access":
            raise self._challenge(registry, scope)
        for entry in claims.get("access", []):
            if (
                entry["type"] == kind
                and entry["name"] in (name, "*")
                and (action in entry["actions"] or "*" in entry["actions"])
            ):
                return
        raise AcrError(
            401,
            "UNAUTHORIZED",
            "authentication required",
            detail=[{"Type": kind, "Name": name, "Action": action}],
            headers={"WWW-Authenticate": self._challenge(registry, scope).headers["WWW-Authenticate"]},
        )

    def _check_admin(self, registry: dict[str, Any], username: str, password: str) -> bool:
        if not registry["properties"].get("adminUserEnabled"):
            return False
        if username.lower() != registry["name"].lower():
            return False
        return any(hmac.compare_digest(password, p) for p in registry["_passwords"])

    # Endpoints -------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        registry = self._registry(request)
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            try:
                claims = self.emu.tokens.decode(token)
                if claims.get("aud") == self._service(registry):
                    return JSONResponse({}, headers={"Docker-Distribution-Api-Version": "registry/2.0"})
            except jwt.PyJWTError:
                pass
        raise self._challenge(registry, None)

    async def exchange(self, request: Request) -> Response:
        registry = self._registry(request)
        form = await read_form(request)
        if form.get("grant_type") != "access_token":
            raise AcrError(400, "UNSUPPORTED", "grant_type must be access_token")
        if form.get("service") != self._service(registry):
            raise AcrError(400, "UNSUPPORTED", f"service must be {self._service(registry)}")
        try:
            claims = self.emu.tokens.decode(str(form.get("access_token", "")))
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
            params = request.query_params
            scope = " ".join(params.getlist("scope"))
            subject = self._basic_subject(request, registry)
        else:
            params = await read_form(request)  # type: ignore[assignment]
            scope = str(params.get("scope", ""))
            grant = params.get("grant_type")
            if grant == "refresh_token":
                try:
                    claims = self.emu.tokens.decode(str(params.get("refresh_token", "")))
                except jwt.PyJWTError:
                    raise AcrError(401, "UNAUTHORIZED", "the refresh token is invalid or expired") from None
                if claims.get("grant") != "refresh" or claims.get("aud") != service:
                    raise AcrError(401, "UNAUTHORIZED", "the refresh token is not for this registry")
                subject = str(claims["sub"])
            elif grant == "password":
                if not self._check_admin(
                    registry, str(params.get("username", "")), str(params.get("password", ""))
                ):
                    raise AcrError(401, "UNAUTHORIZED", "invalid username or password")
                subject = registry["name"]
            else:
                raise AcrError(400, "UNSUPPORTED", "grant_type must be refresh_token or password")
        if params.get("service") not in (None, service):
            raise AcrError(400, "UNSUPPORTED", f"service must be {service}")
        access = parse_scopes(scope) if scope else []
        token, _ = self.emu.tokens.issue(service, subject=subject, grant="access", access=access)
        return JSONResponse({"access_token": token, "token": token})

    def _basic_subject(self, request: Request, registry: dict[str, Any]) -> str:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                username, password = "", ""
            if self._check_admin(registry, username, password):
                return str(registry["name"])
        raise AcrError(
            401,
            "UNAUTHORIZED",
            "authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{self._service(registry)}"'},
        )

    async def _backend_repositories(self, registry: dict[str, Any]) -> list[str]:
        prefix = self.emu.backend_namespace(registry) + "/"
        names: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            response = await self.http.get(url)
            response.raise_for_status()
            names += [
                n[len(prefix) :] for n in response.json().get("repositories") or [] if n.startswith(prefix)
            ]
            link = response.headers.get("link")
            url = link.split(";")[0].strip("<> ") if link else None
        return sorted(names)

    async def catalog(self, request: Request) -> Response:
        registry = self._registry(request)
        self._authorize(request, registry, "registry", "catalog", "*")
        names = await self._backend_repositories(registry)
        last = request.query_params.get("last")
        if last:
            names = [n for n in names if n > last]
        return self._page(request, {"repositories": names}, "repositories", "/acr/v1/_catalog")

    def _page(self, request: Request, body: dict[str, Any], key: str, path: str, order: str = "") -> Response:
        raw = request.query_params.get("n")
        if raw is None:
            return JSONResponse(body)
        if not raw.isdigit() or int(raw) < 1:
            raise AcrError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
        size = int(raw)
        items = body[key]
        body[key] = items[:size]
        headers = {}
        if len(items) > size:
            last = body[key][-1]
            last_name = last["name"] if isinstance(last, dict) else last
            query = f"last={quote(last_name)}&n={size}" + (f"&orderby={order}" if order else "")
            headers["Link"] = f'<{path}?{query}>; rel="next"'
        return JSONResponse(body, headers=headers)

    async def repository(self, request: Request) -> Response:
        registry = self._registry(request)
        rest = request.path_params["rest"]
        if rest.endswith("/_tags"):
            return await self._tags(request, registry, rest[: -len("/_tags")])
        if "/_tags/" in rest:
            repo, _, tag = rest.rpartition("/_tags/")
            return await self._tag(request, registry, repo, tag)
        raise AcrError(404, "NAME_UNKNOWN", "unsupported data-plane path in devstack")

    async def _tag_details(self, registry: dict[str, Any], repo: str) -> list[dict[str, Any]]:
        backend_repo = f"{self.emu.backend_namespace(registry)}/{repo}"
        response = await self.http.get(f"/v2/{backend_repo}/tags/list")
        if response.status_code == 404:
            raise AcrError(
                404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": repo}
            )
        response.raise_for_status()
        tags = response.json().get("tags") or []
        details = []
        for tag in tags:
            head = await self.http.head(
                f"/v2/{backend_repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}
            )
            if head.status_code != 200:
                continue
            digest = head.headers.get("docker-content-digest", "")
            key = f"tag:{registry['id']}/{repo}:{tag}"
            meta = self.emu.store.get("tagmeta", key)
            if meta is None or meta["digest"] != digest:
                now = now_iso()
                meta = {
                    "digest": digest,
                    "createdTime": meta["createdTime"] if meta else now,
                    "lastUpdateTime": now,
                    "changeableAttributes": dict(DEFAULT_ATTRIBUTES),
                }
                self.emu.store.put("tagmeta", key, registry["id"], meta)
            details.append({"name": tag, "signed": False, **meta})
        return details

    async def _tags(self, request: Request, registry: dict[str, Any], repo: str) -> Response:
        self._authorize(request, registry, "repository", repo, "metadata_read")
        details = await self._tag_details(registry, repo)
        order = request.query_params.get("orderby", "")
        if order == "timedesc":
            details.sort(key=lambda d: d["lastUpdateTime"], reverse=True)
        elif order == "timeasc":
            details.sort(key=lambda d: d["lastUpdateTime"])
        else:
            details.sort(key=lambda d: d["name"])
        last = request.query_params.get("last")
        if last:
            names = [d["name"] for d in details]
            details = details[names.index(last) + 1 :] if last in names else []
        body = {"registry": self._service(registry), "imageName": repo, "tags": details}
        return self._page(request, body, "tags", f"/acr/v1/{repo}/_tags", order)

    async def _tag(self, request: Request, registry: dict[str, Any], repo: str, tag: str) -> Response:
        self._authorize(request, registry, "repository", repo, "metadata_read")
        for detail in await self._tag_details(registry, repo):
            if detail["name"] == tag:
                return JSONResponse({"registry": self._service(registry), "imageName": repo, "tag": detail})
        raise AcrError(404, "TAG_UNKNOWN", "the specified tag does not exist", detail={"tag": tag})
