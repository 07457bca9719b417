"""ARM's list pages: `value` plus an opaque `nextLink`, `$skiptoken` and `$top`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import ArmError

SortKey = Callable[[Mapping[str, Any]], str | int]
# Reads a page from an index: up to `limit` items in id order whose id sorts after the given one.
Slice = Callable[[str | None, int], Sequence[Mapping[str, Any]]]


class PageSettings(Protocol):
    """What a page reads of the emulator's settings (an `EmulatorConfig`)."""

    @property
    def page_size(self) -> int: ...

    @property
    def arm_endpoint(self) -> str: ...


def by_id(item: Mapping[str, Any]) -> str | int:
    return str(item["id"]).lower()


def page(
    settings: PageSettings,
    request: Request,
    items: Sequence[Mapping[str, Any]],
    top: int | None = None,
    key: SortKey = by_id,
) -> JSONResponse:
    """One page of `items` plus an opaque `nextLink`, as ARM lists answer.

    The skip token carries the last item's sort key, not a position, so a listing that runs while
    items are created or deleted neither skips nor repeats the ones that stay.
    """
    ordered = sorted(items, key=key)
    after = skip_token(request)
    if after is not None:
        ordered = [item for item in ordered if type(key(item)) is type(after) and key(item) > after]  # type: ignore[operator]
    size = top if top else settings.page_size
    return answer(settings, request, ordered[: size + 1], size, key)


def indexed_page(
    settings: PageSettings, request: Request, read: Slice, top: int | None = None
) -> JSONResponse:
    """`page` over a list the store reads in id order from an index: only the page is read (one item
    more, to know whether another page follows), so its cost does not grow with the list."""
    after = skip_token(request)
    if after is not None and not isinstance(after, str):
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.")
    size = top if top else settings.page_size
    return answer(settings, request, read(after, size + 1), size, by_id)


def skip_token(request: Request) -> str | int | None:
    """The sort key a `$skiptoken` carries: the last item of the previous page."""
    token = request.query_params.get("$skiptoken")
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
    if not isinstance(after, str | int) or isinstance(after, bool):
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.")
    return after


def answer(
    settings: PageSettings, request: Request, items: Sequence[Mapping[str, Any]], size: int, key: SortKey
) -> JSONResponse:
    """The page: the first `size` of `items`, and a `nextLink` when there are more."""
    selected = list(items[:size])
    body: dict[str, Any] = {"value": selected}
    if len(items) > size:
        query = {k: v for k, v in request.query_params.items() if k != "$skiptoken"}
        query["$skiptoken"] = base64.urlsafe_b64encode(json.dumps(key(selected[-1])).encode()).decode()
        body["nextLink"] = f"{settings.arm_endpoint}{request.url.path}?{urlencode(query)}"
    return JSONResponse(body)


def parse_top(request: Request) -> int | None:
    raw = request.query_params.get("$top")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ArmError(400, "InvalidTopInQueryString", f"The value '{raw}' of $top is invalid.")
    return int(raw)
