"""The local Functions host (`python -m devstack.host`) serving the small apps of tests/hostapps.

Each host runs as a real subprocess on a free port, configured the way a developer configures one:
a local.settings.json (written per test module), tests/hostapps/host.json (short polling intervals),
and its own state directory (keys, timer status). Queue tests use Azurite from the devstack fixture.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from devstack.host import Host, HostError
from devstack.stack import REPO_ROOT, free_port
from tests.support.raw_http import raw_http
from tests.support.stack import Devstack

HOSTAPPS = REPO_ROOT / "tests" / "hostapps"
WEBHOOK = "/runtime/webhooks/eventgrid"


@dataclass
class RunningHost:
    process: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    record_path: Path
    log_path: Path

    @property
    def keys(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "keys.json").read_text()))

    @property
    def function_key(self) -> str:
        return str(self.keys["functionKeys"]["default"])

    @property
    def master_key(self) -> str:
        return str(self.keys["masterKey"])

    @property
    def webhook_key(self) -> str:
        return str(self.keys["systemKeys"]["eventgrid_extension"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the host log after {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def records(self, kind: str) -> list[dict[str, Any]]:
        if not self.record_path.exists():
            return []
        lines = self.record_path.read_text().splitlines()
        return [entry for entry in map(json.loads, lines) if entry["kind"] == kind]

    def wait_records(
        self,
        kind: str,
        count: int,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 15,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [entry for entry in self.records(kind) if where(entry)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"fewer than {count} {kind!r} records after {timeout}s; host log:\n{self.log()[-3000:]}"
        )


def start_refused(app: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m devstack.host` for an app it must refuse to start; returns how it ended."""
    return subprocess.run(
        [
            sys.executable,
            *("-m", "devstack.host", "--app", app, "--port", str(free_port())),
            *("--host-json", str(HOSTAPPS / "host.json"), "--state-dir", str(state_dir)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def launch(tmp: Path, app: str, values: dict[str, str], *extra: str) -> RunningHost:
    """Start `python -m devstack.host` and wait until it answers."""
    record = tmp / "record.jsonl"
    settings = tmp / "local.settings.json"
    settings.write_text(
        json.dumps({"IsEncrypted": False, "Values": {"HOSTAPP_RECORD": str(record), **values}})
    )
    # The environment wins over local settings (as with Core Tools): keep the test runner's out of the way.
    env = {key: value for key, value in os.environ.items() if key not in values and key != "HOSTAPP_RECORD"}
    port = free_port()
    log_path = tmp / "host.log"
    state_dir = tmp / "state"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.host",
                "--app",
                app,
                "--port",
                str(port),
                "--settings",
                str(settings),
                "--host-json",
                str(HOSTAPPS / "host.json"),
                "--state-dir",
                str(state_dir),
                *extra,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    host = RunningHost(process, f"http://127.0.0.1:{port}", state_dir, record, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the host exited with {process.returncode}:\n{host.log()}")
        try:
            if httpx.get(host.url + "/", timeout=1).status_code == 200:
                return host
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(host)
    raise AssertionError(f"the host did not answer within 30s:\n{host.log()}")


def stop(host: RunningHost) -> int:
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()
    return host.process.returncode


# ---------------------------------------------------------------- HTTP, Event Grid, timers (no storage)


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    tmp = tmp_path_factory.mktemp("basic-host")
    # The monitored yearly timer was due while the host was down: it must run at once, past due.
    status = tmp / "state" / "timers" / "yearly.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"Last": None, "Next": "2020-01-01T00:00:00+00:00", "LastUpdated": None}))
    host = launch(tmp, "tests.hostapps.basic_app", {"TICK_SCHEDULE": "*/1 * * * * *"})
    yield host
    assert stop(host) == 0, host.log()[-3000:]


def test_routes_parameters_and_methods(basic: RunningHost) -> None:
    with httpx.Client(base_url=basic.url) as client:
        hello = client.get("/api/hello/world")
        assert (hello.status_code, hello.text) == (200, "hello world")
        assert hello.headers["content-type"] == "text/plain; charset=utf-8"
        assert client.get("/API/Hello/there").text == "hello there"  # literals match case-insensitively
        posted = client.post(
            "/api/items/42/parts?a=1&A=2&b=",
            content=b"payload",
            headers=[("X-Repeated", "1"), ("X-Repeated", "2")],
        ).json()
        assert posted["route"] == {"id": "42", "part": "parts"}
        assert posted["method"] == "POST"
        # As the host sends them: one parameter per name in any case, values joined with ','; an empty
        # value left out; a repeated header joined with ',' (StringValues.ToString).
        assert posted["params"] == {"a": "1,2"}
        assert posted["repeated"] == "1,2"
        assert posted["body"] == "payload"
        assert posted["url"].endswith("/api/items/42/parts?a=1&A=2&b=")
        assert client.get("/api/items/7").json()["route"] == {"id": "7"}  # {part?} left out
        # {id:int} refuses "abc", so the request falls through to items/{slug}.
        assert client.get("/api/items/abc").json() == {"slug": "abc"}
        assert client.delete("/api/items/7").status_code == 404  # DELETE is not among the methods
        assert client.get("/api/files/a/b/c.txt").text == "a/b/c.txt"
        assert client.get("/api/files").text == ""
        assert client.get("/api/nothing-here").status_code == 404
        assert client.get("/hello/world").status_code == 404  # outside the route prefix


def test_a_chunked_request_body_does_not_reach_the_function(basic: RunningHost) -> None:
    """The host copies a body only when the request declares a Content-Length (azure-functions-host#7930)."""

    def chunks() -> Iterator[bytes]:
        yield b"pay"
        yield b"load"

    posted = httpx.post(basic.url + "/api/items/42", content=chunks())
    assert posted.request.headers["transfer-encoding"] == "chunked"
    assert posted.json()["body"] == ""


@pytest.mark.parametrize(
    "host",
    [
        b"127.0.0.1:7071/api/items/1?x=",  # a path: the URL the function sees would be another route's
        b"127.0.0.1:7071?x",
        b"127.0.0.1:7071#x",
        b"127.0.0.1 :7071",
        b"user@127.0.0.1",
        b":7071",
        b"127.0.0.1:",
        b"127.0.0.1:70a1",
        b"[::1",
        b"[zz::1]",
        b"h\xc3\xa9te",
    ],
)
def test_a_malformed_host_header_is_refused_before_any_function(basic: RunningHost, host: bytes) -> None:
    """Kestrel answers 400 (InvalidHostHeader) to a Host that is not host[:port] (HttpUtilities
    .IsHostHeaderValid): the request never reaches routing, keys or a function."""
    request = b"GET /api/hello/world HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    status, reply = raw_http(basic.url, request)
    assert status == 400, reply
    assert b"hello world" not in reply


def test_missing_or_repeated_host_headers_are_refused(basic: RunningHost) -> None:
    one = b"Host: 127.0.0.1\r\n"
    for headers, status in (
        (b"", 400),  # HTTP/1.1 needs a Host
        (one + one, 400),  # Kestrel: MultipleHostHeaders
        (one, 200),
    ):
        request = b"GET /api/hello/world HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n"
        assert raw_http(basic.url, request)[0] == status
    # HTTP/1.0 may leave the Host out (the host then closes the connection itself).
    assert raw_http(basic.url, b"GET /api/hello/world HTTP/1.0\r\n\r\n")[0] == 200


def test_the_url_a_function_gets_is_scheme_host_path_and_query(basic: RunningHost) -> None:
    """As the host's ToRpcHttp builds it: `{scheme}://{request.Host}{request.Path}{request.QueryString}`."""
    request = b"GET /api/items/42/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n"
    status, reply = raw_http(basic.url, request)
    assert status == 200, reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["url"] == "http://example.com:8080/api/items/42/p?q=1"


MAX_BODY = 104_857_600  # the host's request body limit (100 MB)


def head_only(url: str, request_line: bytes, length: int, key: str | None = None) -> int:
    """Send a request's headers announcing `length` body bytes and none of the body: the status the host
    answers without it (a host that waited for the body would never answer: the socket times out)."""
    headers = b"Host: 127.0.0.1\r\nContent-Length: %d\r\naeg-event-type: Notification\r\n" % length
    if key is not None:
        headers += b"x-functions-key: " + key.encode() + b"\r\n"
    return raw_http(url, request_line + b"\r\n" + headers + b"Connection: close\r\n\r\n")[0]


def test_keys_are_checked_before_a_body_is_read(basic: RunningHost) -> None:
    """Issue 14 (11): the webhook and the admin API refuse a caller without the key at once, as the host's
    authentication runs before any endpoint reads the body; nothing is buffered for them."""
    webhook = WEBHOOK.encode() + b"?functionName=on_event"
    assert head_only(basic.url, b"POST " + webhook + b" HTTP/1.1", 50_000_000) == 401
    assert head_only(basic.url, b"POST /admin/functions/yearly HTTP/1.1", 50_000_000) == 401
    assert head_only(basic.url, b"POST /api/secret HTTP/1.1", 50_000_000) == 401


def test_bodies_over_100_mb_are_413(basic: RunningHost) -> None:
    """The host takes at most 100 MB of request body (FN-HTTP limits; Kestrel's MaxRequestBodySize): a
    declared length over it is refused before a byte is read, on every route."""
    webhook = WEBHOOK.encode() + b"?functionName=on_event"
    over = MAX_BODY + 1
    assert head_only(basic.url, b"POST " + webhook + b" HTTP/1.1", over, basic.webhook_key) == 413
    assert head_only(basic.url, b"POST /admin/functions/yearly HTTP/1.1", over, basic.master_key) == 413
    assert head_only(basic.url, b"POST /api/items/1 HTTP/1.1", over) == 413


def test_a_chunked_body_over_100_mb_is_413(basic: RunningHost) -> None:
    piece = b"x" * (1 << 20)

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // len(piece) + 1):
            yield piece

    answer = httpx.post(basic.url + "/api/items/1", content=chunks(), timeout=120)
    assert answer.status_code == 413


def test_routes_are_tried_in_function_name_order(basic: RunningHost) -> None:
    """azure-functions-host#9876: not ASP.NET's precedence. "order_a_any" (order/{*rest}) sorts before
    "order_b_literal" (order/literal), so it answers order/literal too."""
    assert httpx.get(basic.url + "/api/order/literal").text == "any"
    assert httpx.get(basic.url + "/api/order/else").text == "any"


def test_a_str_http_parameter_fails_as_in_the_worker(basic: RunningHost) -> None:
    """`req: str` takes the worker's generic binding, which cannot decode an HTTP request: a 500."""
    assert httpx.post(basic.url + "/api/as-text", content=b"text").status_code == 500
    assert 'unexpected type of data received for the "generic" binding' in basic.log()


def test_http_response_status_headers_and_context(basic: RunningHost) -> None:
    created = httpx.post(basic.url + "/api/created")
    assert created.status_code == 201
    assert created.headers["x-custom"] == "yes"
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    assert body["function"] == "created"
    assert uuid.UUID(body["invocation"])


def test_auth_levels_need_keys(basic: RunningHost) -> None:
    with httpx.Client(base_url=basic.url) as client:
        assert client.get("/api/secret").status_code == 401
        assert client.get("/api/secret", params={"code": "wrong"}).status_code == 401
        by_header = client.get("/api/secret", headers={"x-functions-key": basic.function_key})
        assert (by_header.status_code, by_header.text) == (200, "secret")
        assert client.get("/api/secret", params={"code": basic.function_key}).status_code == 200
        assert client.get("/api/secret", params={"code": basic.master_key}).status_code == 200
        # The app's http_auth_level (FUNCTION) applies where the route sets none.
        assert client.get("/api/default-level").status_code == 401
        assert client.get("/api/default-level", params={"code": basic.function_key}).status_code == 200
        # ADMIN takes the master key only.
        assert client.get("/api/for-admins", params={"code": basic.function_key}).status_code == 401
        assert client.get("/api/for-admins", params={"code": basic.master_key}).text == "admin"


def test_keys_are_generated_private_and_never_printed(basic: RunningHost) -> None:
    keys_file = basic.state_dir / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert len({basic.master_key, basic.function_key, basic.webhook_key}) == 3
    log = basic.log()
    # The banner says where the keys are, and names the webhook with its key redacted (issue 14).
    assert f"Keys (x-functions-key header or the code parameter): {keys_file}" in log
    assert f"{WEBHOOK}?functionName=on_event&code=[redacted]" in log
    for key in (basic.function_key, basic.webhook_key, basic.master_key):
        assert key not in log


def test_failing_http_function_answers_500(basic: RunningHost) -> None:
    assert httpx.get(basic.url + "/api/boom").status_code == 500
    assert "RuntimeError: boom" in basic.log()


def test_sync_function_runs_off_the_loop(basic: RunningHost) -> None:
    """A sync function blocks until another request opens its gate: served only if it runs in a thread.
    (Timing a quick request beside a slow one proved nothing on a busy machine and failed there.)"""
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=basic.url, timeout=60) as client:
        waiting = pool.submit(client.get, "/api/gate/wait", params={"seconds": "20"})
        basic.wait_log("Executing 'Functions.wait_at_gate'")
        assert client.get("/api/gate/open").text == "open"
        assert waiting.result().text == "opened"


# ---------------------------------------------------------------- Event Grid

VALIDATION_CODE = "a3c0f1e2-0000-4b5d-9e8f-validation01"
VALIDATION = [
    {
        "id": "validation-event-1",
        "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/systemTopics/t",
        "subject": "",
        "data": {
            "validationCode": VALIDATION_CODE,
            "validationUrl": "https://x/validate",
        },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-03-01T10:00:00.1234567Z",
        "metadataVersion": "1",
        "dataVersion": "1",
    }
]


def pushed(event_id: str, tag: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r",
        "subject": f"hello-world:{tag}",
        "eventType": "Microsoft.ContainerRegistry.ImagePushed",
        "eventTime": "2026-03-01T12:30:15.7654321Z",
        "data": {
            "action": "push",
            "target": {"repository": "hello-world", "tag": tag, "digest": "sha256:0123abcd"},
        },
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }


def cloud_event(event_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r",
        "subject": "hello-world:v1",
        "type": "Microsoft.ContainerRegistry.ImagePushed",
        "time": "2026-03-01T12:30:15.7654321Z",
        "data": {"action": "push", "target": {"repository": "hello-world", "tag": "v1"}},
    }


def webhook(host: RunningHost, function: str, key: str | None = None, **query: str) -> str:
    code = host.webhook_key if key is None else key
    params = {"functionName": function, **({"code": code} if code else {}), **query}
    return str(httpx.URL(host.url + WEBHOOK, params=params))


def test_webhook_requires_the_system_key(basic: RunningHost) -> None:
    headers = {"aeg-event-type": "SubscriptionValidation"}
    assert httpx.post(webhook(basic, "on_event", key=""), json=VALIDATION, headers=headers).status_code == 401
    no_function_key = httpx.post(
        webhook(basic, "on_event", key=basic.function_key), json=VALIDATION, headers=headers
    )
    assert no_function_key.status_code == 401
    assert httpx.post(
        webhook(basic, "on_event", key=basic.master_key), json=VALIDATION, headers=headers
    ).is_success


def test_subscription_validation_handshake(basic: RunningHost) -> None:
    answer = httpx.post(
        webhook(basic, "on_event"), json=VALIDATION, headers={"aeg-event-type": "SubscriptionValidation"}
    )
    assert answer.status_code == 200
    assert answer.json() == {"validationResponse": VALIDATION_CODE}
    # The host answers the handshake itself: the function never sees it.
    assert all(r["id"] != VALIDATION[0]["id"] for r in basic.records("event"))


def test_notification_delivers_each_event_as_eventgridevent(basic: RunningHost) -> None:
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    answer = httpx.post(
        webhook(basic, "on_event"),
        json=[pushed(ids[0], "v1"), pushed(ids[1], "v2")],
        headers={"aeg-event-type": "Notification"},
    )
    assert answer.status_code == 202
    records = {r["id"]: r for r in basic.wait_records("event", 2, lambda r: r["id"] in ids)}
    first = records[ids[0]]
    assert first["event_type"] == "Microsoft.ContainerRegistry.ImagePushed"
    assert first["subject"] == "hello-world:v1"
    assert first["topic"].endswith("/registries/r")
    assert first["data_version"] == "1.0"
    assert first["event_time"] == "2026-03-01T12:30:15.765432+00:00"
    assert first["data"]["target"] == {"repository": "hello-world", "tag": "v1", "digest": "sha256:0123abcd"}
    assert records[ids[1]]["subject"] == "hello-world:v2"


def test_cloudevents_single_batch_and_abuse_protection(basic: RunningHost) -> None:
    options = httpx.options(
        webhook(basic, "on_event"), headers={"WebHook-Request-Origin": "eventgrid.azure.net"}
    )
    assert options.status_code == 200
    assert options.headers["webhook-allowed-origin"] == "eventgrid.azure.net"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    headers = {"aeg-event-type": "Notification", "content-type": "application/cloudevents+json"}
    single = httpx.post(webhook(basic, "on_event"), content=json.dumps(cloud_event(ids[0])), headers=headers)
    assert single.status_code == 202
    headers["content-type"] = "application/cloudevents-batch+json"
    batch = json.dumps([cloud_event(ids[1]), cloud_event(ids[2])])
    assert httpx.post(webhook(basic, "on_event"), content=batch, headers=headers).status_code == 202
    records = basic.wait_records("cloudevent", 3, lambda r: r["id"] in ids)
    assert {r["id"] for r in records} == set(ids)
    assert records[0]["type"] == "Microsoft.ContainerRegistry.ImagePushed"
    assert records[0]["source"].endswith("/registries/r")
    assert records[0]["subject"] == "hello-world:v1"
    assert records[0]["data"]["target"]["tag"] == "v1"


def test_webhook_errors(basic: RunningHost) -> None:
    notification = {"aeg-event-type": "Notification"}
    failed = httpx.post(webhook(basic, "refuse_event"), json=[pushed("e-1", "v1")], headers=notification)
    assert failed.status_code == 500  # so that Event Grid retries
    assert "refusing e-1" in failed.text
    unknown = httpx.post(webhook(basic, "no_such_function"), json=[pushed("e-2", "v1")], headers=notification)
    assert (unknown.status_code, unknown.text) == (404, "cannot find function: 'no_such_function'")
    not_json = httpx.post(webhook(basic, "on_event"), content=b"{not json", headers=notification)
    assert not_json.status_code == 400
    not_events = httpx.post(webhook(basic, "on_event"), json=[1, 2], headers=notification)
    assert not_events.status_code == 400
    no_type = httpx.post(webhook(basic, "on_event"), json=[pushed("e-3", "v1")])
    assert no_type.status_code == 400
    assert "aeg-event-type" in no_type.text


# ---------------------------------------------------------------- timers


def test_timer_fires_every_second(basic: RunningHost) -> None:
    ticks = basic.wait_records("tick", 3, timeout=10)
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(ticks)]
    assert all(0.5 < gap < 2.5 for gap in gaps[:2]), gaps
    assert not any(tick["past_due"] for tick in ticks)


def test_run_on_startup_and_past_due(basic: RunningHost) -> None:
    startup = basic.wait_records("startup", 1)
    assert startup[0]["past_due"] is False
    yearly = basic.wait_records("yearly", 1)
    assert yearly[0]["past_due"] is True
    # The status as it stood (TimerListener): Next is the missed occurrence, Last never set
    # (DateTime.MinValue), as the host serializes TimerInfo for TimerRequestConverter.
    assert yearly[0]["status"] == {
        "Last": "0001-01-01T00:00:00+00:00",
        "Next": "2020-01-01T00:00:00+00:00",
        "LastUpdated": "0001-01-01T00:00:00+00:00",
    }
    saved = json.loads((basic.state_dir / "timers" / "yearly.json").read_text())
    assert saved["Next"].startswith(f"{time.gmtime().tm_year + 1}-01-01T00:00:00")
    assert saved["Last"] is not None


def test_admin_api_runs_a_timer_now(basic: RunningHost) -> None:
    before = len(basic.wait_records("startup", 1))
    url = basic.url + "/admin/functions/at_startup"
    assert httpx.post(url, json={"input": ""}, params={"code": basic.function_key}).status_code == 401
    assert httpx.post(url, json={"input": ""}, params={"code": basic.master_key}).status_code == 202
    basic.wait_records("startup", before + 1)
    status = httpx.get(basic.url + "/admin/host/status", headers={"x-functions-key": basic.master_key})
    assert status.json()["state"] == "Running"


def test_sigterm_lets_running_invocations_finish(tmp_path: Path) -> None:
    host = launch(tmp_path, "tests.hostapps.basic_app", {"TICK_SCHEDULE": "0 0 0 1 1 *"})
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, host.url + "/api/slow", params={"seconds": "1.5"}, timeout=10)
        host.wait_log("Executing 'Functions.slow'")
        host.process.send_signal(signal.SIGTERM)
        answer = slow.result()
    assert (answer.status_code, answer.text) == (200, "slept")
    assert host.process.wait(timeout=30) == 0
    assert "Host stopped" in host.log()


# ---------------------------------------------------------------- ASGI (Starlette through AsgiMiddleware)


@pytest.fixture(scope="module")
def asgi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    host = launch(tmp_path_factory.mktemp("asgi-host"), "tests.hostapps.asgi_app", {})
    yield host
    assert stop(host) == 0, host.log()[-3000:]


def test_asgi_app_is_served_under_the_prefix(asgi: RunningHost) -> None:
    with httpx.Client(base_url=asgi.url, headers={"x-functions-key": asgi.function_key}) as client:
        item = client.get("/api/items/7", params={"x": "1"})
        assert item.status_code == 200
        # The worker invokes the function, which hands the request to AsgiMiddleware: the app sees the
        # full path (route prefix included) and the invocation's function name.
        assert item.json() == {
            "path": "/api/items/7",
            "id": "7",
            "query": {"x": "1"},
            "function": "http_app_func",
        }
        echoed = client.post("/api/echo", content=b"\x00binary\xff")
        assert (echoed.status_code, echoed.content) == (201, b"\x00binary\xff")
        assert client.get("/api/not-a-route").status_code == 404  # Starlette's own 404
        assert client.get("/elsewhere").status_code == 404  # outside the prefix: the host's 404
    assert httpx.get(asgi.url + "/api/items/7").status_code == 401  # the function's FUNCTION auth level
    assert "Executed 'Functions.http_app_func' (Succeeded" in asgi.log()


def test_asgi_responses_and_requests_are_buffered(asgi: RunningHost) -> None:
    """AsgiMiddleware collects the whole response before the function returns: a streaming response
    arrives in one piece with its length; and a chunked request body never reaches the app."""
    headers = {"x-functions-key": asgi.function_key}
    streamed = httpx.get(asgi.url + "/api/stream", headers=headers)
    assert streamed.text == "part 0\npart 1\npart 2\n"
    assert "transfer-encoding" not in streamed.headers
    assert streamed.headers["content-length"] == str(len(streamed.content))

    def chunks() -> Iterator[bytes]:
        yield b"not "
        yield b"delivered"

    echoed = httpx.post(asgi.url + "/api/echo", content=chunks(), headers=headers)
    assert (echoed.status_code, echoed.content) == (201, b"")


def test_asgi_function_app_route_stops_the_host(tmp_path: Path) -> None:
    """func.AsgiFunctionApp registers "/{*route}": the host creates "api//{*route}", ASP.NET refuses it
    and the host does not start (python-worker#1310, static-web-apps#1654), with the host's message."""
    result = start_refused("tests.hostapps.asgi_slash_app", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "A host error has occurred during startup operation '" in result.stderr
    assert (
        "Microsoft.AspNetCore.Routing: An error occurred while creating the route with name 'http_app_func' "
        "and template 'api//{*route}'. Microsoft.AspNetCore.Routing: The route template separator character "
        "'/' cannot appear consecutively. It must be separated by either a parameter or a literal value. "
        "(Parameter 'routeTemplate')." in result.stderr
    )
    assert "Host started" not in result.stdout


# ---------------------------------------------------------------- queues (Azurite)


@dataclass
class Queues:
    connection: str
    work: str
    done: str
    received: list[str] = field(default_factory=list)

    def client(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection, name)

    def send(self, payload: dict[str, Any]) -> None:
        with self.client(self.work) as client:
            client.send_message(base64.b64encode(json.dumps(payload).encode()).decode())

    def wait_done(self, where: Callable[[str], bool], timeout: float = 15) -> str:
        """Messages the output bindings wrote (base64, as the host writes them), decoded."""
        deadline = time.monotonic() + timeout
        with self.client(self.done) as client:
            while time.monotonic() < deadline:
                # The output binding creates the queue with its first message, after the function has
                # returned (so after its record): until then the queue is missing, which means "not yet".
                with contextlib.suppress(ResourceNotFoundError):
                    for message in client.receive_messages(messages_per_page=32, max_messages=32):
                        self.received.append(base64.b64decode(message.content).decode())
                        client.delete_message(message)
                for text in self.received:
                    if where(text):
                        return text
                time.sleep(0.1)
        raise AssertionError(f"nothing matching on {self.done} after {timeout}s: {self.received}")

    def poisoned(self) -> list[str]:
        """The poison queue's messages, as stored (still base64)."""
        with self.client(f"{self.work}-poison") as client:
            try:
                return [message.content for message in client.peek_messages(max_messages=32)]
            except ResourceNotFoundError:
                return []

    def wait_poisoned(self, content: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if content in self.poisoned():
                return
            time.sleep(0.1)
        raise AssertionError(f"{content!r} is not in {self.work}-poison after {timeout}s: {self.poisoned()}")


@pytest.fixture(scope="module")
def queues(
    devstack: Devstack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningHost, Queues]]:
    names = Queues(str(devstack.endpoints["storageConnectionString"]), f"work-{uuid.uuid4().hex[:8]}", "")
    names.done = f"done-{uuid.uuid4().hex[:8]}"
    with names.client(names.work) as client:
        client.create_queue()
    host = launch(
        tmp_path_factory.mktemp("queue-host"),
        "tests.hostapps.queue_app",
        {"AzureWebJobsStorage": names.connection, "WORK_QUEUE": names.work, "DONE_QUEUE": names.done},
    )
    yield host, names
    assert stop(host) == 0, host.log()[-3000:]


def test_queue_trigger_gets_the_decoded_message(queues: tuple[RunningHost, Queues]) -> None:
    host, q = queues
    q.send({"n": 1})
    (seen,) = host.wait_records("work", 1, lambda r: r["n"] == 1)
    assert seen["dequeue_count"] == 1
    assert seen["id"]
    assert seen["pop_receipt"] is True
    assert seen["inserted"] < seen["expires"]
    done = json.loads(q.wait_done(lambda text: '"done": 1' in text))
    assert done == {"done": 1, "dequeue_count": 1}


def test_queue_message_is_what_the_converter_makes_of_the_host_metadata(
    queues: tuple[RunningHost, Queues],
) -> None:
    """QueueMessageInConverter over the host's trigger metadata: a JSON message's top-level properties
    are binding data too (Utility.ApplyBindingData), so a property named Id is the message's id."""
    host, q = queues
    q.send({"n": 6, "Id": "named-by-the-body"})
    (seen,) = host.wait_records("work", 1, lambda r: r["n"] == 6)
    assert seen["id"] == "named-by-the-body"
    assert seen["dequeue_count"] == 1
    assert seen["inserted"] < seen["next_visible"] < seen["expires"]
    assert seen["inserted"].endswith("+00:00")


def test_failed_message_is_retried_with_a_higher_dequeue_count(queues: tuple[RunningHost, Queues]) -> None:
    host, q = queues
    q.send({"n": 2, "fail_times": 2})
    attempts = host.wait_records("work", 3, lambda r: r["n"] == 2)
    assert [attempt["dequeue_count"] for attempt in attempts] == [1, 2, 3]
    assert len({attempt["id"] for attempt in attempts}) == 1
    assert json.loads(q.wait_done(lambda text: '"done": 2' in text)) == {"done": 2, "dequeue_count": 3}


def test_message_goes_to_poison_after_max_dequeue_count(queues: tuple[RunningHost, Queues]) -> None:
    host, q = queues
    payload = {"n": 3, "fail_times": 99}
    q.send(payload)
    host.wait_records("work", 3, lambda r: r["n"] == 3)
    # Moved as it was: still base64, as the extension copies it.
    q.wait_poisoned(base64.b64encode(json.dumps(payload).encode()).decode())
    time.sleep(1)  # a fourth attempt would show by now (host.json polls at least every 0.5 s)
    assert [r["dequeue_count"] for r in host.records("work") if r["n"] == 3] == [1, 2, 3]
    assert (
        f"Message has reached MaxDequeueCount of 3. Moving message to queue '{q.work}-poison'." in host.log()
    )


def test_message_that_is_not_base64_goes_to_poison(queues: tuple[RunningHost, Queues]) -> None:
    host, q = queues
    with q.client(q.work) as client:
        client.send_message("this is {not base64")
    q.wait_poisoned("this is {not base64")
    # The extension logs before it moves the message: once it is in the poison queue, the lines are there.
    log = host.log()
    decoding = log.find("Message decoding has failed! Check MessageEncoding settings. MessageId=")
    moving = log.find(f"Moving message to queue '{q.work}-poison'.", decoding)
    assert 0 <= decoding < moving, log[-3000:]


def test_http_function_with_queue_output(queues: tuple[RunningHost, Queues]) -> None:
    host, q = queues
    answer = httpx.post(host.url + "/api/enqueue", content=b"from http")
    assert answer.status_code == 202
    assert q.wait_done(lambda text: text == "from http") == "from http"


# ---------------------------------------------------------------- what the host cannot serve


def test_unsupported_bindings_fail_startup_naming_them(tmp_path: Path) -> None:
    result = start_refused("tests.hostapps.unsupported_app", tmp_path)
    assert result.returncode == 1
    assert "function 'on_upload'" in result.stderr
    assert "'blobTrigger'" in result.stderr
    assert "function 'with_table', binding 'row' (table)" in result.stderr


def test_unsupported_bindings_fail_in_process_too(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="on_upload"):
        Host("tests.hostapps.unsupported_app", state_dir=tmp_path, environ={})


def test_host_runs_in_process_and_can_drop_the_webhook_key(tmp_path: Path) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="ping/{who}")
    async def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"pong {req.route_params['who']}", headers={"Content-Length": "999"})

    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        pass

    host = Host(app, port=free_port(), state_dir=tmp_path, environ={}, require_webhook_key=False)
    host.start()
    try:
        assert httpx.get(host.url + "/api/ping/me").text == "pong me"
        assert host.webhook_url("on_event") == f"{host.url}{WEBHOOK}?functionName=on_event"
        handshake = httpx.post(
            host.webhook_url("on_event"),
            json=VALIDATION,
            headers={"aeg-event-type": "SubscriptionValidation"},
        )
        assert handshake.json() == {"validationResponse": VALIDATION_CODE}
    finally:
        host.stop()
    assert (tmp_path / "keys.json").exists()
