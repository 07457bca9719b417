"""devstack's webhook sink: answers as Slack and Teams incoming webhooks do, records what it accepted,
and shows it only with the admin key."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from devstack.emulator.webhooks import TEAMS_MAX_BYTES, WebhookSink


def refused(request: Request) -> Response | None:
    ok = request.headers.get("x-devstack-admin-key") == "admin"
    return None if ok else JSONResponse({"error": {"code": "Unauthorized"}}, 401)


def calls(*requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    app = Starlette(routes=WebhookSink(refused).routes())

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://e") as client:
            return [await client.request(method, url, **options) for method, url, options in requests]

    return asyncio.run(send())


ADMIN = {"headers": {"x-devstack-admin-key": "admin"}}


def test_slack_and_teams_answers_and_what_was_received() -> None:
    slack, teams, listed, unkeyed, cleared, empty = calls(
        ("POST", "/_devstack/webhooks/slack", {"json": {"text": "hi"}}),
        ("POST", "/_devstack/webhooks/teams", {"json": {"type": "message", "attachments": []}}),
        ("GET", "/_devstack/webhooks/slack/received", ADMIN),
        ("GET", "/_devstack/webhooks/slack/received", {}),
        ("DELETE", "/_devstack/webhooks/slack/received", ADMIN),
        ("GET", "/_devstack/webhooks/slack/received", ADMIN),
    )
    assert (slack.status_code, slack.text) == (200, "ok")
    assert (teams.status_code, teams.text) == (202, "")
    assert [entry["body"] for entry in listed.json()["value"]] == [{"text": "hi"}]
    assert unkeyed.status_code == 401
    assert cleared.status_code == 204
    assert empty.json() == {"value": []}


def test_what_the_services_refuse_is_refused_and_not_recorded() -> None:
    answers = calls(
        ("POST", "/_devstack/webhooks/slack", {"content": b"not json"}),
        ("POST", "/_devstack/webhooks/slack", {"json": ["a list"]}),
        ("POST", "/_devstack/webhooks/slack", {"json": {"username": "no text"}}),
        ("POST", "/_devstack/webhooks/teams", {"json": {"text": "x" * TEAMS_MAX_BYTES}}),
        ("POST", "/_devstack/webhooks/Bad_Name", {"json": {"text": "hi"}}),
        ("GET", "/_devstack/webhooks/slack/received", ADMIN),
        ("GET", "/_devstack/webhooks/teams/received", ADMIN),
    )
    assert [(a.status_code, a.text) for a in answers[:3]] == [
        (400, "invalid_payload"),
        (400, "invalid_payload"),
        (400, "no_text"),
    ]
    assert answers[3].status_code == 413
    assert answers[4].status_code == 404
    assert answers[5].json() == answers[6].json() == {"value": []}
