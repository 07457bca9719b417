"""Path traversal and overlong names in API paths, bodies and events.

Threat: a name that climbs out of its place (`..`, `%2e%2e`, `%2F`, an absolute path, a backslash, a
NUL) turns a call about one repository into a call about another registry path, ARM resource or
storage row, or an overlong name trips something that was not built for it. Guarantee: every such
name is refused with 400 (or 404 when no route matches) in the API's error shape, never a 500, before
any request leaves for the emulator (ARM, login servers); events naming such repositories, tags,
digests or topics are acknowledged and refused at parsing.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from shared.api.auth import OPERATE, PRINCIPAL_HEADER, READ
from tests.support.api import principal
from tests.support.faults import requests_seen
from tests.support.hostile import Target, assert_refused, error_shape
from tests.support.raw_http import raw_request

SHA = "sha256:" + "ab" * 32


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def gets(registry: str) -> list[str]:
    base = f"/api/registries/{registry}"
    return [
        "/api/registries/%2e%2e/repositories",
        "/api/registries/..%2F..%2Fsubscriptions/repositories",
        "/api/registries/%2Fetc%2Fpasswd/repositories",
        "/api/registries/" + "a" * 65 + "/repositories",
        f"{base}/repositories/../../../etc/passwd/tags",
        f"{base}/repositories/%2e%2e/%2e%2e/x/tags",
        f"{base}/repositories/..%2F..%2Fx/tags",
        f"{base}/repositories//etc/passwd/tags",
        f"{base}/repositories/%2Fetc%2Fpasswd/verdicts",
        f"{base}/repositories/a%5C..%5Cb/tags",
        f"{base}/repositories/a%00b/tags",
        f"{base}/repositories/a/./b/tags",
        f"{base}/repositories/{'a' * 257}/tags",
        f"{base}/repositories/{'a/' * 2000}b/tags",
        f"{base}/repositories?last=..%2Fx",
        f"{base}/repositories/a/b/tags?last=..%2F..%2Fx",
        f"{base}/repositories/a/b/tags?last={'t' * 129}",
        f"{base}/repositories/a/b/verdicts?digest=sha256:..%2F..%2Fx",
        f"{base}/repositories/a/b/verdicts?digest={SHA}x",
        f"{base}/runs/%2e%2e",
        f"{base}/runs/..%2F..%2F..%2Fsubscriptions",
        f"{base}/runs/%2Fetc%2Fpasswd/log",
        f"{base}/runs/..%5Cx/log",
        f"{base}/runs/{'r' * 65}",
        "/api/verifications/..%2F..%2Fx",
        f"/api/verifications/{b64(f'{registry}|../../x|{SHA}|hostile.1')}",
        f"/api/verifications/{b64(f'../{registry}|a/b|{SHA}|hostile.1')}",
        f"/api/verifications/{b64(f'{registry}|a/b|sha256:../../x|hostile.1')}",
        "/api/verifications/" + "A" * 1025,
        "/api/cleanup/plans/..%2F..%2Fx",
        "/api/cleanup/runs/%2e%2e",
        "/api/cleanup/runs/" + "r" * 65,
    ]


def posts(target: Target) -> list[tuple[str, dict[str, str], bytes]]:
    api = target.api
    runs = f"/api/registries/{api.registry}/runs"
    builds = f"/api/registries/{api.registry}/builds"
    as_json = {"content-type": "application/json"}
    gzip = {"content-type": "application/gzip"}
    requests: list[tuple[str, dict[str, str], bytes]] = []
    for name in ("%2e%2e", "..", "..%2F..%2Fsubscriptions%2Fx", "%2Fsubscriptions", "g" * 91):
        requests.append((f"/api/resource-groups/{name}/extend", as_json, b'{"hours": 1}'))
    for fields in (
        {"repository": "../../x", "tag": "v1"},
        {"repository": "/abs/x", "tag": "v1"},
        {"repository": "a/../../b", "digest": SHA},
        {"repository": "a/b", "tag": "../v1"},
        {"repository": "a/b", "digest": "sha256:../../../x"},
        {"repository": "a/b", "digest": SHA + "/../x"},
        {"repository": "a" * 257, "tag": "v1"},
        {"repository": "a/b", "tag": "t" * 129},
    ):
        body = {"registry": api.registry, **fields}
        requests.append(("/api/verifications", as_json, json.dumps(body).encode()))
    requests.append(
        ("/api/verifications", as_json, json.dumps({"registry": "../x", "repository": "a/b"}).encode())
    )
    for image in (
        "../../x:v1",
        f"{api.login_server}/../other:v1",
        "hostile/echo@sha256:../../x",
        "/hostile/echo:v1",
        "hostile\\echo:v1",
        f"{'a/' * 300}b:v1",
    ):
        requests.append((runs, as_json, json.dumps({"image": image}).encode()))
    for query in (
        "image=hostile/x:1&dockerfile=../Dockerfile",
        "image=hostile/x:1&dockerfile=%2Fetc%2Fpasswd",
        "image=hostile/x:1&dockerfile=a/../../b",
        "image=hostile/x:1&dockerfile=a%5C..%5Cb",
        "image=..%2F..%2Fx:1",
        "image=hostile/x:..%2F1",
    ):
        requests.append((f"{builds}?{query}", gzip, b"\x1f\x8b"))
    return requests


def test_traversal_and_overlong_names_in_the_api_are_refused_before_any_call(
    target: Target, admin: httpx.Client
) -> None:
    headers = {"x-functions-key": target.api.key, PRINCIPAL_HEADER: principal(READ, OPERATE)}
    before = requests_seen(admin)
    answers: list[tuple[str, int, str]] = []
    for path in gets(target.api.registry):
        status, body = raw_request(target.api.url, "GET", path, headers)
        answers.append((path, status, error_shape(status, body)["code"]))
    for path, extra, content in posts(target):
        status, body = raw_request(target.api.url, "POST", path, {**headers, **extra}, content)
        answers.append((f"{path} {content[:80]!r}", status, error_shape(status, body)["code"]))
    allowed = {(400, "InvalidInput"), (404, "NotFound")}
    assert [a for a in answers if a[1:] not in allowed] == []
    after = requests_seen(admin)
    assert (after["arm"], after["dataplane"]) == (before["arm"], before["dataplane"]), "a call left the app"
    assert target.health() == 200


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("repository", ["../../x", "/abs/x", "a/../../b", "a/./b", "a//b", "a%2F..%2Fb", "..", "a\\..\\b"]),
        ("tag", ["../x", "..", "a/b", "%2e%2e", "v1/../../x"]),
        ("digest", ["sha256:../../../x", f"{SHA}/../x", "sha256:" + "a" * 65, "../sha256:x"]),
    ],
)
def test_traversal_in_event_names_is_refused(
    target: Target, admin: httpx.Client, field: str, values: list[str]
) -> None:
    events = []
    for value in values:
        event = target.pushed("hostile/app", "v1")
        event["data"]["target"][field] = value
        events.append(event)
    assert_refused(target, admin, events)


def test_topics_that_climb_to_another_registry_are_refused(target: Target, admin: httpx.Client) -> None:
    parent = target.registry_id.rsplit("/", 1)[0]
    topics = [
        f"{target.registry_id}/../evilregistry",
        f"{parent}/evilregistry/../{target.registry_id.rsplit('/', 1)[1]}",
        f"{target.registry_id}/",
        f"{target.registry_id}%2F..%2Fother",
        "../../" + target.registry_id,
        target.registry_id + "\n",
    ]
    events = []
    for topic in topics:
        event = target.pushed("hostile/app", "v1")
        event["topic"] = topic
        events.append(event)
    log = assert_refused(target, admin, events)
    assert log.count("are not for a configured registry") == len(topics)
