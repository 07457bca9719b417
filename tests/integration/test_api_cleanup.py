"""Lab cleanup through the HTTP API: function_app on the real local Functions host, against the session
devstack, with cleanup turned on for real (CLEANUP_DRY_RUN=false).

The host selects labs by a tag value of this module's own (`dmtest=<marker>`, filtered by ARM), and each
test narrows its calls to its own name prefix (`namePatterns`), so no test sees another's groups. Groups
are made with the session's SDK clients, as a person would make a lab. Cleanup turned off (409) is checked
on test_api.py's host, where CLEANUP_ENABLED is left at its default.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.api.auth import OPERATE, READ
from shared.cleanup.planner import iso
from tests.support.api import Api, error_of, local_host
from tests.support.cleanup import MARK, Env
from tests.support.stack import Devstack

MAX_EXTENSION_HOURS = 48


@pytest.fixture(scope="module")
def marker() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def api(devstack: Devstack, marker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = {
        "DOCKMASTER_REGISTRIES": "",
        "DOCKMASTER_RUNS_QUEUE": f"api-cleanup-runs-{marker}",  # the queue trigger needs one
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_API_ROLES": "true",
        "CLEANUP_ENABLED": "true",
        "CLEANUP_DRY_RUN": "false",
        "CLEANUP_LAB_TAG": f"{MARK}={marker}",
        "CLEANUP_NAME_PATTERNS": "",
        "CLEANUP_WARNING_HOURS": "12",
        "CLEANUP_MAX_EXTENSION_HOURS": str(MAX_EXTENSION_HOURS),
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",  # yearly: the timer must not clean up while the tests run
    }
    with local_host(devstack, tmp_path_factory.mktemp("api-cleanup-host"), settings) as (url, key, log):
        yield Api(url, key, registry="", login_server="", log_path=log)


@pytest.fixture
def labs(devstack: Devstack, resource_client: Any, lock_client: Any, marker: str) -> Iterator[Env]:
    """This test's groups (its own prefix), labs by the host's marker tag; deleted, locks first, after."""
    made = Env(devstack, resource_client, lock_client)
    made.marker = marker
    yield made
    made.cleanup()


def own(labs: Env) -> dict[str, Any]:
    return {"namePatterns": [f"{labs.prefix}*"]}


def plan_of(client: httpx.Client, labs: Env) -> dict[str, Any]:
    answer = client.post("/api/cleanup/plan", json={"filters": own(labs)})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_plan_explains_each_decision_and_reads_back(api: Api, labs: Env) -> None:
    past, future, soon = labs.at(hours=-1), labs.at(days=5), labs.at(hours=3)
    expired = labs.create("expired", {"expiresOn": past})
    locked = labs.create("locked", {"expiresOn": past})
    labs.lock(locked)
    kept = labs.create("kept", {"expiresOn": future})
    warned = labs.create("soon", {"expiresOn": soon})
    relative = labs.create("relative", {"expiresOn": "3d", "owner": "erin"})
    tagged = labs.create("tagged", {"expiresOn": past, "do-not-delete": "ask erin"})
    managed = labs.create("managed", {"expiresOn": past}, managed_by="/subscriptions/x/providers/y/z")
    invalid = labs.create("invalid", {"expiresOn": "someday"})
    outsider = labs.create("outsider", {"expiresOn": past}, lab=False)

    with api.client(OPERATE, READ) as client:
        plan = plan_of(client, labs)
        groups = {group["name"]: group for group in plan["groups"]}
        assert {name: group["decision"] for name, group in groups.items()} == {
            expired: "delete",
            locked: "blocked",
            kept: "keep",
            warned: "warn",
            relative: "keep",
            tagged: "protected",
            managed: "managed",
            invalid: "invalid-expiry",
        }, "every lab with a decision; the group without the marker tag is not a lab"
        assert groups[expired]["reason"] == f"expired {past} (tag expiresOn={past})"
        assert groups[locked]["reason"].startswith("locked: keep (CanNotDelete)")
        assert groups[tagged]["reason"] == "protection tag 'do-not-delete=ask erin'"
        assert groups[managed]["reason"] == "managed by /subscriptions/x/providers/y/z"
        assert "someday" in groups[invalid]["reason"]
        assert groups[warned]["expiry"] == soon
        assert "no events topic" in groups[warned]["notes"][-1]
        assert (plan["dryRun"], plan["filters"]["namePatterns"]) == (False, [f"{labs.prefix}*"])
        assert plan["counts"]["delete"] == 1
        # First sight: the relative expiry is made absolute on the group itself.
        normalized = groups[relative]["expiry"]
        assert groups[relative]["expirySource"] == "relative"
        assert f"stamped expiresOn={normalized}" in groups[relative]["notes"][0]
        assert labs.tags(relative) == {"expiresOn": normalized, "owner": "erin"}
        # A plan deletes nothing, and reads back by its id as it was answered.
        assert all(labs.state(name) == "Succeeded" for name in (expired, tagged, managed, outsider))
        again = client.get(f"/api/cleanup/plans/{plan['planId']}")
        assert (again.status_code, again.json()) == (200, plan)
        error_of(client.get("/api/cleanup/plans/plan-20260101T000000Z-00000000"), 404, "NotFound")
        assert "not a cleanup plan id" in error_of(client.get("/api/cleanup/plans/p1"), 400, "InvalidInput")


def test_execute_with_confirm_deletes_the_expired_lab_only(api: Api, labs: Env) -> None:
    expired = labs.create("expired", {"expiresOn": labs.at(hours=-1)})
    locked = labs.create("locked", {"expiresOn": labs.at(hours=-1)})
    labs.lock(locked)
    kept = labs.create("kept", {"expiresOn": labs.at(days=2)})
    outsider = labs.create("outsider", {"expiresOn": labs.at(hours=-1)}, lab=False)

    with api.client(OPERATE, READ) as client:
        plan = plan_of(client, labs)
        execute = "/api/cleanup/execute"
        for refused in ({"planId": plan["planId"]}, {"planId": plan["planId"], "confirm": False}):
            assert "confirm" in error_of(client.post(execute, json=refused), 400, "InvalidInput")
        dry = client.post(execute, json={"filters": own(labs), "confirm": True, "dryRun": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["dryRun"] is True
        assert [(o["name"], o["result"]) for o in dry.json()["outcomes"]] == [(expired, "would-delete")]
        assert labs.state(expired) == "Succeeded"

        answer = client.post(execute, json={"planId": plan["planId"], "confirm": True})
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert (run["deleted"], run["blocked"], run["failed"]) == ([expired], [locked], [])
        assert (run["trigger"], run["dryRun"], run["reviewedPlanId"]) == ("api", False, plan["planId"])
        assert run["planId"] != plan["planId"], "execution plans afresh"
        [outcome] = run["outcomes"]
        reason = next(group["reason"] for group in plan["groups"] if group["name"] == expired)
        assert (outcome["name"], outcome["result"]) == (expired, "deleted")
        assert outcome["reason"] == f"delete accepted: {reason}"
        labs.wait_gone(expired)
        assert labs.state(locked) == labs.state(kept) == labs.state(outsider) == "Succeeded"

        stored = client.get(f"/api/cleanup/runs/{run['runId']}")
        assert (stored.status_code, stored.json()) == (200, run)
        error_of(client.get("/api/cleanup/runs/run-20260101T000000Z-00000000"), 404, "NotFound")
        error_of(client.get("/api/cleanup/runs/bad-id"), 400, "InvalidInput")


def test_extend_within_and_beyond_the_maximum(api: Api, labs: Env) -> None:
    soon = labs.at(hours=2)
    lab = labs.create("lab", {"expiresOn": soon, "owner": "dana"})
    outsider = labs.create("outsider", lab=False)
    extend = f"/api/resource-groups/{lab}/extend"

    with api.client(OPERATE) as client:
        answer = client.post(extend, json={"hours": 24})
        assert answer.status_code == 200, answer.text
        expected = iso(dt.datetime.fromisoformat(soon) + dt.timedelta(hours=24))
        assert answer.json() == {"name": lab, "hours": 24.0, "expiry": expected}
        assert labs.tags(lab) == {"expiresOn": expected, "owner": "dana"}, "only the expiry tag changes"

        beyond = error_of(client.post(extend, json={"hours": 30}), 400, "InvalidInput")
        assert f"beyond the maximum of {MAX_EXTENSION_HOURS}h" in beyond
        assert "CLEANUP_MAX_EXTENSION_HOURS" in beyond
        assert labs.tags(lab)["expiresOn"] == expected
        further = client.post(extend, json={"hours": 20})
        assert further.status_code == 200, further.text
        assert further.json()["expiry"] == iso(dt.datetime.fromisoformat(expected) + dt.timedelta(hours=20))

        missing = client.post(f"/api/resource-groups/{labs.prefix}missing/extend", json={"hours": 1})
        error_of(missing, 404, "NotFound")
        not_a_lab = client.post(f"/api/resource-groups/{outsider}/extend", json={"hours": 1})
        assert "not a lab" in error_of(not_a_lab, 400, "InvalidInput")
        bad_name = client.post(f"/api/resource-groups/{lab}./extend", json={"hours": 1})
        assert "not a resource group name" in error_of(bad_name, 400, "InvalidInput")
        error_of(client.post(extend, json={"hours": 0}), 400, "InvalidInput")
        labs.lock(lab, "ReadOnly")
        assert "ReadOnly" in error_of(client.post(extend, json={"hours": 1}), 409, "Conflict")


def test_extend_never_brings_a_deletion_closer(api: Api, labs: Env) -> None:
    # Issue 14 (10): a lab whose expiry does not parse is never deleted ("Dockmaster does not guess");
    # extend read the missing expiry as now, so a tiny extension made it `delete`. Such labs, and
    # protected ones, are refused with the reason the plan gives, and nothing is written.
    unparsable = labs.create("unparsable", {"expiresOn": "next tuesday"})
    past = labs.at(hours=-1)
    protected = labs.create("protected", {"expiresOn": past, "do-not-delete": "yes"})
    with api.client(OPERATE) as client:
        answer = client.post(f"/api/resource-groups/{unparsable}/extend", json={"hours": 0.001})
        message = error_of(answer, 409, "Conflict")
        assert "cleanup never deletes it (invalid-expiry: tag expiresOn='next tuesday'" in message, message
        answer = client.post(f"/api/resource-groups/{protected}/extend", json={"hours": 0.001})
        message = error_of(answer, 409, "Conflict")
        assert "cleanup never deletes it (protected: protection tag 'do-not-delete=yes')" in message, message
        assert labs.tags(unparsable) == {"expiresOn": "next tuesday"}
        assert labs.tags(protected) == {"expiresOn": past, "do-not-delete": "yes"}
        items = {item["name"]: item["decision"] for item in plan_of(client, labs)["groups"]}
        assert items[unparsable] == "invalid-expiry"
        assert items[protected] == "protected"


def test_cleanup_roles(api: Api, labs: Env) -> None:
    with api.client(READ) as reader:
        error_of(reader.post("/api/cleanup/plan", json={"filters": own(labs)}), 403, "Forbidden")
        error_of(reader.post("/api/resource-groups/any/extend", json={"hours": 1}), 403, "Forbidden")
    with api.client(OPERATE) as operator:
        plan = plan_of(operator, labs)
        error_of(operator.get(f"/api/cleanup/plans/{plan['planId']}"), 403, "Forbidden")
    with api.client(READ) as reader:
        assert reader.get(f"/api/cleanup/plans/{plan['planId']}").status_code == 200


def test_plans_and_runs_are_listed_newest_first_a_page_at_a_time(api: Api, labs: Env) -> None:
    """The log-tail index in Azurite: every stored plan and run listed once, newest first, across pages."""
    labs.create("listed", {"expiresOn": labs.at(days=5)})
    with api.client(OPERATE, READ) as client:
        made = [plan_of(client, labs)["planId"] for _ in range(5)]
        executed = client.post(
            "/api/cleanup/execute", json={"planId": made[-1], "confirm": True, "dryRun": True}
        )
        assert executed.status_code == 200, executed.text
        run = executed.json()

        listed: list[dict[str, Any]] = []
        url: str | None = "/api/cleanup/plans?top=2"
        while url and len(listed) < 8:
            page = client.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["plans"]) <= 2
            assert body["enabled"] is True
            if body["nextLink"]:
                assert page.headers["link"] == f'<{body["nextLink"]}>; rel="next"'
            listed += body["plans"]
            url = body["nextLink"]
        ids = [plan["planId"] for plan in listed]
        assert len(ids) == len(set(ids)), "no plan twice across pages"
        # The execution planned afresh: its plan is the newest, then this test's, newest first.
        assert ids[:6] == [run["planId"], *reversed(made)]
        times = [plan["createdAt"] for plan in listed]
        assert times == sorted(times, reverse=True)
        assert listed[1]["filters"]["namePatterns"] == [f"{labs.prefix}*"]

        runs = client.get("/api/cleanup/runs", params={"top": 1}).json()
        assert [r["runId"] for r in runs["runs"]] == [run["runId"]]
        assert runs["runs"][0]["planId"] == run["planId"]
        assert runs["runs"][0]["reviewedPlanId"] == made[-1]
        assert runs["runs"][0]["finishedAt"] is not None
        assert runs["runs"][0]["dryRun"] is True

        for bad in ({"top": 0}, {"top": 101}, {"continuation": "e30"}):
            error_of(client.get("/api/cleanup/plans", params=bad), 400, "InvalidInput")
