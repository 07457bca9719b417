"""Oversize and deeply nested JSON, to the API and to the Event Grid webhook.

Threat: a body too big to hold, or JSON nested deep enough to exhaust the parser's recursion, takes the
host down or turns into a 500 (and, at the webhook, into endless Event Grid redelivery). Guarantee:


acknowledged and refused without its content being echoed into the log; the host keeps answering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from shared.api.auth import OPERATE, READ
from shared.api.limits import MAX_JSON_BYTES
from tests.support.hostile import Target, assert_refused, error_shape

DEEP = 100_000


def nested(depth: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + closing * depth).encode()


def json_bodies(target: Target) -> dict[str, bytes]:
    """One oversize body per JSON endpoint, each otherwise well-formed."""
    pad = "x" * MAX_JSON_BYTES
    registry = target.api.registry
    return {
        "/api/verifications": json.dumps({"registry": registry, "repository": "a/b", "tag": pad}).encode(),
        f"/api/registries/{registry}/runs": json.dumps({"image": "hostile/echo:v1", "args": [pad]}).encode(),
        f"/api/registries/{registry}/builds": json.dumps(
            {"sourceUrl": f"https://x/{pad}", "images": ["a:1"]}
        ).encode(),
        "/api/cleanup/plan": json.dumps({"filters": {"namePatterns": [pad]}}).encode(),
        "/api/cleanup/execute": json.dumps({"confirm": True, "filters": {"labTag": pad}}).encode(),
        "/api/resource-groups/rg-lab/extend": json.dumps({"hours": 1, "pad": pad}).encode(),
    }


def chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_api_bodies_over_the_limit_are_413_and_chunked_ones_411(target: Target) -> None:
    stored = target.verdicts()
    with target.api.client(OPERATE, READ) as client:
        for path, body in json_bodies(target).items():
            assert len(body) > MAX_JSON_BYTES
            headers = {"content-type": "application/json"}
            answer = client.post(path, content=body, headers=headers)
            error = error_shape(answer.status_code, answer.content)
            assert (answer.status_code, error["code"]) == (413, "PayloadTooLarge"), (path, answer.text)
            assert error["detail"] == {"limitBytes": MAX_JSON_BYTES}
            # Chunked, with no length: the Functions host would hand the app no body at all.
            answer = client.post(path, content=chunks(body), headers=headers)
            error = error_shape(answer.status_code, answer.content)
            assert (answer.status_code, error["code"]) == (411, "LengthRequired"), (path, answer.text)
    assert target.verdicts() == stored


def test_api_deeply_nested_json_is_refused(target: Target) -> None:
    stored = target.verdicts()
    bodies = {
        "over the limit": (nested(DEEP), 413, "PayloadTooLarge"),
        "arrays under the limit": (nested(MAX_JSON_BYTES // 2 - 1), 400, "InvalidInput"),
        "objects under the limit": (
            nested(MAX_JSON_BYTES // 6, '{"a":', "}")[:-1] + b"1}",
            400,
            "InvalidInput",
        ),
        "inside a field": (b'{"registry": "x", "repository": ' + nested(20_000) + b"}", 400, "InvalidInput"),
    }
    with target.api.client(OPERATE, READ) as client:
        for name, (body, status, code) in bodies.items():
            for path in ("/api/verifications", "/api/cleanup/execute"):
                answer = client.post(path, content=body, headers={"content-type": "application/json"})
                error = error_shape(answer.status_code, answer.content)
                assert (answer.status_code, error["code"]) == (status, code), (name, path, answer.text[:200])
        # The host is still up and still serves real requests.
        assert target.health() == 200
        assert client.get("/api/registries").status_code == 200
    assert target.verdicts() == stored


def test_webhook_oversize_event_is_acknowledged_and_refused(target: Target, admin: httpx.Client) -> None:
    huge = "a" * (2 * 1024 * 1024)  # twice Event Grid's own 1 MB cap per event
    events = [
        target.pushed(huge, "v1"),
        target.pushed("hostile/app", huge),
        target.pushed("hostile/app", "v1", digest="sha256:" + huge),
        {**target.pushed("hostile/app", "v1"), "eventType": huge},
    ]
    log = assert_refused(target, admin, events)
    assert len(log) < 64 * 1024, "refused values are quoted cut short, not echoed whole into the log"
    assert target.health() == 200


def test_webhook_deeply_nested_json_does_not_reach_the_function(target: Target) -> None:
    stored = target.verdicts()
    mark = target.log_mark()
    for body in (nested(DEEP), b'[{"id": "x", "data": ' + nested(DEEP, '{"a":', "}")[:-1] + b"1}}]"):
        answer = target.deliver(body)
        # Refused before any invocation, as a body that is not JSON: a 400, which Event Grid does not retry.
        assert answer.status_code == 400, answer.text
    assert "Functions.on_image_event" not in target.log_since(mark)
    assert target.health() == 200
    assert target.verdicts() == stored
