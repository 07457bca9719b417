"""ARM list pages below the emulator: `nextLink` with a skip token that survives deletions, `$top`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.requests import Request

from devstack.emulator.arm.paging import page, parse_top
from devstack.emulator.errors import ArmError


@dataclass(frozen=True)
class Settings:
    page_size: int = 2
    arm_endpoint: str = "https://arm.test"


def request(query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/subscriptions/s/resourcegroups",
        "query_string": query.encode(),
        "headers": [],
    }
    return Request(scope)


def body(query: str, items: list[dict[str, Any]], top: int | None = None) -> dict[str, Any]:
    return dict(json.loads(bytes(page(Settings(), request(query), items, top).body)))


def test_a_page_links_to_the_next_from_its_last_item() -> None:
    items = [{"id": f"/g/{name}"} for name in "cab"]
    first = body("api-version=1", items)
    assert [item["id"] for item in first["value"]] == ["/g/a", "/g/b"]
    link = urlsplit(first["nextLink"])
    assert (link.scheme, link.netloc, link.path) == ("https", "arm.test", "/subscriptions/s/resourcegroups")
    query = parse_qs(link.query)
    assert query["api-version"] == ["1"]
    rest = body(link.query, [item for item in items if item["id"] != "/g/a"])  # /g/a deleted meanwhile
    assert rest == {"value": [{"id": "/g/c"}]}
    assert body("", items, top=3) == {"value": [{"id": "/g/a"}, {"id": "/g/b"}, {"id": "/g/c"}]}


@pytest.mark.parametrize("token", ["%%%", "dHJ1ZQ"])  # not base64 JSON; JSON `true`
def test_a_bad_skip_token_is_a_400(token: str) -> None:
    with pytest.raises(ArmError) as caught:
        body(f"$skiptoken={token}", [{"id": "/g/a"}])
    assert (caught.value.status, caught.value.code) == (400, "InvalidSkipToken")


@pytest.mark.parametrize("raw", ["0", "-1", "x"])
def test_top_must_be_a_positive_integer(raw: str) -> None:
    with pytest.raises(ArmError) as caught:
        parse_top(request(f"$top={raw}"))
    assert (caught.value.status, caught.value.code) == (400, "InvalidTopInQueryString")
    assert parse_top(request("$top=5")) == 5
    assert parse_top(request()) is None
