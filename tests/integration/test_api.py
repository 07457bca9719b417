"""The HTTP API end to end: function_app on the real local Functions host, against the session devstack.

The host enforces function keys (the API's auth level is FUNCTION, health is ANONYMOUS); the app runs
with DOCKMASTER_API_ROLES=true, so every call also carries a crafted X-MS-CLIENT-PRINCIPAL, as App
Service authentication would add it. Builds and runs go through ACR Tasks, verdicts through Table and
Queue storage on Azurite, and the host's queue trigger finishes verifications as it would in Azure.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.api.auth import OPERATE, PRINCIPAL_HEADER, READ
from shared.api.params import verification_id
from shared.tasks import pack_context
from tests.support.api import Api, error_of, follow_log, local_host, principal, wait_for
from tests.support.paths import POLICY
from tests.support.raw_http import raw_http
from tests.support.stack import Devstack


@pytest.fixture(scope="module")
def api(devstack: Devstack, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = {
        "DOCKMASTER_REGISTRIES": registry.id,
        "DOCKMASTER_POLICY_PATH": str(POLICY),
        "DOCKMASTER_VERDICTS_TABLE": f"apiverdicts{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_RUNS_QUEUE": f"api-runs-{uuid.uuid4().hex[:8]}",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": "true",
        # Build sources from this host only: it resolves nowhere, so devstack's ACR Tasks gets the build
        # (and fails it: it builds from uploaded sources only). tests/hostile/ runs without the list.
        "DOCKMASTER_BUILD_SOURCE_HOSTS": "example.invalid",
        "CLEANUP_SCHEDULE": "0 0 * * * *",  # cleanup is off here (CLEANUP_ENABLED defaults to false)
    }
    with local_host(devstack, tmp_path_factory.mktemp("api-host"), settings) as (url, key, log_path):
        yield Api(url, key, registry.name, registry.login_server, log_path)


@pytest.fixture(scope="module")
def built(api: Api, hello_context: Path) -> dict[str, Any]:
    """One build through the API: the hello image as api/hello:v1 and :v2, and in two more repositories."""
    images = ["api/hello:v1", "api/hello:v2", "api/second:v1", "api/third:v1"]
    with api.client(OPERATE, READ) as client:
        accepted = client.post(
            f"/api/registries/{api.registry}/builds",
            params={"image": images, "buildArg": "UNUSED=1", "platform": "linux/amd64"},
            content=pack_context(hello_context),
            headers={"content-type": "application/gzip"},
        )
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        assert location == accepted.json()["location"]
        assert location.startswith(f"{api.url}/api/registries/{api.registry}/runs/")
        run = wait_for(client, location, "finished")
    assert run["status"] == "Succeeded", run
    return run


def test_openapi_and_docs_are_served(api: Api) -> None:
    with api.client() as client:
        document = client.get("/api/openapi.json").json()
        assert len(document["paths"]) == 22
        assert client.get("/api/docs").headers["content-type"].startswith("text/html")
    assert httpx.get(api.url + "/api/openapi.json").status_code == 401  # the host wants the key


def test_health_is_anonymous_and_deep_checks_dependencies(api: Api) -> None:
    plain = httpx.get(api.url + "/api/health")
    assert (plain.status_code, plain.json()) == (200, {"status": "ok", "checks": []})
    deep = httpx.get(api.url + "/api/health", params={"deep": "true"}, timeout=30)
    assert deep.status_code == 200, deep.text
    checks = {check["name"]: check for check in deep.json()["checks"]}
    assert set(checks) == {"storage", "arm", f"registry:{api.registry}"}
    assert all(check["status"] == "ok" and check["latencyMs"] >= 0 for check in checks.values()), checks
    # Only GET is anonymous: anything else is the API's, behind the key.
    assert httpx.post(api.url + "/api/health").status_code == 401


def test_keys_and_roles(api: Api) -> None:
    assert httpx.get(api.url + "/api/registries").status_code == 401  # the host: no function key
    with api.client() as client:  # a key, but no signed-in caller
        assert "X-MS-CLIENT-PRINCIPAL is missing" in error_of(
            client.get("/api/registries"), 401, "Unauthorized"
        )
    with api.client(READ) as reader:
        assert reader.get("/api/registries").status_code == 200
        runs = f"/api/registries/{api.registry}/runs"
        message = error_of(reader.post(runs, json={"image": "api/hello:v1"}), 403, "Forbidden")
        assert message == "'api-test' lacks the app role Dockmaster.Operate"
    with api.client(OPERATE) as operator:
        error_of(operator.get("/api/registries"), 403, "Forbidden")
    with api.client(key=True) as forged:
        forged.headers[PRINCIPAL_HEADER] = "not-base64!"
        error_of(forged.get("/api/registries"), 401, "Unauthorized")


def test_registries_by_configured_name(api: Api, registry: Any) -> None:
    with api.client(READ) as client:
        assert client.get("/api/registries").json() == {
            "registries": [{"name": api.registry, "loginServer": api.login_server, "resourceId": registry.id}]
        }
        error_of(client.get(f"/api/registries/{api.login_server}/repositories"), 400, "InvalidInput")
        message = error_of(client.get("/api/registries/unknownreg/repositories"), 404, "NotFound")
        assert message == "registry 'unknownreg' is not configured"


def test_build_from_upload_succeeds_with_its_images_and_log(api: Api, built: dict[str, Any]) -> None:
    assert built["runType"] == "QuickRun"
    assert built["createTime"]
    assert built["startTime"]
    assert built["finishTime"]
    assert built["error"] is None
    pushed = {(image["repository"], image["tag"]) for image in built["outputImages"]}
    assert pushed == {("api/hello", "v1"), ("api/hello", "v2"), ("api/second", "v1"), ("api/third", "v1")}
    assert all(image["digest"].startswith("sha256:") for image in built["outputImages"])
    with api.client(READ) as client:
        log = client.get(f"/api/registries/{api.registry}/runs/{built['runId']}/log")
        assert log.status_code == 200
        assert log.headers["content-type"] == "text/plain; charset=utf-8"
        assert "COPY busybox /bin/busybox" in log.text
        tail = client.get(f"/api/registries/{api.registry}/runs/{built['runId']}/log", params={"offset": 10})
        assert tail.content == log.content[10:]


def test_build_from_a_source_url(api: Api) -> None:
    body = {"sourceUrl": "https://example.invalid/context.tar.gz", "images": ["api/fromurl:v1"]}
    with api.client(OPERATE, READ) as client:
        accepted = client.post(f"/api/registries/{api.registry}/builds", json=body)
        assert accepted.status_code == 202, accepted.text
        run = wait_for(client, accepted.headers["location"], "finished")
    # devstack's ACR builds only from uploaded sources (it never fetches from the network): the run fails.
    assert run["status"] in ("Failed", "Error"), run
    assert "uploaded sources" in (run["error"] or "")
    with api.client(OPERATE, READ) as client:
        elsewhere = {"sourceUrl": "https://example.com/context.tar.gz", "images": ["api/fromurl:v1"]}
        refused = client.post(f"/api/registries/{api.registry}/builds", json=elsewhere)
    assert "not one of DOCKMASTER_BUILD_SOURCE_HOSTS (example.invalid)" in error_of(
        refused, 400, "InvalidInput"
    )


def test_repositories_are_paged(api: Api, built: dict[str, Any]) -> None:
    names: list[str] = []
    with api.client(READ) as client:
        url: str | None = f"/api/registries/{api.registry}/repositories?n=2"
        while url:
            page = client.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["repositories"]) <= 2
            names += body["repositories"]
            url = body["nextLink"]
            if url:
                assert page.headers["link"] == f'<{url}>; rel="next"'
        assert {"api/hello", "api/second", "api/third"} <= set(names)
        assert len(names) == len(set(names))
        assert names == sorted(names)
        # A key given as ?code= is never echoed into the next link.
        keyed = httpx.get(
            f"{api.url}/api/registries/{api.registry}/repositories",
            params={"n": 1, "code": api.key},
            headers={PRINCIPAL_HEADER: principal(READ)},
        )
        assert keyed.status_code == 200
        assert api.key not in keyed.text
        assert api.key not in keyed.headers["link"]


def verify(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    with api.client(OPERATE, READ) as client:
        accepted = client.post("/api/verifications", json={"registry": api.registry, **body})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        assert location == f"{api.url}/api/verifications/{accepted.json()['id']}"
        return wait_for(client, location, "final")


@pytest.fixture(scope="module")
def verified(api: Api, built: dict[str, Any]) -> dict[str, Any]:
    return verify(api, {"repository": "api/hello", "tag": "v1"})


def test_verification_runs_the_push_pipeline(
    api: Api, built: dict[str, Any], verified: dict[str, Any]
) -> None:
    digest = next(i["digest"] for i in built["outputImages"] if i["tag"] == "v1")
    assert (verified["status"], verified["digest"], verified["tag"]) == ("passed", digest, "v1")
    assert {"tag-resolves", "smoke-run"} <= {check["name"] for check in verified["checks"]}
    assert verified["runId"]
    assert verified["actions"] == [f"locked {digest}; locked tag v1"]
    assert verified["policyVersion"] == "test.1"
    assert [event.split(":")[0] for event in verified["events"]] == ["api"]
    # The same image again is the same verification: recorded, not re-run.
    again = verify(api, {"repository": "api/hello", "digest": digest})
    assert again["id"] == verified["id"]
    assert again["runId"] == verified["runId"]
    assert len(again["events"]) == 2


def test_tags_show_lock_state_and_verdict(api: Api, built: dict[str, Any], verified: dict[str, Any]) -> None:
    with api.client(READ) as client:
        page = client.get(f"/api/registries/{api.registry}/repositories/api/hello/tags").json()
        assert page["policyVersion"] == "test.1"
        tags = {tag["name"]: tag for tag in page["tags"]}
        assert set(tags) == {"v1", "v2"}
        v1, v2 = tags["v1"], tags["v2"]
        assert v1["digest"] == v2["digest"] == verified["digest"]
        assert v1["changeableAttributes"] == {
            "writeEnabled": False,
            "deleteEnabled": False,
            "readEnabled": True,
            "listEnabled": True,
        }
        assert v2["changeableAttributes"]["writeEnabled"] is True  # the tag was not the one verified
        for tag in (v1, v2):  # the verdict belongs to the digest
            assert tag["verdict"]["id"] == verified["id"]
            assert tag["verdict"]["status"] == "passed"
        assert v1["createdTime"]
        assert v1["lastUpdateTime"]
        first = client.get(
            f"/api/registries/{api.registry}/repositories/api/hello/tags",
            params={"n": 1, "orderby": "timeasc"},
        ).json()
        assert len(first["tags"]) == 1
        rest = client.get(first["nextLink"]).json()
        assert {first["tags"][0]["name"], rest["tags"][0]["name"]} == {"v1", "v2"}
        assert rest["nextLink"] is None
        untested = client.get(f"/api/registries/{api.registry}/repositories/api/second/tags").json()
        assert untested["tags"][0]["verdict"] is None
        missing = client.get(f"/api/registries/{api.registry}/repositories/api/nothing/tags")
        assert (
            error_of(missing, 404, "NotFound")
            == f"repository 'api/nothing' was not found in registry '{api.registry}'"
        )


def test_verdict_history_and_lookup(api: Api, verified: dict[str, Any]) -> None:
    with api.client(READ) as client:
        history = client.get(f"/api/registries/{api.registry}/repositories/api/hello/verdicts").json()
        assert [v["id"] for v in history["verifications"]] == [verified["id"]]
        other = client.get(
            f"/api/registries/{api.registry}/repositories/api/hello/verdicts",
            params={"digest": "sha256:" + "0" * 64},
        ).json()
        assert other["verifications"] == []
        fresh = verify(api, {"repository": "api/second", "tag": "v1"})
        assert fresh["status"] == "passed"
        assert client.get(f"/api/verifications/{fresh['id']}").json()["repository"] == "api/second"
        unknown = verification_id(api.registry, "api/hello", "sha256:" + "0" * 64, "test.1")
        assert "no verification of api/hello@sha256:000" in error_of(
            client.get(f"/api/verifications/{unknown}"), 404, "NotFound"
        )


def test_run_by_digest_and_follow_its_log(api: Api, built: dict[str, Any]) -> None:
    digest = built["outputImages"][0]["digest"]
    with api.client(OPERATE, READ) as client:
        accepted = client.post(
            f"/api/registries/{api.registry}/runs",
            json={
                "image": f"{api.login_server}/api/hello@{digest}",
                "args": ["from", "the API"],
                "timeoutSeconds": 60,
            },
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["runId"]
        log = follow_log(client, f"/api/registries/{api.registry}/runs/{run_id}/log")
        assert "Hello from Dockmaster from the API" in log
        assert wait_for(client, accepted.headers["location"], "finished")["status"] == "Succeeded"
        by_tag = client.post(f"/api/registries/{api.registry}/runs", json={"image": "api/hello:v2"})
        assert by_tag.status_code == 202
        assert wait_for(client, by_tag.headers["location"], "finished")["status"] == "Succeeded"

        # The registry's runs, newest first (ACR's Runs_List with $top): these two lead.
        newest = client.get(f"/api/registries/{api.registry}/runs", params={"top": 2}).json()
        assert [run["runId"] for run in newest["runs"]] == [by_tag.json()["runId"], run_id]
        assert newest["runs"][1] == client.get(f"/api/registries/{api.registry}/runs/{run_id}").json()
        for bad in (0, 101):
            error_of(
                client.get(f"/api/registries/{api.registry}/runs", params={"top": bad}), 400, "InvalidInput"
            )


@pytest.fixture(scope="module")
def failed(api: Api, hello_context: Path) -> dict[str, Any]:
    """strict/hello:v1 built and verified: the policy's strict/* rule fails it (root user, `v1` is not
    semver), and onFail quarantines its digest."""
    with api.client(OPERATE, READ) as client:
        accepted = client.post(
            f"/api/registries/{api.registry}/builds",
            params={"image": "strict/hello:v1"},
            content=pack_context(hello_context),
            headers={"content-type": "application/gzip"},
        )
        assert accepted.status_code == 202, accepted.text
        assert wait_for(client, accepted.headers["location"], "finished")["status"] == "Succeeded"
    verdict = verify(api, {"repository": "strict/hello", "tag": "v1"})
    assert verdict["status"] == "failed", verdict
    return verdict


def test_an_image_that_failed_verification_is_not_run(api: Api, failed: dict[str, Any]) -> None:
    runs = f"/api/registries/{api.registry}/runs"
    digest = failed["digest"]
    with api.client(OPERATE, READ) as client:
        by_host = f"{api.login_server}/strict/hello@{digest}"
        for image in ("strict/hello:v1", f"strict/hello@{digest}", by_host):
            refused = client.post(runs, json={"image": image})
            message = error_of(refused, 409, "ImageFailedVerification")
            assert f"strict/hello@{digest} failed verification {failed['id']}" in message, message
            assert "policy test.1" in message
            assert refused.json()["error"]["detail"] == {
                "verification": failed["id"],
                "status": "failed",
                "policyVersion": "test.1",
            }
        # A tag or digest that is not in the registry is a 404, before anything is scheduled.
        error_of(client.post(runs, json={"image": "strict/hello:nosuchtag"}), 404, "NotFound")
        error_of(client.post(runs, json={"image": f"strict/hello@sha256:{'0' * 64}"}), 404, "NotFound")


def test_runs_refuse_images_of_other_hosts_and_bad_input(api: Api) -> None:
    runs = f"/api/registries/{api.registry}/runs"
    with api.client(OPERATE, READ) as client:
        for image in (
            "docker.io/library/busybox:latest",
            "evil.example.com/api/hello:v1",
            "localhost:5000/x:1",
        ):
            message = error_of(client.post(runs, json={"image": image}), 400, "InvalidInput")
            assert f"only images of registry '{api.registry}'" in message
        assert "names no version" in error_of(
            client.post(runs, json={"image": "api/hello"}), 400, "InvalidInput"
        )
        error_of(
            client.post(runs, json={"image": "api/hello:v1", "timeoutSeconds": 28801}), 400, "InvalidInput"
        )
        error_of(client.post(runs, json={"image": "api/hello:v1", "args": ["x" * 1025]}), 400, "InvalidInput")
        error_of(client.get(f"/api/registries/{api.registry}/runs/nosuchrun"), 404, "NotFound")
        error_of(client.get(f"/api/registries/{api.registry}/runs/bad%20id"), 400, "InvalidInput")
        builds = f"/api/registries/{api.registry}/builds"
        gz = {"content-type": "application/gzip"}
        foreign = client.post(builds, params={"image": "other.io/x:1"}, content=b"\x1f\x8b", headers=gz)
        error_of(foreign, 400, "InvalidInput")
        not_gzip = client.post(builds, params={"image": "api/x:1"}, content=b"plain text", headers=gz)
        assert "not gzip-compressed" in error_of(not_gzip, 400, "InvalidInput")


def test_retention_turned_off_answers_409(api: Api) -> None:
    off = "retention is turned off (RETENTION_ENABLED=false)"
    with api.client(OPERATE, READ) as client:
        assert error_of(client.post("/api/retention/plan"), 409, "Conflict") == off
        execute = client.post("/api/retention/execute", json={"planId": "plan-x", "confirm": True})
        assert error_of(execute, 409, "Conflict") == off


def test_cleanup_turned_off_answers_409(api: Api) -> None:
    off = "cleanup is turned off (CLEANUP_ENABLED=false)"
    with api.client(OPERATE, READ) as client:
        plan = client.post("/api/cleanup/plan", json={"filters": {"namePatterns": ["az204-*"]}})
        assert error_of(plan, 409, "Conflict") == off
        execute = client.post("/api/cleanup/execute", json={"filters": {}, "confirm": True})
        assert error_of(execute, 409, "Conflict") == off
        extend = client.post("/api/resource-groups/rg-any-lab/extend", json={"hours": 1})
        assert error_of(extend, 409, "Conflict") == off
        # Input is checked first: a caller learns what is wrong with the request either way.
        error_of(client.post("/api/cleanup/execute", json={"filters": {}}), 400, "InvalidInput")
        # Records of earlier runs stay readable; there are none here.
        error_of(client.get("/api/cleanup/runs/run-20260101T000000Z-00000000"), 404, "NotFound")


def test_key_parts_that_table_storage_refuses_are_bad_input_not_an_outage(api: Api) -> None:
    # Each would reach Table storage as a PartitionKey or RowKey it refuses (`/ \ # ?`, control
    # characters): the read would fail and the API answer 503 with Retry-After, an outage any caller
    # could cause. They are refused before any storage call.
    digest = "sha256:" + "0" * 64
    with api.client(READ) as client:
        for version in ("v/1", "v\\1", "v#1", "v?1", "v\x01", "x" * 1100):
            raw = f"{api.registry.lower()}|api/hello|{digest}|{version}"
            vid = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
            answer = client.get(f"/api/verifications/{vid}")
            assert "retry-after" not in answer.headers
            error_of(answer, 400, "InvalidInput")
        for path in ("/api/cleanup/plans/plan-20261204T120000Z-0123abcd%0A", "/api/cleanup/runs/run-1%23x"):
            answer = client.get(path)
            assert "retry-after" not in answer.headers
            error_of(answer, 400, "InvalidInput")


def test_the_anonymous_health_route_reaches_nothing_else(api: Api) -> None:
    """Issue 14 (9): a Host header carrying a path made the URL the health function gets name another
    endpoint, served without a key. The host refuses such a header (as Kestrel does), and the function
    serves /api/health whatever URL it is given (tests/unit/test_api_app.py shows that half alone)."""

    port = api.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}/api/registries?x=", f"127.0.0.1:{port}/api/openapi.json#"):
        request = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        status, reply = raw_http(api.url, request)
        assert status == 400, reply
        assert b"registries" not in reply
        assert b"openapi" not in reply
    request = f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    status, reply = raw_http(api.url, request)
    assert status == 200, reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {"status": "ok", "checks": []}


def test_the_page_is_served_without_a_key_and_reaches_no_endpoint(api: Api) -> None:
    """The operators' page (shared/web) through the host: its files without a key, with their types and
    ETags; any other path under it is the page's 404, never an endpoint; other methods are the API's."""
    with api.client(key=False) as anonymous:
        page = anonymous.get("/api/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert anonymous.get("/api/ui").content == page.content
        script = anonymous.get("/api/ui/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        again = anonymous.get("/api/ui/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")
        for path in ("/api/ui/registries", "/api/ui/openapi.json", "/api/ui/%2e%2e/registries"):
            error_of(anonymous.get(path), 404, "NotFound")
        assert anonymous.post("/api/ui/", content=b"{}").status_code == 401  # the host: no function key
