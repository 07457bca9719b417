"""The FastAPI app in process (httpx's ASGI transport), for what needs no Azure service:
the OpenAPI document, the one error shape, body limits, app roles, and cleanup's parse → call → map
(a stub service returns real plan and run records; the real service says 409 while cleanup is off)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, cast, get_args

import httpx
import pytest

from shared import container, services, tasks
from shared.api import auth, limits, models, routes
from shared.api.app import api
from shared.api.limits import MAX_JSON_BYTES
from shared.cleanup import CleanupService
from shared.cleanup.planner import BLOCKED, DECISIONS, DELETE, INVALID_EXPIRY, KEEP, PlanItem
from shared.cleanup.records import DELETED, FAILED, RESULTS, Filters, Outcome, Plan, RunRecord
from shared.config import get_settings
from shared.errors import Retryable

ENDPOINTS = {
    ("get", "/api/health"),
    ("get", "/api/registries"),
    ("get", "/api/registries/{registry}/repositories"),
    ("get", "/api/registries/{registry}/repositories/{repository}/tags"),
    ("get", "/api/registries/{registry}/repositories/{repository}/verdicts"),
    ("post", "/api/registries/{registry}/builds"),
    ("post", "/api/registries/{registry}/runs"),
    ("get", "/api/registries/{registry}/runs"),
    ("get", "/api/registries/{registry}/runs/{runId}"),
    ("get", "/api/registries/{registry}/runs/{runId}/log"),
    ("post", "/api/verifications"),
    ("get", "/api/verifications/{id}"),
    ("post", "/api/cleanup/plan"),
    ("post", "/api/cleanup/execute"),
    ("get", "/api/cleanup/plans"),
    ("get", "/api/cleanup/runs"),
    ("get", "/api/cleanup/plans/{planId}"),
    ("get", "/api/cleanup/runs/{runId}"),
    ("post", "/api/resource-groups/{name}/extend"),
    ("post", "/api/retention/plan"),
    ("post", "/api/retention/execute"),
    ("get", "/api/retention/plans/{planId}"),
    ("get", "/api/retention/runs/{runId}"),
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
    container.reset()
    yield
    container.reset()


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
    answers = {
        ("post", "/api/cleanup/plan"): "CleanupPlanOut",
        ("post", "/api/cleanup/execute"): "CleanupRunOut",
        ("get", "/api/cleanup/plans/{planId}"): "CleanupPlanOut",
        ("get", "/api/cleanup/runs/{runId}"): "CleanupRunOut",
        ("get", "/api/cleanup/plans"): "CleanupPlanList",
        ("get", "/api/cleanup/runs"): "CleanupRunList",
        ("get", "/api/registries/{registry}/runs"): "RunList",
        ("post", "/api/resource-groups/{name}/extend"): "LabExtended",
    }
    for (method, path), model in answers.items():
        responses = document["paths"][path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
        assert "501" not in responses
        if method == "post":
            assert "CLEANUP_ENABLED" in responses["409"]["description"], path
    plan = document["paths"]["/api/cleanup/plan"]["post"]["requestBody"]
    assert not plan.get("required"), "a plan of the whole configured cleanup needs no body"


def test_docs_page_loads_swagger_ui_from_the_apps_own_files() -> None:
    page = call("GET", "/api/docs")
    assert page.status_code == 200
    assert "://" not in page.text  # no CDN: every file comes from /api/ui/
    assert '<script src="/api/ui/swagger/swagger-ui-bundle.js">' in page.text
    assert "script-src 'self';" in page.headers["content-security-policy"]


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
    for orderby in ("name", "timedesc\n", "timedesc\x00"):  # pydantic's patterns match the whole value
        error_of(
            call("GET", "/api/registries/abcde/repositories/a/tags", params={"orderby": orderby}),
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


def test_bodies_are_limited_and_chunked_ones_need_a_length() -> None:
    runs = "/api/registries/abcde/runs"
    big = json.dumps({"image": "a:b", "args": ["x" * 1000] * 66}).encode()
    assert len(big) > MAX_JSON_BYTES
    error = error_of(
        call("POST", runs, content=big, headers={"content-type": "application/json"}), 413, "PayloadTooLarge"
    )
    assert error["detail"] == {"limitBytes": MAX_JSON_BYTES}

    async def chunks() -> AsyncIterator[bytes]:  # chunked, no Content-Length
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    # The Functions host hands the app no body without a Content-Length (azure-functions-host#7930):
    # say so rather than answer as if the body were empty.
    streamed = call("POST", runs, content=chunks(), headers={"content-type": "application/json"})
    error_of(streamed, 411, "LengthRequired")


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


def test_roles_when_switched_on(monkeypatch: pytest.MonkeyPatch, cleanup: Stub) -> None:
    body = {"confirm": True, "planId": "p1"}
    # Off: no principal needed (the function key is the host's business).
    assert call("POST", "/api/cleanup/execute", json=body).status_code == 200
    monkeypatch.setenv("DOCKMASTER_API_ROLES", "true")
    get_settings.cache_clear()
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
    assert call("POST", "/api/cleanup/execute", json=body, headers=principal(auth.OPERATE)).status_code == 200
    run = f"/api/cleanup/runs/{cleanup.run.run_id}"
    error_of(call("GET", run, headers=principal(auth.OPERATE)), 403, "Forbidden")
    assert call("GET", run, headers=principal(auth.READ)).status_code == 200
    extend = call("POST", "/api/resource-groups/lab1/extend", json={"hours": 1}, headers=principal(auth.READ))
    error_of(extend, 403, "Forbidden")
    assert call("GET", "/api/registries", headers=principal(auth.READ)).json() == {"registries": []}
    assert call("GET", "/api/health").status_code == 200  # never behind a role


NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
PLAN_ID = "plan-20261129T080000Z-0a1b2c3d"
RUN_ID = "run-20261129T080500Z-4e5f6a7b"


def sample_plan() -> Plan:
    items = [
        PlanItem("s1", "lab-old", DELETE, "expired 2026-11-28T08:00:00Z", NOW, "expiry-tag", notes=("n",)),
        PlanItem("s1", "lab-locked", BLOCKED, "locked: keep (CanNotDelete)", NOW, "expiry-tag"),
        PlanItem("s1", "lab-odd", INVALID_EXPIRY, "tag expiresOn='soon' is neither", None, "expiry-tag"),
        PlanItem("s1", "lab-new", KEEP, "expires later", NOW + dt.timedelta(days=1), "first-sight"),
    ]
    return Plan(
        PLAN_ID, NOW, Filters(name_patterns=("lab-*",), older_than_hours=2.5), False, 10, ("s1",), items, 9, 2
    )


def sample_run() -> RunRecord:
    run = RunRecord(RUN_ID, "api", False, NOW, sample_plan(), NOW, PLAN_ID, notes=["a note"])
    run.outcomes = [
        Outcome("s1", "lab-old", DELETED, "delete accepted", NOW),
        Outcome("s1", "x", FAILED, "503", None, True),
    ]
    return run


class Stub:
    """Stands in for CleanupService: records each call, answers with real records."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.plan_ = sample_plan()
        self.run = sample_run()
        self.fail: Exception | None = None

    def last(self) -> tuple[str, Any]:
        return self.calls[-1]

    def _called(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, (*args, kwargs) if kwargs else args))
        if self.fail is not None:
            raise self.fail

    def plan(self, filters: Mapping[str, Any] | None = None) -> Plan:
        self._called("plan", filters)
        return self.plan_

    def execute(self, plan_id: str | None = None, filters: Any = None, **kwargs: Any) -> RunRecord:
        self._called("execute", plan_id, filters, **kwargs)
        return self.run

    def get_plan(self, plan_id: str) -> Plan:
        self._called("get_plan", plan_id)
        return self.plan_

    def get_run(self, run_id: str) -> RunRecord:
        self._called("get_run", run_id)
        return self.run

    def extend(self, group: str, hours: float, subscription: str | None = None) -> dt.datetime:
        self._called("extend", group, hours, subscription)
        return NOW + dt.timedelta(hours=hours)


def with_cleanup(service: object) -> AbstractContextManager[container.Container]:
    """The app with `service` as its cleanup service (settings from the environment)."""
    fake = cast("CleanupService", service)
    return container.installed(container.Container.with_fakes(get_settings(), cleanup=fake))


@pytest.fixture
def cleanup() -> Iterator[Stub]:
    stub = Stub()
    with with_cleanup(stub):
        yield stub


def test_cleanup_maps_the_service_records_without_loss(cleanup: Stub) -> None:
    filters = {"namePatterns": ["az204-*"], "labTag": "purpose=lab", "maxDeletions": 2}
    plan = call("POST", "/api/cleanup/plan", json={"filters": filters})
    assert (plan.status_code, plan.json()) == (200, cleanup.plan_.public())
    assert plan.json()["groups"][0]["notes"] == ["n"]
    assert cleanup.last() == ("plan", ({**filters, "subscriptions": []},))
    assert call("POST", "/api/cleanup/plan").json()["planId"] == PLAN_ID  # no body: the configured cleanup
    assert cleanup.last() == ("plan", ({"subscriptions": [], "namePatterns": []},))

    run = call("POST", "/api/cleanup/execute", json={"planId": PLAN_ID, "confirm": True})
    assert (run.status_code, run.json()) == (200, cleanup.run.public())
    assert cleanup.last() == (
        "execute",
        (PLAN_ID, None, {"confirm": True, "dry_run": None, "trigger": "api"}),
    )
    body = {"filters": {"olderThanHours": 4}, "confirm": True, "dryRun": True}
    assert call("POST", "/api/cleanup/execute", json=body).status_code == 200
    expected = {"subscriptions": [], "namePatterns": [], "olderThanHours": 4.0}
    assert cleanup.last() == (
        "execute",
        (None, expected, {"confirm": True, "dry_run": True, "trigger": "api"}),
    )

    assert call("GET", f"/api/cleanup/runs/{RUN_ID}").json() == cleanup.run.public()
    assert call("GET", f"/api/cleanup/plans/{PLAN_ID}").json() == cleanup.plan_.public()
    assert cleanup.calls[-2:] == [("get_run", (RUN_ID,)), ("get_plan", (PLAN_ID,))]

    extended = call("POST", "/api/resource-groups/Lab_1.(a)/extend", json={"hours": 24})
    assert (extended.status_code, extended.json()) == (
        200,
        {"name": "Lab_1.(a)", "hours": 24.0, "expiry": "2026-11-30T08:00:00Z"},
    )
    assert cleanup.last() == ("extend", ("Lab_1.(a)", 24.0, None))
    body = {"hours": 1.5, "subscription": "s2"}
    assert call("POST", "/api/resource-groups/lab/extend", json=body).status_code == 200
    assert cleanup.last() == ("extend", ("lab", 1.5, "s2"))


def test_response_models_know_every_decision_and_result() -> None:
    assert set(get_args(models.Decision)) == set(DECISIONS)
    assert set(get_args(models.Result)) == set(RESULTS)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("execute", {"planId": PLAN_ID}, "body.confirm: Field required"),
        ("execute", {"planId": PLAN_ID, "confirm": False}, "confirm must be true"),
        ("execute", {"planId": PLAN_ID, "confirm": "true"}, "valid boolean"),
        ("execute", {"planId": PLAN_ID, "confirm": 1}, "valid boolean"),
        ("execute", {"confirm": True}, "exactly one of planId and filters"),
        ("execute", {"planId": PLAN_ID, "filters": {}, "confirm": True}, "exactly one of planId and filters"),
        ("execute", {"planId": PLAN_ID, "confirm": True, "dryRun": "yes"}, "valid boolean"),
        ("execute", {"planId": PLAN_ID, "confirm": True, "force": True}, "Extra inputs"),
        ("plan", {"filters": {"maxDeletions": -1}}, "body.filters.maxDeletions"),
        ("plan", {"filters": {"pattern": "x"}}, "body.filters.pattern"),
        ("plan", {"namePatterns": ["x"]}, "body.namePatterns"),
    ],
)
def test_cleanup_validates_its_body_before_the_service(
    cleanup: Stub, path: str, body: dict[str, Any], message: str
) -> None:
    error = error_of(call("POST", f"/api/cleanup/{path}", json=body), 400, "InvalidInput")
    assert message in error["message"]
    assert cleanup.calls == []


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("lab.", {"hours": 1}, "not a resource group name"),
        ("has space", {"hours": 1}, "not a resource group name"),
        ("a%23b", {"hours": 1}, "not a resource group name"),
        ("x" * 91, {"hours": 1}, "at most 90 characters"),
        ("lab", {"hours": 0}, "greater than 0"),
        ("lab", {"hours": -2}, "greater than 0"),
        ("lab", {"hours": 1e9}, "less than or equal to 100000"),
        ("lab", {"hours": "soon"}, "valid number"),
        # Issue 14 (10): hours is a JSON number, nothing converted: `true` is not 1, "2" is not 2.
        ("lab", {"hours": True}, "body.hours"),
        ("lab", {"hours": "2"}, "body.hours"),
        ("lab", {"hours": [1]}, "body.hours"),
        ("lab", {}, "body.hours: Field required"),
    ],
)
def test_extend_validates_the_group_name_and_hours(
    cleanup: Stub, name: str, body: dict[str, Any], message: str
) -> None:
    error = error_of(call("POST", f"/api/resource-groups/{name}/extend", json=body), 400, "InvalidInput")
    assert message in error["message"]
    assert cleanup.calls == []


def test_cleanup_errors_keep_the_one_shape(cleanup: Stub) -> None:
    cleanup.fail = Retryable("cleanup run run-x: deleting lab-a failed", detail={"runId": RUN_ID})
    answer = call("POST", "/api/cleanup/execute", json={"filters": {}, "confirm": True})
    error = error_of(answer, 503, "DependencyUnavailable")
    assert error["detail"] == {"runId": RUN_ID}
    assert answer.headers["retry-after"] == "5"


def test_cleanup_turned_off_is_409_from_the_real_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")  # never contacted
    monkeypatch.setenv("DOCKMASTER_EVENTS_TOPIC_ENDPOINT", "")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
    monkeypatch.setenv("CLEANUP_ENABLED", "false")
    container.reset()
    for path, body in (
        ("/api/cleanup/plan", {}),
        ("/api/cleanup/execute", {"filters": {}, "confirm": True}),
        ("/api/cleanup/execute", {"planId": PLAN_ID, "confirm": True}),
        ("/api/resource-groups/lab-1/extend", {"hours": 2}),
    ):
        error = error_of(call("POST", path, json=body), 409, "Conflict")
        assert error["message"] == "cleanup is turned off (CLEANUP_ENABLED=false)"


def test_unexpected_errors_are_500_without_details() -> None:
    class Broken:
        def plan(self, filters: Mapping[str, Any] | None = None) -> None:
            raise RuntimeError("secret internals")

    with with_cleanup(Broken()):
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
    # Azure's host joins prefix and route as `prefix + "/" + route`: "{*route}" gives "api/{*route}".
    assert routes["http_app_func"]["route"] == "{*route}"
    # Azure's host tries routes in function-name order (ignoring case), not by ASP.NET precedence.
    assert routes["cleanup_extend_link"]["authLevel"] == "ANONYMOUS"
    assert routes["cleanup_extend_link"]["methods"] == ["GET", "POST"]
    assert routes["console"] == {**routes["console"], "authLevel": "ANONYMOUS", "methods": ["GET"]}
    assert sorted(routes, key=str.upper) == ["cleanup_extend_link", "console", "health", "http_app_func"]


def test_the_host_creates_the_apps_routes() -> None:
    """The routes as devstack's host builds them with ASP.NET's rules: a template the real host refuses
    (as it did "api//{*route}") fails here; FastAPI's paths stay under /api."""
    import importlib

    import function_app
    from devstack.host.functions import index

    importlib.reload(function_app)  # an app indexes once (get_functions refuses names it has seen)

    settings = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "DOCKMASTER_RUNS_QUEUE": "runs",
        "CLEANUP_SCHEDULE": "0 0 * * * *",
        "RETENTION_SCHEDULE": "0 30 2 * * *",
    }
    specs = index(function_app.app, settings, route_prefix="api")
    http = [spec for spec in specs if spec.trigger_type == "httpTrigger"]
    assert [(spec.name, spec.route.template if spec.route else None) for spec in http] == [
        ("cleanup_extend_link", "api/cleanup/extend-link"),
        ("console", "api/ui/{*path}"),
        ("health", "api/health"),
        ("http_app_func", "api/{*route}"),
    ]
    assert http[3].route is not None
    assert http[3].route.match("/api/registries/abcde/runs/dm1") == {"route": "registries/abcde/runs/dm1"}
    page = http[1].route
    assert page is not None
    # The page's own address with and without the slash, and its files; nothing else reaches it.
    assert page.match("/api/ui") == {}  # a catch-all matches nothing too: no route value
    assert page.match("/api/ui/") == {}  # the trailing slash is ignored
    assert page.match("/api/ui/swagger/swagger-ui.css") == {"path": "swagger/swagger-ui.css"}
    assert page.match("/api/registries") is None


class GrowingLog:
    """A run's log blob: each properties read moves to the next (text, complete) state, the last stays."""

    def __init__(self, *states: tuple[bytes, bool]) -> None:
        self.states = list(states)
        self.current = states[0]

    def get_blob_properties(self) -> Any:
        self.current = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        text, complete = self.current
        return type("Props", (), {"size": len(text), "metadata": {"Complete": "true"} if complete else {}})()

    def download_blob(self, offset: int, length: int) -> Any:
        data = self.current[0][offset : offset + length]
        return type("Download", (), {"chunks": lambda self: iter([data])})()


@pytest.fixture
def run_log(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The API's log endpoint over the real RunLog.chunks, on a blob the test scripts (no Azure)."""

    def install(*states: tuple[bytes, bool]) -> None:
        log = object.__new__(tasks.RunLog)
        log.run_id = "dm1"
        log._blob = GrowingLog(*states)  # type: ignore[assignment]  # a scripted stand-in for the blob

        monkeypatch.setattr(services, "run_log", lambda name, run_id: log)

    monkeypatch.setattr(routes, "LOG_POLL_SECONDS", 0.0)
    return install


LOG_URL = "/api/registries/abcde/runs/dm1/log"


def test_a_complete_log_is_returned_whole_with_its_end(run_log: Any) -> None:
    run_log((b"line 1\nline 2\n", True))
    answer = call("GET", LOG_URL, params={"code": "secret-key"})
    assert (answer.status_code, answer.content) == (200, b"line 1\nline 2\n")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers[routes.NEXT_OFFSET] == "14"
    assert answer.headers[routes.COMPLETE] == "true"
    assert "link" not in answer.headers
    later = call("GET", LOG_URL, params={"offset": "7"})
    assert (later.content, later.headers[routes.NEXT_OFFSET]) == (b"line 2\n", "14")


def test_following_returns_what_came_and_where_to_go_on(run_log: Any) -> None:
    """A long poll: it answers once bytes past the offset are there (not when the run ends), with the
    offset to read on from and a Link that does so; the code query parameter is never echoed."""
    run_log((b"", False), (b"", False), (b"step 1\n", False), (b"step 1\nstep 2\n", True))
    first = call("GET", LOG_URL, params={"follow": "true", "code": "secret-key"})
    assert (first.content, first.headers[routes.NEXT_OFFSET], first.headers[routes.COMPLETE]) == (
        b"step 1\n",
        "7",
        "false",
    )
    link = first.headers["link"]
    assert link.startswith("<http://testserver/api/registries/abcde/runs/dm1/log?")
    assert "offset=7" in link
    assert "follow=true" in link
    assert "secret-key" not in link
    rest = call("GET", LOG_URL, params={"follow": "true", "offset": "7"})
    assert (rest.content, rest.headers[routes.NEXT_OFFSET], rest.headers[routes.COMPLETE]) == (
        b"step 2\n",
        "14",
        "true",
    )


def test_following_is_bounded_well_below_azures_http_limit(
    run_log: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert routes.FOLLOW_SECONDS < 230 / 2  # Azure cuts an HTTP response that has not started by 230 s
    monkeypatch.setattr(routes, "FOLLOW_SECONDS", 0.05)
    run_log((b"started\n", False))
    quiet = call("GET", LOG_URL, params={"follow": "true", "offset": "8"})
    assert (quiet.status_code, quiet.content) == (200, b"")
    assert (quiet.headers[routes.NEXT_OFFSET], quiet.headers[routes.COMPLETE]) == ("8", "false")
    # Without follow it answers at once with what is there.
    assert call("GET", LOG_URL).headers[routes.COMPLETE] == "false"


def test_the_log_contract_is_in_the_openapi_document() -> None:
    paths = call("GET", "/api/openapi.json").json()["paths"]
    operation = paths["/api/registries/{registry}/runs/{runId}/log"]
    answer = operation["get"]["responses"]["200"]
    assert set(answer["headers"]) == {routes.NEXT_OFFSET, routes.COMPLETE, "Link"}
    assert "text/plain" in answer["content"]
    names = {parameter["name"] for parameter in operation["get"]["parameters"]}
    assert {"offset", "follow"} <= names


@pytest.mark.parametrize(
    "url",
    [
        # What the host builds from a Host header carrying a path (`Host: 127.0.0.1:7071/api/openapi.json?x=`
        # + `GET /api/health`): scheme + Host + path + query. Only GET api/health matched, without a key.
        "http://127.0.0.1:7071/api/openapi.json?x=/api/health",
        "http://127.0.0.1:7071/api/registries?x=/api/health",
        "http://127.0.0.1:7071/api/docs#/api/health",
        "http://127.0.0.1:7071/api/health/../registries",
    ],
)
def test_the_anonymous_health_function_serves_health_whatever_url_it_is_given(url: str) -> None:
    """Issue 14 (9): the health function hands FastAPI GET /api/health, nothing of the URL but `deep`."""
    import azure.functions as func

    import function_app

    request = func.HttpRequest("GET", url, headers={"host": url.split("/")[2]}, params={}, body=b"")
    answer = asyncio.run(function_app.health(request, None))
    assert answer.status_code == 200
    assert json.loads(answer.get_body()) == {"status": "ok", "checks": []}
