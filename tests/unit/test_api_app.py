"""The FastAPI app in process (httpx's ASGI transport), for what needs no Azure service:
the OpenAPI document, the one error shape, body limits, app roles, cleanup's 501."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from shared import services
from shared.api import auth, limits
from shared.api.app import api
from shared.api.limits import MAX_JSON_BYTES

ENDPOINTS = {
    ("get", "/api/health"),
    ("get", "/api/registries"),
    ("get", "/api/registries/{registry}/repositories"),
    ("get", "/api/registries/{registry}/repositories/{repository}/tags"),
    ("get", "/api/registries/{registry}/repositories/{repository}/verdicts"),
    ("post", "/api/registries/{registry}/builds"),
    ("post", "/api/registries/{registry}/runs"),
    ("get", "/api/registries/{registry}/runs/{runId}"),
    ("get", "/api/registries/{registry}/runs/{runId}/log"),
    ("post", "/api/verifications"),
    ("get", "/api/verifications/{id}"),
    ("post", "/api/cleanup/plan"),
    ("post", "/api/cleanup/execute"),
}


def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(send())


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Azure here: no registry configured, roles off unless a test turns them on."""
    monkeypatch.setenv("DOCKMASTER_REGISTRIES", "")
    monkeypatch.setenv("DOCKMASTER_API_ROLES", "false")
    services.reset()
    yield
    services.reset()


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def test_openapi_lists_every_endpoint_with_security_and_no_422() -> None:
    document = call("GET", "/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    found = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert found == ENDPOINTS
    assert document["components"]["securitySchemes"]["functionKey"]["name"] == "x-functions-key"
    assert document["paths"]["/api/health"]["get"]["security"] == []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            if path != "/api/health":
                assert operation["x-required-role"] == (auth.READ if method == "get" else auth.OPERATE)
                assert "400" in operation["responses"]
    build = document["paths"]["/api/registries/{registry}/builds"]["post"]["requestBody"]["content"]
    assert set(build) == {"application/gzip", "application/json"}
    assert "sourceUrl" in build["application/json"]["schema"]["properties"]
    execute = document["paths"]["/api/cleanup/execute"]["post"]["requestBody"]["content"]["application/json"]
    assert execute["schema"]["$ref"].endswith("/CleanupExecuteRequest")
    assert "confirm" in document["components"]["schemas"]["CleanupExecuteRequest"]["required"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_docs_page_loads_the_document_with_the_key() -> None:
    page = call("GET", "/api/docs")
    assert page.status_code == 200
    assert "/api/openapi.json" in page.text
    assert "x-functions-key" in page.text


def test_plain_health_touches_nothing() -> None:
    answer = call("GET", "/api/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "checks": []})


def test_validation_errors_are_400_in_the_one_shape() -> None:
    error = error_of(
        call("GET", "/api/registries/abcde/repositories", params={"n": "0"}), 400, "InvalidInput"
    )
    assert error["detail"] == [{"field": "query.n", "message": "Input should be greater than or equal to 1"}]
    assert "query.n" in error["message"]
    error = error_of(call("GET", "/api/registries/not-a-name!/repositories"), 400, "InvalidInput")
    assert "not a registry name" in error["message"]
    error = error_of(call("GET", "/api/registries/abcde/repositories/UPPER/tags"), 400, "InvalidInput")
    assert "not a valid OCI repository name" in error["message"]
    error_of(
        call("GET", "/api/registries/abcde/repositories/a/tags", params={"orderby": "name"}),
        400,
        "InvalidInput",
    )
    runs = "/api/registries/abcde/runs"
    error = error_of(call("POST", runs, json={"image": "a:b", "timeoutSeconds": 5}), 400, "InvalidInput")
    assert error["detail"][0]["field"] == "body.timeoutSeconds"
    error = error_of(call("POST", runs, json={"image": "a:b", "surprise": 1}), 400, "InvalidInput")
    assert error["detail"][0] == {"field": "body.surprise", "message": "Extra inputs are not permitted"}
    error = error_of(call("POST", runs, json={"image": "a:b", "args": ["x"] * 65}), 400, "InvalidInput")
    error = error_of(call("POST", runs, json={"image": "a:b", "args": ["new\nline"]}), 400, "InvalidInput")
    error_of(
        call("POST", runs, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "InvalidInput",
    )
    error = error_of(
        call("POST", "/api/verifications", json={"registry": "abcde", "repository": "a"}), 400, "InvalidInput"
    )
    assert "name a tag or a digest" in error["message"]
    error = error_of(call("GET", "/api/verifications/%21%21"), 400, "InvalidInput")
    assert "not a verification id" in error["message"]


def test_unknown_routes_methods_and_registries() -> None:
    error = error_of(call("GET", "/api/nothing"), 404, "NotFound")
    assert error["message"] == "no endpoint GET /api/nothing"
    error_of(call("DELETE", "/api/registries"), 405, "MethodNotAllowed")
    # Valid name, not configured: 404 before any Azure call.
    error = error_of(call("GET", "/api/registries/elsewhere1/runs/dm1"), 404, "NotFound")
    assert error["message"] == "registry 'elsewhere1' is not configured"


def test_builds_take_gzip_or_json_only() -> None:
    builds = "/api/registries/abcde/builds"
    error = error_of(
        call("POST", builds, content=b"x", headers={"content-type": "text/plain"}),
        415,
        "UnsupportedMediaType",
    )
    assert "application/gzip" in error["message"]
    error = error_of(
        call("POST", builds, params={"image": "a:b"}, json={"sourceUrl": "https://x/y", "images": ["a:b"]}),
        400,
        "InvalidInput",
    )
    assert "in the body, not as query parameters" in error["message"]
    gz = {"content-type": "application/gzip"}
    error = error_of(call("POST", builds, content=b"\x1f\x8b", headers=gz), 400, "InvalidInput")
    assert "name at least one image" in error["message"]
    error_of(
        call("POST", builds, params={"image": "a:b", "timeoutSeconds": "60"}, content=b"", headers=gz),
        400,
        "InvalidInput",
    )
    error_of(
        call("POST", builds, params={"image": "a:b", "buildArg": "nope"}, content=b"", headers=gz),
        400,
        "InvalidInput",
    )


def test_bodies_are_limited_declared_or_streamed() -> None:
    runs = "/api/registries/abcde/runs"
    big = json.dumps({"image": "a:b", "args": ["x" * 1000] * 66}).encode()
    assert len(big) > MAX_JSON_BYTES
    error = error_of(
        call("POST", runs, content=big, headers={"content-type": "application/json"}), 413, "PayloadTooLarge"
    )
    assert error["detail"] == {"limitBytes": MAX_JSON_BYTES}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = call("POST", runs, content=chunks(), headers={"content-type": "application/json"})
    error_of(streamed, 413, "PayloadTooLarge")


def test_build_contexts_have_their_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits.limit_for("POST", "/api/registries/abcde/builds") == limits.MAX_CONTEXT_BYTES
    assert limits.limit_for("POST", "/api/registries/abcde/runs") == MAX_JSON_BYTES
    monkeypatch.setattr(limits, "MAX_CONTEXT_BYTES", 16)
    gz = {"content-type": "application/gzip"}
    small = call(
        "POST", "/api/registries/abcde/builds", params={"image": "a:b"}, content=b"\x1f\x8b" * 4, headers=gz
    )
    error_of(small, 404, "NotFound")  # within the limit: on to the registry, which is not configured
    big = call(
        "POST", "/api/registries/abcde/builds", params={"image": "a:b"}, content=b"\x1f\x8b" * 9, headers=gz
    )
    assert error_of(big, 413, "PayloadTooLarge")["message"] == "the request body is larger than 16 bytes"


def principal(*roles: str) -> dict[str, str]:
    claims = [{"typ": "name", "val": "tester"}, *({"typ": "roles", "val": role} for role in roles)]
    return {auth.PRINCIPAL_HEADER: base64.b64encode(json.dumps({"claims": claims}).encode()).decode()}


def test_roles_when_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"confirm": True, "planId": "p1"}
    # Off: no principal needed (the function key is the host's business).
    error_of(call("POST", "/api/cleanup/execute", json=body), 501, "NotImplemented")
    monkeypatch.setenv("DOCKMASTER_API_ROLES", "true")
    services.reset()
    error = error_of(call("POST", "/api/cleanup/execute", json=body), 401, "Unauthorized")
    assert auth.PRINCIPAL_HEADER in error["message"]
    error_of(call("GET", "/api/registries", headers={auth.PRINCIPAL_HEADER: "???"}), 401, "Unauthorized")
    error = error_of(
        call("POST", "/api/cleanup/execute", json=body, headers=principal(auth.READ)), 403, "Forbidden"
    )
    assert error == {
        "code": "Forbidden",
        "message": "'tester' lacks the app role Dockmaster.Operate",
        "detail": {"requiredRole": "Dockmaster.Operate"},
    }
    error_of(call("GET", "/api/registries/abcde/runs/dm1", headers=principal(auth.OPERATE)), 403, "Forbidden")
    # Roles are checked before the body: a caller without the role learns nothing about the input.
    error_of(call("POST", "/api/cleanup/execute", json={}, headers=principal()), 403, "Forbidden")
    error_of(
        call("POST", "/api/cleanup/execute", json=body, headers=principal(auth.OPERATE)),
        501,
        "NotImplemented",
    )
    assert call("GET", "/api/registries", headers=principal(auth.READ)).json() == {"registries": []}
    assert call("GET", "/api/health").status_code == 200  # never behind a role


def test_cleanup_answers_501_after_validating_its_body() -> None:
    error = error_of(
        call("POST", "/api/cleanup/plan", json={"filters": {"namePatterns": ["az204-*"]}}),
        501,
        "NotImplemented",
    )
    assert "not available yet" in error["message"]
    error_of(call("POST", "/api/cleanup/plan", json={}), 501, "NotImplemented")
    error = error_of(
        call("POST", "/api/cleanup/execute", json={"planId": "p1", "confirm": False}), 400, "InvalidInput"
    )
    assert "confirm must be true" in error["message"]
    error = error_of(call("POST", "/api/cleanup/execute", json={"confirm": True}), 400, "InvalidInput")
    assert "exactly one of planId and filters" in error["message"]
    error_of(call("POST", "/api/cleanup/plan", json={"filters": {"maxDeletions": -1}}), 400, "InvalidInput")


def test_unexpected_errors_are_500_without_details(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(filters: dict[str, Any]) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "plan_cleanup", broken)
    error = error_of(call("POST", "/api/cleanup/plan", json={}), 500, "InternalError")
    assert "secret" not in json.dumps(error)


def test_function_app_loads_the_api_on_the_first_request_only() -> None:
    code = """
import asyncio, sys
import function_app
from shared.api import asgi

async def main():
    inbox = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    sent = []

    async def record(message):
        sent.append(message["type"])

    await asgi({"type": "lifespan"}, inbox.get, record)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"], sent
    assert "fastapi" not in sys.modules
    import httpx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://x") as client:
        answer = await client.get("/api/health")
    assert answer.json() == {"status": "ok", "checks": []}
    assert "fastapi" in sys.modules
    print("ok")

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_anonymous_health_is_matched_before_the_asgi_catch_all() -> None:
    import function_app

    routes = {
        str(f.get_function_name()): json.loads(f.get_function_json())["bindings"][0]
        for f in function_app.app.get_functions()
        if json.loads(f.get_function_json())["bindings"][0]["type"] == "httpTrigger"
    }
    assert routes["health"]["authLevel"] == "ANONYMOUS"
    assert routes["health"]["methods"] == ["GET"]
    assert routes["http_app_func"]["authLevel"] == "FUNCTION"
    assert routes["http_app_func"]["route"] == "/{*route}"
    # Azure's host tries routes in function-name order, not by ASP.NET precedence.
    assert sorted(routes) == ["health", "http_app_func"]
