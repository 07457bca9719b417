"""A lab's warning on every channel, and its one-click extend link, through the real local Functions host
against the session devstack: the plan warns a lab; Teams and Slack receive their payloads (devstack's
webhook sink) and the topic a CloudEvent; the link's GET changes nothing, its POST extends once, without
a function key; a forged and an expired link are refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from shared.api.auth import OPERATE
from shared.cleanup.links import LINK_PATH, ExtendLink
from shared.cleanup.planner import iso
from tests.support.api import Api, local_host
from tests.support.cleanup import MARK, Env
from tests.support.faults import admin_client
from tests.support.stack import Devstack, unique
from tests.support.webhooks import check_slack, check_teams

KEY = bytes(range(100, 132))
LOCATION = "westeurope"


class Receiver:
    """A CloudEvents webhook on 127.0.0.1: answers the abuse-protection check, records deliveries."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:
                self.send_response(200)
                self.send_header("WebHook-Allowed-Origin", self.headers.get("WebHook-Request-Origin", "*"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"null")
                receiver.events += body if isinstance(body, list) else [body]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/events"

    def wait(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} of {count} events after {timeout}s"
            time.sleep(0.05)
        return self.events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def marker() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def grid(devstack: Devstack, credential: Any) -> Any:
    from azure.mgmt.eventgrid import EventGridManagementClient

    return EventGridManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())


@pytest.fixture(scope="module")
def topic(grid: Any, resource_client: Any) -> Iterator[tuple[Any, Receiver]]:
    group = unique("rg-notify-events-")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    created = grid.topics.begin_create_or_update(
        group, unique("notify-"), {"location": LOCATION, "input_schema": "CloudEventSchemaV1_0"}
    ).result()
    receiver = Receiver()
    grid.topic_event_subscriptions.begin_create_or_update(
        group,
        created.name,
        "all",
        {"destination": {"endpoint_type": "WebHook", "endpoint_url": receiver.url}},
    ).result()
    yield created, receiver
    receiver.close()
    resource_client.resource_groups.begin_delete(group, polling=False)


@pytest.fixture(scope="module")
def api(
    devstack: Devstack, marker: str, topic: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    settings = {
        "DOCKMASTER_REGISTRIES": "",
        "DOCKMASTER_RUNS_QUEUE": f"api-notify-runs-{marker}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": topic[0].endpoint,
        "DOCKMASTER_API_ROLES": "true",
        "DOCKMASTER_PUBLIC_URL": "https://dockmaster.example.test",
        "CLEANUP_ENABLED": "true",
        "CLEANUP_DRY_RUN": "false",
        "CLEANUP_LAB_TAG": f"{MARK}={marker}",
        "CLEANUP_NAME_PATTERNS": "",
        "CLEANUP_WARNING_HOURS": "12",
        "CLEANUP_MAX_EXTENSION_HOURS": "48",
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",  # yearly: the timer must not warn while the tests run
        "CLEANUP_TEAMS_WEBHOOK_URL": f"{devstack.arm}/_devstack/webhooks/teams-{marker}",
        "CLEANUP_SLACK_WEBHOOK_URL": f"{devstack.arm}/_devstack/webhooks/slack-{marker}",
        "CLEANUP_LINK_KEY": base64.b64encode(KEY).decode(),
    }
    with local_host(devstack, tmp_path_factory.mktemp("api-notify-host"), settings) as (url, key, log):
        yield Api(url, key, registry="", login_server="", log_path=log)


@pytest.fixture
def labs(devstack: Devstack, resource_client: Any, lock_client: Any, marker: str) -> Iterator[Env]:
    made = Env(devstack, resource_client, lock_client)
    made.marker = marker
    yield made
    made.cleanup()


def received(devstack: Devstack, name: str) -> list[dict[str, Any]]:
    with admin_client(devstack) as admin:
        answer = admin.get(f"/_devstack/webhooks/{name}/received")
    assert answer.status_code == 200, answer.text
    return [entry["body"] for entry in answer.json()["value"]]


def test_a_warned_lab_is_announced_on_every_channel_and_its_link_extends_once(
    api: Api, labs: Env, topic: Any, grid: Any, devstack: Devstack, marker: str
) -> None:
    expiry = labs.at(hours=3)
    name = labs.create("soon", {"expiresOn": expiry, "owner": "alice@contoso.com"})
    grid.topics.begin_create_or_update(name, "held", {"location": LOCATION}).result()
    with api.client(OPERATE) as client:
        answer = client.post("/api/cleanup/plan", json={"filters": {"namePatterns": [f"{labs.prefix}*"]}})
    assert answer.status_code == 200, answer.text
    (teams,) = [m for m in received(devstack, f"teams-{marker}") if name in json.dumps(m)]
    (slack,) = [m for m in received(devstack, f"slack-{marker}") if name in json.dumps(m)]
    check_teams(teams)
    check_slack(slack)
    for message in (json.dumps(teams, ensure_ascii=False), json.dumps(slack, ensure_ascii=False)):
        for text in (expiry, "alice@contoso.com", "1 × Microsoft.EventGrid/topics"):
            assert text in message
    (event,) = [e for e in topic[1].wait(1) if e["subject"] == name]
    assert event["type"] == "Dockmaster.Cleanup.Warning"

    (button,) = slack["blocks"][-1]["elements"]
    link = urlsplit(button["url"])
    assert link.path == LINK_PATH
    token = parse_qs(link.query)["t"][0]
    with httpx.Client(base_url=api.url, timeout=60) as browser:  # no function key
        page = browser.get(LINK_PATH, params={"t": token})
        assert page.status_code == 200, page.text
        assert labs.tags(name)["expiresOn"] == expiry, "a GET (a link prefetcher) changes nothing"
        done = browser.post(LINK_PATH, data={"t": token})
        assert done.status_code == 200, done.text
        extended = iso(dt.datetime.fromisoformat(expiry) + dt.timedelta(hours=24))  # CLEANUP_LINK_HOURS
        assert labs.tags(name)["expiresOn"] == extended
        again = browser.post(LINK_PATH, data={"t": token})
        assert again.status_code == 409
        assert "already used" in again.text
        assert labs.tags(name)["expiresOn"] == extended


def test_forged_and_expired_links_are_refused(api: Api, labs: Env, devstack: Devstack) -> None:
    expiry = labs.at(hours=3)
    name = labs.create("other", {"expiresOn": expiry})
    at = dt.datetime.fromisoformat(expiry)
    genuine = ExtendLink.issue(devstack.subscription, name, at, 1)
    forged = genuine.token(bytes(32))
    past = at - dt.timedelta(days=1)
    expired = ExtendLink(devstack.subscription, name, past, 1, genuine.nonce, past).token(KEY)
    with httpx.Client(base_url=api.url, timeout=60) as browser:
        refused = browser.post(LINK_PATH, data={"t": forged})
        assert refused.status_code == 403
        assert "signature is not valid" in refused.text
        late = browser.post(LINK_PATH, data={"t": expired})
        assert late.status_code == 403
        assert "expired" in late.text
    assert labs.tags(name)["expiresOn"] == expiry
