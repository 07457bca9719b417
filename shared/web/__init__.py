"""The operators' page: static HTML, CSS and JavaScript served by the app under /api/ui/.

The page reads the HTTP API from the browser with the caller's own credentials (a function key it is
given, or the App Service authentication cookie in Azure), so it has no powers of its own: the files are
the same for everyone and hold no data, which is why they are served without a key (an ANONYMOUS
function; App Service authentication still guards them when it is on). Swagger UI's files come from the
fastapi-swagger package (pinned in requirements.txt): nothing is fetched from a CDN at run time.

Only the files listed in ASSETS are served (no path is ever joined to a directory); each answer carries
a strict Content-Security-Policy and an ETag, and a matching If-None-Match answers 304.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from ..errors import NotFound, error_body, http_status

UI_PREFIX = "/api/ui/"

HTML, JS, CSS = "text/html; charset=utf-8", "text/javascript; charset=utf-8", "text/css; charset=utf-8"
OURS, SWAGGER = "static", "swagger"
# URL path under /api/ui/ → (where, file, media type)
ASSETS: dict[str, tuple[str, str, str]] = {
    "": (OURS, "index.html", HTML),
    "index.html": (OURS, "index.html", HTML),
    "app.js": (OURS, "app.js", JS),
    "app.css": (OURS, "app.css", CSS),
    "docs": (OURS, "docs.html", HTML),
    "docs.js": (OURS, "docs.js", JS),
    "swagger/swagger-ui-bundle.js": (SWAGGER, "swagger-ui-bundle.js", JS),
    "swagger/swagger-ui.css": (SWAGGER, "swagger-ui.css", CSS),
}


def _directory(where: str) -> Path:
    if where == OURS:
        return Path(__file__).parent / "static"
    # Located without importing fastapi_swagger (its __init__ loads FastAPI): only its files are used.
    spec = find_spec("fastapi_swagger")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-swagger package (requirements.txt) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


# The page's own files run no inline script or style and talk to this origin only. Swagger UI sets
# style attributes from its scripts and draws its icons from data: URLs, hence its looser style/img.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class WebResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@cache
def asset(path: str) -> Asset:
    """One of the page's files, read once per process."""
    try:
        where, name, media_type = ASSETS[path]
    except KeyError:
        raise NotFound(f"no file '{path[:100]}' in the page") from None
    body = (_directory(where) / name).read_bytes()
    return Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _headers(path: str, media_type: str) -> dict[str, str]:
    return {
        "Content-Type": media_type,
        "Content-Security-Policy": DOCS_POLICY if path.startswith(("docs", "swagger/")) else PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated on every load (a deployment changes the files), cheap with the ETag's 304.
        "Cache-Control": "no-cache",
    }


def serve(path: str, if_none_match: str | None = None) -> WebResponse:
    """The answer to GET /api/ui/<path>."""
    path = path.strip("/")
    try:
        found = asset(path)
    except NotFound as exc:
        headers = _headers("", "application/json")
        return WebResponse(http_status(exc), json.dumps(error_body(exc)).encode(), headers)
    headers = {**_headers(path, found.media_type), "ETag": found.etag}
    if if_none_match is not None and found.etag in (tag.strip() for tag in if_none_match.split(",")):
        return WebResponse(304, b"", headers)
    return WebResponse(200, found.body, headers)


__all__ = ["ASSETS", "UI_PREFIX", "WebResponse", "asset", "serve"]
