"""ACR data plane for verification: resolve a tag, read a manifest and config, lock or quarantine.

azure-containerregistry re-runs the whole token flow on every request (401,
exchange, token, retry: four requests per call). Verification must stay within a
handful of requests per image, so this client keeps ACR's refresh token and the
per-repository access tokens until they expire, on top of azure-core's pipeline
(retries with backoff, Retry-After, TLS from the environment's CA bundle).

ACR answers a blob GET with 307 to its storage (a SAS link on `*.blob.core.windows.net` or a
data endpoint): blob reads follow it, and the registry token never leaves the login server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import AzureError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import (
    HeadersPolicy,
    RedirectPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse

from .errors import REGISTRY_DATA_ROLE, DockmasterError, InvalidInput, NotFound, from_azure, from_status
from .oci import Descriptor, Malformed
from .transport import transport

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
EXPIRY_MARGIN = 60
NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)
TAG_ORDERS = ("timedesc", "timeasc")


def repository_scope(repository: str) -> str:
    """The scope the app reads a repository with: its content, its metadata and its attributes."""
    return f"repository:{repository}:pull,metadata_read,metadata_write"


def push_scope(repository: str) -> str:
    """Pushing a verdict's referrer, and only that, asks for push (a token of its own)."""
    return f"repository:{repository}:pull,push"


@dataclass(frozen=True)
class Page:
    """One page of an ACR listing; `last` is what to ask for next (None on the last page)."""

    items: list[Any]
    last: str | None


def _next_last(response: HttpResponse) -> str | None:
    """The `last` of the Link header's next page, as ACR pages /acr/v1/ listings."""
    found = NEXT_LINK.search(response.headers.get("Link", ""))
    if found is None:
        return None
    values = parse_qs(urlsplit(found.group(1)).query).get("last")
    return values[0] if values else None


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    document: dict[str, Any]
    size: int


class OverBudget(InvalidInput):
    """A read of an image's blobs went past the bytes it may read."""


class ReadBudget:
    """Bytes a read of several blobs may still take (layers scanned for /etc/passwd, say)."""

    def __init__(self, limit: int) -> None:
        self.limit = self.left = limit

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise OverBudget(f"{what}: more than the {self.limit} bytes this read may take")


def _expiry(token: str) -> float:
    """The `exp` claim of an ACR token (a JWT); its signature is the registry's business."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, ValueError):
        return time.time() + 300


class _Sent(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Innermost policy: counts each request as it goes on the wire (every retry, every redirect hop)."""

    def __init__(self) -> None:
        self.count = 0

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        self.count += 1


class RegistryClient:
    def __init__(self, login_server: str, credential: TokenCredential, aad_scope: str) -> None:
        self.login_server = login_server
        self._credential = credential
        self._aad_scope = aad_scope
        self._sent = _Sent()
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=f"https://{login_server}",
            policies=[
                HeadersPolicy(),
                UserAgentPolicy(sdk_moniker="dockmaster"),
                # Off unless a call permits it (blob reads): a 307 keeps method and body, and the token
                # endpoints' bodies are credentials. On each hop the policy drops Authorization (set by
                # _send, not by a policy that would set it again): the link's own SAS is the credential.
                RedirectPolicy(permit_redirects=False, redirect_max=3),
                RetryPolicy(retry_total=4, retry_backoff_factor=0.4, timeout=60),
                self._sent,
            ],
            transport=transport(),
        )
        self._lock = threading.Lock()
        self._refresh: tuple[str, float] | None = None
        self._access: dict[str, tuple[str, float]] = {}

    @property
    def requests(self) -> int:
        """For the benchmark: every HTTP request this client has sent (a followed redirect is two)."""
        return self._sent.count

    # Token flow -----------------------------------------------------------------
    def _post_form(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        request = HttpRequest(
            "POST",
            self._client.format_url(path),
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = self._run(request)
        if response.status_code != 200:
            raise self._error(response, f"asking {self.login_server} for a token ({path})")
        body: dict[str, Any] = response.json()
        return body

    def _refresh_token(self) -> str:
        if self._refresh and self._refresh[1] - EXPIRY_MARGIN > time.time():
            return self._refresh[0]
        aad = self._credential.get_token(self._aad_scope).token
        token = str(
            self._post_form(
                "/oauth2/exchange",
                {"grant_type": "access_token", "service": self.login_server, "access_token": aad},
            )["refresh_token"]
        )
        self._refresh = (token, _expiry(token))
        return token

    def _access_token(self, scope: str) -> str:
        with self._lock:
            cached = self._access.get(scope)
            if cached and cached[1] - EXPIRY_MARGIN > time.time():
                return cached[0]
            answer = self._post_form(
                "/oauth2/token",
                {
                    "grant_type": "refresh_token",
                    "service": self.login_server,
                    "scope": scope,
                    "refresh_token": self._refresh_token(),
                },
            )
            token = str(answer["access_token"])
            self._access[scope] = (token, _expiry(token))
            return token

    def _run(self, request: HttpRequest, *, follow: bool = False, stream: bool = False) -> HttpResponse:
        try:
            response: HttpResponse = self._client.send_request(
                request, permit_redirects=follow, stream=stream
            )
            return response
        except AzureError as exc:  # no answer: refused, reset, timed out (after the pipeline's retries)
            service = f"the registry {self.login_server}"
            raise from_azure(
                exc,
                f"{request.method} {urlsplit(request.url).path}",
                service=service,
                role=REGISTRY_DATA_ROLE,
            ) from exc

    def _send(
        self, method: str, path: str, scope: str, *, follow: bool = False, stream: bool = False, **kwargs: Any
    ) -> HttpResponse:
        for attempt in (1, 2):
            request = HttpRequest(method, self._client.format_url(path), **kwargs)
            request.headers["Authorization"] = f"Bearer {self._access_token(scope)}"
            response = self._run(request, follow=follow, stream=stream)
            if response.status_code != 401 or attempt == 2:
                break
            with self._lock:  # the token was revoked or expired early: forget it, ask once more
                self._access.pop(scope, None)
        if response.status_code >= 300:  # a redirect not followed is no content either
            if stream:
                response.read()
            raise self._error(response, f"{method} {path}")
        return response

    def _error(self, response: HttpResponse, doing: str) -> DockmasterError:
        """The registry's answer through the one table in shared/errors.py, with its first error code
        (the distribution spec's `{"errors": [{"code": "MANIFEST_UNKNOWN", ...}]}`) when it gave one."""
        code = None
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
            code = str(response.json()["errors"][0]["code"])
        return from_status(
            response.status_code,
            doing,
            service=f"the registry {self.login_server}",
            role=REGISTRY_DATA_ROLE,
            code=code,
        )

    # Reads ----------------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """One request: the manifest a tag or digest names, with its digest checked."""
        response = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository_scope(repository),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        raw = response.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidInput(
                f"the manifest of {repository}:{reference} is larger than {MAX_MANIFEST_BYTES} bytes"
            )
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced != digest:
            raise InvalidInput(f"the registry announced {announced} but the manifest hashes to {digest}")
        if reference.startswith("sha256:") and reference != digest:
            raise InvalidInput(f"the manifest {reference} of {repository} hashes to {digest}")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput(f"the manifest of {repository}:{reference} is not JSON") from exc
        if not isinstance(document, dict):
            raise InvalidInput(f"the manifest of {repository}:{reference} is not a JSON object")
        media_type = str(document.get("mediaType") or response.headers.get("Content-Type", "")).split(";")[0]
        return Manifest(digest, media_type, document, len(raw))

    def manifest_properties(self, repository: str, digest: str) -> dict[str, Any] | None:
        """ACR's manifest properties (tags, changeable attributes); None if the manifest is gone."""
        try:
            response = self._send(
                "GET",
                f"/acr/v1/{repository}/_manifests/{digest}",
                repository_scope(repository),
            )
        except NotFound:
            return None
        found = response.json().get("manifest")
        return found if isinstance(found, dict) else {}

    def manifest_tags(self, repository: str, digest: str) -> list[str]:
        """The tags that point to `digest` now; none if it is gone."""
        properties = self.manifest_properties(repository, digest) or {}
        return [str(tag) for tag in properties.get("tags") or []]

    def digest_of(self, repository: str, reference: str) -> str:
        """The digest a tag names, or a digest checked to exist: one metadata read (ACRDATA
        GetTagProperties / GetManifestProperties), which a quarantined image (readEnabled=false) answers
        too. NotFound when the tag or manifest is not there."""
        kind = "_manifests" if reference.startswith("sha256:") else "_tags"
        response = self._send(
            "GET",
            f"/acr/v1/{repository}/{kind}/{reference}",
            repository_scope(repository),
        )
        found = response.json().get("manifest" if kind == "_manifests" else "tag") or {}
        digest = found.get("digest")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise InvalidInput(f"the registry named no digest for {repository} {reference}")
        return digest

    def get_json_blob(self, repository: str, descriptor: Descriptor) -> Any:
        """Two requests in Azure: ACR's 307 (GetBlob in the data-plane spec), then the storage link. The
        blob must be exactly what its descriptor says (size and digest) and JSON: else the image is
        Malformed."""
        response = self._send(
            "GET",
            f"/v2/{repository}/blobs/{descriptor.digest}",
            repository_scope(repository),
            follow=True,
        )
        raw = response.content
        if len(raw) != descriptor.size:
            raise Malformed(
                f"blob {descriptor.digest} is {len(raw)} bytes, its descriptor says {descriptor.size}"
            )
        if "sha256:" + hashlib.sha256(raw).hexdigest() != descriptor.digest:
            raise Malformed(f"blob {descriptor.digest} does not match its digest")
        try:
            return json.loads(raw)
        except ValueError:
            raise Malformed(f"blob {descriptor.digest} is not JSON") from None

    def blob_chunks(self, repository: str, descriptor: Descriptor, budget: ReadBudget) -> Iterator[bytes]:
        """A blob's bytes as they arrive, counted against `budget` (shared by the blobs of one read);
        the size and digest are checked when the blob ends."""
        response = self._send(
            "GET",
            f"/v2/{repository}/blobs/{descriptor.digest}",
            repository_scope(repository),
            follow=True,
            stream=True,
        )
        hasher, seen = hashlib.sha256(), 0
        try:
            for chunk in response.iter_bytes():
                seen += len(chunk)
                budget.spend(len(chunk), f"blob {descriptor.digest}")
                hasher.update(chunk)
                yield chunk
        finally:
            response.close()
        if seen != descriptor.size or "sha256:" + hasher.hexdigest() != descriptor.digest:
            raise Malformed(f"blob {descriptor.digest} does not match its descriptor")

    # Listings (az acr repository list / show-tags --detail), one page per call ---------------
    def list_repositories(self, n: int, last: str | None = None) -> Page:
        query = {"n": str(n), **({"last": last} if last else {})}
        response = self._send("GET", f"/acr/v1/_catalog?{urlencode(query)}", "registry:catalog:*")
        names = response.json().get("repositories") or []
        return Page([str(name) for name in names], _next_last(response))

    def list_tags(self, repository: str, n: int, last: str | None = None, orderby: str | None = None) -> Page:
        """Tags with digest, times and changeable attributes (ACR's `_tags` view)."""
        if orderby is not None and orderby not in TAG_ORDERS:
            raise InvalidInput(f"orderby must be one of {', '.join(TAG_ORDERS)}")
        query = {"n": str(n), **({"last": last} if last else {}), **({"orderby": orderby} if orderby else {})}
        response = self._send(
            "GET",
            f"/acr/v1/{repository}/_tags?{urlencode(query)}",
            repository_scope(repository),
        )
        tags = response.json().get("tags") or []
        return Page([tag for tag in tags if isinstance(tag, dict)], _next_last(response))

    def tag_target(self, repository: str, tag: str) -> tuple[str | None, dict[str, Any]]:
        """(the digest `tag` points to now, its changeable attributes); (None, {}) if there is no such tag."""
        try:
            response = self._send(
                "GET",
                f"/acr/v1/{repository}/_tags/{tag}",
                repository_scope(repository),
            )
        except NotFound:
            return None, {}
        found = response.json().get("tag") or {}
        return str(found.get("digest") or "") or None, dict(found.get("changeableAttributes") or {})

    def ping(self, timeout: float) -> int:
        """GET /v2/ without a credential, once, with short timeouts: any answer (401 expected) is up."""
        request = HttpRequest("GET", self._client.format_url("/v2/"))
        response: HttpResponse = self._client.send_request(
            request, retry_total=0, connection_timeout=timeout, read_timeout=timeout
        )
        return response.status_code

    # Pushes (a verdict's referrer) ----------------------------------------------------------
    def has_blob(self, repository: str, digest: str) -> bool:
        """HEAD of a blob: ACR answers it on the login server, without the redirect a GET gets."""
        try:
            self._send("HEAD", f"/v2/{repository}/blobs/{digest}", push_scope(repository))
        except NotFound:
            return False
        return True

    def push_blob(self, repository: str, data: bytes) -> str:
        """A monolithic upload (distribution spec: POST for a session, PUT of the bytes with the digest):
        two requests. The session's Location must stay on the login server, since the registry token
        goes with it."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self._send("POST", f"/v2/{repository}/blobs/uploads/", push_scope(repository))
        location = urlsplit(started.headers.get("Location", ""))
        if location.netloc and location.netloc.lower() != self.login_server.lower():
            raise InvalidInput(f"the registry sent the upload of {repository} to another host")
        if not location.path.startswith(f"/v2/{repository}/blobs/uploads/"):
            raise InvalidInput(f"the registry answered the upload of {repository} with no session")
        query = urlencode([*parse_qsl(location.query), ("digest", digest)])
        self._send(
            "PUT",
            f"{location.path}?{query}",
            push_scope(repository),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return digest

    def put_manifest(self, repository: str, body: bytes, media_type: str) -> str:
        """PUT a manifest by its own digest (no tag): idempotent, the same bytes are the same manifest."""
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{digest}",
            push_scope(repository),
            content=body,
            headers={"Content-Type": media_type},
        )
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise InvalidInput(f"the registry stored the manifest as {stored}, not {digest}")
        return digest

    def manifest_descriptor(self, repository: str, digest: str) -> tuple[str, int]:
        """(media type, size) of a manifest, from a HEAD; NotFound when it is gone."""
        response = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{digest}",
            repository_scope(repository),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return media_type, int(response.headers.get("Content-Length") or 0)

    # Writes ---------------------------------------------------------------------------
    def update_tag(self, repository: str, tag: str, attributes: dict[str, bool]) -> None:
        self._send(
            "PATCH",
            f"/acr/v1/{repository}/_tags/{tag}",
            repository_scope(repository),
            json=attributes,
        )

    def update_manifest(self, repository: str, digest: str, attributes: dict[str, bool]) -> None:
        self._send(
            "PATCH",
            f"/acr/v1/{repository}/_manifests/{digest}",
            repository_scope(repository),
            json=attributes,
        )

    # Retention: the manifest listing and deletes ---------------------------------------------
    def list_manifests(self, repository: str, n: int, last: str | None = None) -> Page:
        """A page of ACR's `_manifests` view: digest, tags, times, media type, changeable attributes,
        and an index's children in `references`."""
        query = {"n": str(n), **({"last": last} if last else {})}
        response = self._send(
            "GET",
            f"/acr/v1/{repository}/_manifests?{urlencode(query)}",
            repository_scope(repository),
        )
        manifests = response.json().get("manifests") or []
        return Page([m for m in manifests if isinstance(m, dict)], _next_last(response))

    def delete_manifest(self, repository: str, digest: str) -> None:
        """`DELETE /v2/<repo>/manifests/<digest>` (ACRDATA DeleteManifest): the manifest and every tag on
        it; ACR deletes its OCI referrers with it. Asked with a token for `delete` only."""
        if not digest.startswith("sha256:"):
            raise InvalidInput(f"a manifest is deleted by digest, not '{digest}'")
        self._send("DELETE", f"/v2/{repository}/manifests/{digest}", self._delete_scope(repository))

    def delete_tag(self, repository: str, tag: str) -> None:
        """`DELETE /acr/v1/<repo>/_tags/<tag>` (ACRDATA DeleteTag): the tag only, its manifest stays."""
        self._send("DELETE", f"/acr/v1/{repository}/_tags/{tag}", self._delete_scope(repository))

    @staticmethod
    def _delete_scope(repository: str) -> str:
        """Deletes alone carry `delete`: every other request's token keeps the narrower scope."""
        return f"repository:{repository}:delete"
