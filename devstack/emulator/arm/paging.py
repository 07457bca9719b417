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
    token = request.query_params.get("$skiptoken")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError as exc:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
        if not isinstance(after, str | int) or isinstance(after, bool):
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.")
        ordered = [item for item in ordered if type(key(item)) is type(after) and key(item) > after]  # type: ignore[operator]
    size = top if top else settings.page_size
    selected = ordered[:size]
    body: dict[str, Any] = {"value": selected}
    if len(ordered) > size:
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
