"""HTTP helpers the registry front's handlers share: bodies, headers and paging."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request

from ..errors import AcrError
from .records import FrontRegistry

DEFAULT_PAGE_SIZE = 100  # listings page like ACR's: clients follow the Link header
# `n` as distribution reads it (Go's strconv.Atoi into an int64): ASCII digits, at most 18 of them here.
PAGE_SIZE = re.compile(r"[0-9]{1,18}")
Item = TypeVar("Item")
Resolve = Callable[[Request], FrontRegistry]  # the registry whose login server a request came to


def method_not_allowed(allowed: Iterable[str]) -> AcrError:
    """405 with the `Allow` header ASP.NET Core's routing sends (`aspnet-routing`
    `HttpMethodMatcherPolicy`: the route's methods, sorted, comma-separated)."""
    return AcrError(405, "UNSUPPORTED", "method not allowed", headers={"Allow": ", ".join(sorted(allowed))})


def authorization(request: Request) -> str:
    return request.headers.get("authorization", "")


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, as the token endpoints take."""
    try:
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise AcrError(400, "UNSUPPORTED", "the form body is not valid UTF-8") from exc


async def read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AcrError(400, "UNSUPPORTED", f"the body is not valid JSON: {exc}") from exc


async def read_bounded(request: Request, limit: int) -> bytes:
    """A body of at most `limit` bytes; past it, docker-registry's answer to an oversized manifest
    (distribution `copyFullPayload` behind `http.MaxBytesReader`)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise AcrError(400, "MANIFEST_INVALID", "manifest invalid", detail="http: request body too large")
    return bytes(body)


def page_size(request: Request) -> int:
    raw = request.query_params.get("n", str(DEFAULT_PAGE_SIZE))
    if not PAGE_SIZE.fullmatch(raw) or int(raw) < 1:
        raise AcrError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
    return int(raw)


def paged(
    request: Request, items: list[Item], cursor: Callable[[Item], str], path: str
) -> tuple[list[Item], dict[str, str]]:
    """The page of `items` that `n` asks for, and the `Link` header to the next page when there is one
    (it carries `orderby` and `digest` on, as ACR's does)."""
    size = page_size(request)
    page = items[:size]
    headers = {}
    if len(items) > size:
        query: dict[str, str] = {"last": cursor(page[-1]), "n": str(size)}
        for carried in ("orderby", "digest"):
            if request.query_params.get(carried):
                query[carried] = request.query_params[carried]
        headers["Link"] = f'<{path}?{urlencode(query, quote_via=quote)}>; rel="next"'
    return page, headers
