"""The one table of Azure's answers (shared/errors.py), and the real SDK clients of Table storage, Queue
storage and Event Grid going through it: a local HTTP endpoint answers every request with one status
and the service's own error body, and the store, queue and publisher raise what the table says.

429, 503 and no answer are worth a retry; 403 is AccessDenied naming the role the app lacks (never
InvalidInput, which a trigger would acknowledge); 412 on an ETag write is a Conflict.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.data.tables import TableClient
from azure.eventgrid import EventGridPublisherClient
from azure.storage.queue import QueueClient

from shared.errors import (
    EVENTS_ROLE,
    QUEUES_ROLE,
    TABLES_ROLE,
    AccessDenied,
    Conflict,
    DockmasterError,
    InvalidInput,
    NotFound,
    Retryable,
    from_status,
)
from shared.publisher import Publisher
from shared.verdicts import Verdict, VerdictStore, verdict_event
from shared.verification import RunQueue

ACCOUNT_KEY = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
NO_RETRY = {"retry_total": 0}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (None, Retryable),
        (408, Retryable),
        (429, Retryable),
        (500, Retryable),
        (503, Retryable),
        (401, AccessDenied),
        (403, AccessDenied),
        (404, NotFound),
        (409, Conflict),
        (412, Conflict),
        (400, InvalidInput),
        (413, InvalidInput),
    ],
)
def test_the_table(status: int | None, error: type[DockmasterError]) -> None:
    found = from_status(status, "doing it", service="the service", role="the role", code="Code")
    assert type(found) is error
    assert found.message.startswith("doing it: ")
    assert ("the role" in found.message) == (error is AccessDenied)


class Answering(http.server.ThreadingHTTPServer):
    """Answers every request with `status` and `body`; records what was asked."""

    def __init__(self) -> None:
        self.status = 503
        self.body: dict[str, Any] = {}
        self.xml = False  # Queue storage answers errors in XML, Table storage in JSON
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.requests.append(f"{self.command} {self.path}")
                code = str(server.body["error"]["code"])
                if server.xml:
                    payload = (
                        '<?xml version="1.0" encoding="utf-8"?>'
                        f"<Error><Code>{code}</Code><Message>{code} from the test</Message></Error>"
                    ).encode()
                else:
                    payload = json.dumps(server.body).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/xml" if server.xml else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-ms-error-code", code)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/devstoreaccount1"

    def answer(self, status: int, code: str) -> None:
        self.status = status
        message = {"lang": "en-US", "value": f"{code} from the test"}
        self.body = {"odata.error": {"code": code, "message": message}, "error": {"code": code}}


@pytest.fixture
def endpoint() -> Iterator[Answering]:
    server = Answering()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def connection_string(endpoint: Answering) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint={endpoint.url};QueueEndpoint={endpoint.url};"
    )


def a_verdict() -> Verdict:
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    return Verdict("reg", "repo", "sha256:" + "0" * 64, "p1", "v1", created_at=now, updated_at=now)


def store(endpoint: Answering) -> VerdictStore:
    table = TableClient.from_connection_string(connection_string(endpoint), "verdicts", **NO_RETRY)
    verdicts = VerdictStore(table)
    verdicts._ready = True  # the create-table call is its own case below
    return verdicts


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (429, "TooManyRequests", Retryable),
        (503, "ServerBusy", Retryable),
        (403, "AuthorizationPermissionMismatch", AccessDenied),
        (400, "InvalidInput", InvalidInput),
    ],
)
def test_the_verdict_table(endpoint: Answering, status: int, code: str, error: type[DockmasterError]) -> None:
    endpoint.answer(status, code)
    verdicts = store(endpoint)
    with pytest.raises(error) as insert:
        verdicts.insert(a_verdict())
    with pytest.raises(error):
        verdicts.get("p", "r")
    with pytest.raises(error):
        verdicts.history("reg", "repo")
    if error is AccessDenied:
        assert TABLES_ROLE in insert.value.message
    assert endpoint.requests, "the SDK client sent its requests"


def test_a_changed_verdict_is_a_conflict(endpoint: Answering) -> None:
    endpoint.answer(412, "UpdateConditionNotSatisfied")
    verdict = a_verdict()
    verdict.etag = "W/\"datetime'2026-12-04T00%3A00%3A00Z'\""
    with pytest.raises(Conflict):
        store(endpoint).replace(verdict)


@pytest.mark.parametrize(
    ("status", "error"), [(403, AccessDenied), (503, Retryable)], ids=["refused", "unavailable"]
)
def test_creating_the_table(endpoint: Answering, status: int, error: type[DockmasterError]) -> None:
    endpoint.answer(status, "AuthorizationFailure" if status == 403 else "ServerBusy")
    table = TableClient.from_connection_string(connection_string(endpoint), "verdicts", **NO_RETRY)
    with pytest.raises(error):
        VerdictStore(table).insert(a_verdict())


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (503, "ServerBusy", Retryable),
        (403, "AuthorizationPermissionMismatch", AccessDenied),
    ],
)
def test_the_runs_queue(endpoint: Answering, status: int, code: str, error: type[DockmasterError]) -> None:
    endpoint.answer(status, code)
    endpoint.xml = True
    queue = QueueClient.from_connection_string(connection_string(endpoint), "runs", retry_total=0)
    with pytest.raises(error) as sent:
        RunQueue(queue).send({"runId": "dm1"}, 1)
    if error is AccessDenied:
        assert QUEUES_ROLE in sent.value.message


@pytest.mark.parametrize(
    ("status", "error"), [(429, Retryable), (403, AccessDenied)], ids=["throttled", "refused"]
)
def test_publishing_a_verdict(endpoint: Answering, status: int, error: type[DockmasterError]) -> None:
    endpoint.answer(status, "Unauthorized" if status == 403 else "TooManyRequests")
    client = EventGridPublisherClient(
        f"http://127.0.0.1:{endpoint.server_address[1]}/api/events", AzureKeyCredential("key"), retry_total=0
    )
    verdict = a_verdict()
    verdict.status = "passed"
    event = verdict_event(verdict, "/subscriptions/s/resourceGroups/g/providers/x/registries/reg")
    with pytest.raises(error) as published:
        Publisher(client).publish(event)
    if error is AccessDenied:
        assert EVENTS_ROLE in published.value.message
