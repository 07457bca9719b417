"""The extend link's anonymous function: GET is a confirmation page that changes nothing, POST extends
once; the pages are self-contained HTML with the headers a link page needs; nothing of the URL or headers
but the token reaches the API."""

from __future__ import annotations

import asyncio
import html
import re
from urllib.parse import urlencode

import azure.functions as func
import pytest

import function_app
from shared import services
from shared.api import EXTEND_LINK_PATH
from shared.cleanup.links import LINK_PATH
from shared.cleanup.planner import iso
from tests.support.links import EXPIRY, World


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    built = World()
    monkeypatch.setattr(services, "_link_extension", lambda: built.links)
    return built


def get(query: str, host: str = "127.0.0.1:7071") -> func.HttpResponse:
    url = f"http://{host}{EXTEND_LINK_PATH}?{query}"
    request = func.HttpRequest(
        "GET", url, headers={"host": host}, params=dict([query.split("=", 1)]), body=b""
    )
    answer: func.HttpResponse = asyncio.run(function_app.cleanup_extend_link(request, None))
    return answer


def post(token: str) -> func.HttpResponse:
    body = urlencode({"t": token}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded", "x-functions-key": "ignored"}
    request = func.HttpRequest("POST", f"http://h{EXTEND_LINK_PATH}", headers=headers, params={}, body=body)
    answer: func.HttpResponse = asyncio.run(function_app.cleanup_extend_link(request, None))
    return answer


def text(answer: func.HttpResponse) -> str:
    return html.unescape(answer.get_body().decode())


def test_the_paths_agree() -> None:
    assert EXTEND_LINK_PATH == LINK_PATH


def test_get_confirms_and_changes_nothing_post_extends_once(world: World) -> None:
    token = world.token()
    page = get(f"t={token}")
    assert page.status_code == 200
    assert page.mimetype.startswith("text/html")
    assert f'value="{token}"' in page.get_body().decode()
    assert re.search(rf'<form method="post" action="{LINK_PATH}">', text(page))
    assert world.expiry() == iso(EXPIRY), "the GET (a prefetch) changed nothing"
    for name, value in {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }.items():
        assert page.headers[name].startswith(value)
    done = post(token)
    assert done.status_code == 200
    assert "now expires" in text(done)
    again = post(token)
    assert again.status_code == 409
    assert "already used" in text(again)


def test_a_forged_link_is_refused_with_an_escaped_page(world: World) -> None:
    payload, signature = world.token().split(".")
    answer = post(f"{payload[:-2]}AA.{signature}")
    assert answer.status_code == 403
    assert "signature is not valid" in text(answer)
    assert "<script" not in get("t=<script>alert(1)</script>").get_body().decode()


def test_the_host_header_does_not_choose_the_endpoint(world: World) -> None:
    answer = get(f"t={world.token()}", host="127.0.0.1:7071/api/openapi.json?x=")
    assert answer.status_code == 200
    assert "Extend lab" in text(answer)
