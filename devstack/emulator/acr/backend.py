"""docker-registry behind the fronts: requests forwarded with the body streamed both ways, and the backend's
URLs and error bodies rewritten from its namespaced repositories to the login server's names."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import AcrError

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "authorization", "content-length",
}  # fmt: skip
PASS_RESPONSE = {
    "content-type", "content-length", "content-range", "range", "docker-content-digest",
    "docker-upload-uuid", "docker-distribution-api-version", "etag", "accept-ranges", "location", "link",
    "oci-subject", "last-modified",
}  # fmt: skip


def to_login_server(namespace: str, value: str) -> str:
    """A backend URL (absolute or relative) → the same path on the login server, relative as ACR's."""
    parts = urlsplit(value)
    path = parts.path
    prefix = f"/v2/{namespace}/"
    if path.startswith(prefix):
        path = "/v2/" + path[len(prefix) :]
    query = parts.query
    if "from=" in query or "last=" in query:
        ns = namespace + "/"
        pairs = [
            (k, v[len(ns) :] if k in ("from", "last") and v.startswith(ns) else v)
            for k, v in parse_qsl(query)
        ]
        query = urlencode(pairs)
    return path + (f"?{query}" if query else "")


def relay(upstream: httpx.Response, headers: dict[str, str]) -> StreamingResponse:
    """The backend's body streamed to the client; the upstream response closes once it is sent."""
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )


def unreachable(exc: httpx.HTTPError) -> AcrError:
    return AcrError(503, "UNAVAILABLE", f"the registry backend is unreachable: {exc}")


def refused_by_backend() -> AcrError:
    """docker-registry takes no credentials from the front: a 401 from it is the front's fault, not the
    caller's."""
    return AcrError(503, "UNAVAILABLE", "the registry backend refused the request")


def backend_error(answer: httpx.Response, namespace: str) -> AcrError:
    """A backend error as the front relays it: its status and first error, the namespace dropped."""
    try:
        first = answer.json()["errors"][0]
        code, message = str(first["code"]), str(first["message"])
    except (ValueError, LookupError, TypeError):
        code, message = "UNKNOWN", "unknown error"  # distribution's ErrorCodeUnknown
    status = answer.status_code if answer.status_code >= 400 else 502
    return AcrError(status, code, message.replace(f"{namespace}/", ""))


KNOWN_BLOBS = 100_000  # blob paths remembered as present; forgotten all at once past it


class RegistryBackend:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._http: httpx.AsyncClient | None = None
        # Blobs seen in a repository: content-addressed, so one stays what it is until a delete goes
        # through the front (a blob, a manifest, a repository), which forgets them all. Saves the HEAD
        # that every blob GET's redirect costs docker-registry; docker-registry's own garbage collection
        # never runs under devstack.
        self._present: set[str] = set()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._base_url,
                timeout=httpx.Timeout(60, read=600),
                limits=httpx.Limits(max_connections=64),
            )
        return self._http

    def use(self, client: httpx.AsyncClient) -> None:
        """Talk to the backend through this client (tests hand one with a mock transport)."""
        self._http = client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def open(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
        """A streamed backend response; the caller closes it. Raises httpx's errors."""
        return await self.http.send(self.http.build_request(method, path, headers=headers), stream=True)

    async def has_blob(self, path: str) -> bool:
        if path in self._present:
            return True
        try:
            found = await self.http.head(path)
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
        if found.status_code != 200:
            return False
        if len(self._present) >= KNOWN_BLOBS:
            self._present.clear()
        self._present.add(path)
        return True

    def forget_blobs(self) -> None:
        """After anything is deleted: whether a blob is there is asked of docker-registry again."""
        self._present.clear()

    async def delete(self, path: str, namespace: str) -> bool:
        """DELETE `path` on the backend: True once deleted, False when it had no such thing (404). Any
        other answer raises the backend's error, as `forward` relays it; no answer is 503."""
        self.forget_blobs()
        try:
            answer = await self.http.delete(path)
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
        if answer.status_code in (200, 202, 204):
            return True
        if answer.status_code == 404:
            return False
        if answer.status_code == 401:
            raise refused_by_backend()
        raise backend_error(answer, namespace)

    async def forward(
        self, request: Request, namespace: str, path: str, query: dict[str, str], content: bytes | None = None
    ) -> Response:
        """The request sent on to `path` (with `content` for a body the front has read already), its
        answer relayed with the headers a client may see."""
        if request.method == "DELETE":
            self.forget_blobs()
        try:
            sent = self._upstream_request(request, path, query, content)
            upstream = await self.http.send(sent, stream=True)
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
        headers = self._response_headers(upstream, namespace)
        if upstream.status_code == 401:
            await upstream.aclose()
            raise refused_by_backend()
        if request.method == "HEAD" or (
            upstream.status_code in (202, 204) and not upstream.headers.get("content-length")
        ):
            await upstream.aclose()
            return Response(status_code=upstream.status_code, headers=headers)
        if "json" in upstream.headers.get("content-type", "") and upstream.status_code >= 400:
            return await self._error(upstream, namespace, headers)
        return relay(upstream, headers)

    def _upstream_request(
        self, request: Request, path: str, query: dict[str, str], content: bytes | None
    ) -> httpx.Request:
        # A list, not a dict: clients repeat headers (podman sends one Accept per manifest type). As bytes:
        # a field value may hold any octet above 0x7f (RFC 9110 obs-text), which httpx cannot encode as str.
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
        body_allowed = request.method in ("PUT", "PATCH", "POST")
        if body_allowed and "content-length" in request.headers:
            headers.append((b"content-length", request.headers["content-length"].encode("latin-1")))
        return self.http.build_request(
            request.method,
            path,
            params=query,
            headers=headers,
            content=content if content is not None else request.stream() if body_allowed else None,
        )

    @staticmethod
    def _response_headers(upstream: httpx.Response, namespace: str) -> dict[str, str]:
        headers = {}
        for key, value in upstream.headers.items():
            if key.lower() not in PASS_RESPONSE:
                continue
            if key.lower() == "location":
                value = to_login_server(namespace, value)
            elif key.lower() == "link":
                url, _, rest = value.partition(">")
                value = f"<{to_login_server(namespace, url.lstrip('<'))}>{rest}"
            headers[key] = value
        return headers

    @staticmethod
    async def _error(upstream: httpx.Response, namespace: str, headers: dict[str, str]) -> Response:
        """A backend error body, read whole to drop the namespace from the names it mentions."""
        body = await upstream.aread()
        await upstream.aclose()
        text = body.decode(errors="replace").replace(f"{namespace}/", "")
        headers.pop("content-length", None)
        headers.pop("Content-Length", None)
        return Response(text, status_code=upstream.status_code, headers=headers)
