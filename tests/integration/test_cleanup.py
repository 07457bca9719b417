"""Lab cleanup against devstack with the real SDK clients: ARM groups, tags, locks, Table storage and an
Event Grid topic. Each test names its groups with its own prefix and marks its labs with a tag value of
its own (`dmtest=<marker>`, selected by ARM's `$filter`), so the tests never see each other's groups.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from azure.mgmt.resource.resources import ResourceManagementClient

from shared import container
from shared.cleanup import DELETED_EVENT
from shared.cleanup.planner import (
    BLOCKED,
    DEFERRED,
    DELETE,
    FIRST_SEEN_TAG,
    INVALID_EXPIRY,
    KEEP,
    KEPT,
    MANAGED,
    NOT_REVIEWED,
    PROTECTED,
    WARN,
    WARNED_TAG,
    iso,
    parse_time,
)
from shared.cleanup.records import DELETED, FAILED, GONE, WOULD_DELETE
from shared.errors import Conflict, InvalidInput, NotFound, Retryable
from tests.support.cleanup import LOCATION, Env
from tests.support.faults import FAULTS, admin_client, fault, hits, requests_seen
from tests.support.stack import Devstack, remove_locks, unique


def decisions(plan: Any) -> dict[str, str]:
    return {item.name: item.decision for item in plan.items}


def item_of(plan: Any, name: str) -> Any:
    return next(item for item in plan.items if item.name == name)


# Plan ---------------------------------------------------------------------------------------------------


def test_plan_explains_each_decision(env: Env) -> None:
    past, future, soon = env.at(hours=-1), env.at(days=5), env.at(hours=3)
    expired = env.create("expired", {"expiresOn": past})
    kept = env.create("kept", {"expiresOn": future})
    warned = env.create("soon", {"expiresOn": soon})
    locked = env.create("locked", {"expiresOn": past})
    env.lock(locked)
    read_only = env.create("readonly", {"expiresOn": past})
    env.lock(read_only, "ReadOnly")
    managed = env.create("managed", {"expiresOn": past}, managed_by="/subscriptions/x/providers/y/z")
    tagged = env.create("tagged", {"expiresOn": past, "Do-Not-Delete": "ask alice"})
    listed = env.create("listed", {"expiresOn": past})
    app = env.create("app", {"expiresOn": past})
    invalid = env.create("invalid", {"expiresOn": "next tuesday"})
    created = env.create("created", {"createdAt": env.at(hours=-80)})
    fresh = env.create("fresh")
    other = env.create("x")
    env.create("outsider", {"expiresOn": past}, lab=False)

    service = env.service(CLEANUP_PROTECTED_GROUPS=f"{env.prefix}list*")
    plan = service.plan()
    assert decisions(plan) == {
        expired: DELETE,
        kept: KEEP,
        warned: WARN,
        locked: BLOCKED,
        read_only: BLOCKED,
        managed: MANAGED,
        tagged: PROTECTED,
        listed: PROTECTED,
        app: PROTECTED,
        invalid: INVALID_EXPIRY,
        created: DELETE,
        fresh: KEEP,
        other: KEEP,
    }
    reasons = {item.name: item.reason for item in plan.items}
    assert reasons[expired] == f"expired {past} (tag expiresOn={past})"
    assert reasons[kept].startswith(f"expires {future}")
    assert reasons[locked].startswith("locked: keep (CanNotDelete)")
    assert reasons[read_only].startswith("locked: keep (ReadOnly)")
    assert reasons[managed] == "managed by /subscriptions/x/providers/y/z"
    assert reasons[tagged] == "protection tag 'Do-Not-Delete=ask alice'"
    assert reasons[listed] == "listed in CLEANUP_PROTECTED_GROUPS"
    assert reasons[app] == "the app's own resource group (DOCKMASTER_APP_RESOURCE_GROUP)"
    assert "next tuesday" in reasons[invalid]
    assert reasons[created].startswith(f"expired {env.at(hours=-8)} (tag createdAt=")
    assert reasons[created].endswith("plus TTL 72h)")
    assert item_of(plan, kept).expiry == parse_time(future)
    assert (plan.scanned, plan.pages) == (13, 3), "every page is read (page size 5 on the test stack)"
    # Planning deletes nothing, and the plan can be read back by its id.
    assert all(env.state(name) == "Succeeded" for name in (expired, created, locked))
    assert service.get_plan(plan.plan_id).public() == plan.public()

    narrowed = service.plan({"namePatterns": [f"{env.prefix}e*", f"{env.prefix}k*"]})
    assert set(decisions(narrowed)) == {expired, kept}


def test_one_tag_is_filtered_by_arm(env: Env) -> None:
    marker = uuid.uuid4().hex[:8]
    names = [env.create(f"t{n}", {"purpose": marker, "expiresOn": env.at(days=2)}) for n in range(7)]
    env.create("untagged", {"expiresOn": env.at(days=2)})
    plan = env.service(CLEANUP_LAB_TAG=f"purpose={marker}", CLEANUP_NAME_PATTERNS="").plan()
    assert sorted(decisions(plan)) == sorted(names)
    assert (plan.scanned, plan.pages) == (7, 2), "the server-side $filter lists only the tagged groups"


def test_relative_expiry_is_normalized_to_an_absolute_tag(env: Env) -> None:
    name = env.create("rel", {"expiresOn": "72h", "owner": "alice", "cost-center": "42"})
    plan = env.service().plan()
    expected = env.at(hours=72)
    assert item_of(plan, name).expiry == parse_time(expected)
    assert env.tags(name) == {"expiresOn": expected, "owner": "alice", "cost-center": "42"}
    assert f"stamped expiresOn={expected}" in item_of(plan, name).notes[0]
    env.clock.advance(hours=10)
    again = env.service().plan()
    assert item_of(again, name).expiry == parse_time(expected), "the clock does not restart"
    assert item_of(again, name).expiry_source == "expiry-tag"


def test_first_seen_is_stamped_and_survives(env: Env) -> None:
    name = env.create("new", {"owner": "bob"})
    service = env.service(CLEANUP_GRACE_HOURS=24)
    first = item_of(service.plan(), name)
    assert (first.decision, first.expiry_source) == (KEEP, "first-sight")
    assert env.tags(name) == {"owner": "bob", FIRST_SEEN_TAG: iso(env.now)}
    env.clock.advance(hours=25)
    later = item_of(env.service(CLEANUP_GRACE_HOURS=24).plan(), name)
    assert (later.decision, later.expiry_source) == (DELETE, "first-seen")
    assert later.expiry == env.now - dt.timedelta(hours=1)


# Execute ------------------------------------------------------------------------------------------------


def test_dry_run_deletes_nothing(env: Env) -> None:
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    run = env.service(CLEANUP_DRY_RUN=True).execute(confirm=True)
    assert run.dry_run
    assert [(o.name, o.result) for o in run.outcomes] == [(name, WOULD_DELETE)]
    assert run.deleted == []
    assert env.state(name) == "Succeeded"
    # The caller may ask for a dry run; CLEANUP_DRY_RUN=false does not make it real.
    again = env.service().execute(confirm=True, dry_run=True)
    assert (again.dry_run, again.outcomes[0].result, env.state(name)) == (True, WOULD_DELETE, "Succeeded")
    assert not env.grid.of(DELETED_EVENT)


def test_execute_deletes_only_expired_labs_without_waiting(env: Env) -> None:
    doomed = [env.create(f"old{n}", {"expiresOn": env.at(hours=-n - 1)}) for n in range(2)]
    kept = env.create("young", {"expiresOn": env.at(days=3)})
    locked = env.create("locked", {"expiresOn": env.at(hours=-1)})
    env.lock(locked)
    outsider = env.create("not-a-lab", {"expiresOn": env.at(hours=-1)}, lab=False)

    service = env.service()
    run = service.execute(confirm=True, trigger="test")
    assert sorted(run.deleted) == sorted(doomed)
    assert run.blocked == [locked]
    assert run.failed == []
    # begin_delete without waiting: the groups are Deleting when execute returns, and no poller follows.
    assert [env.state(name) for name in doomed] == ["Deleting", "Deleting"]
    assert not [t for t in threading.enumerate() if t.name.startswith("LROPoller")]
    for name in doomed:
        env.wait_gone(name)
    assert env.state(kept) == env.state(locked) == env.state(outsider) == "Succeeded"
    events = env.grid.of(DELETED_EVENT)
    assert sorted(event.subject for event in events) == sorted(doomed)
    assert events[0].data["runId"] == run.run_id
    # The record reads back as it was written.
    stored = service.get_run(run.run_id)
    assert stored.public() == run.public()
    assert stored.trigger == "test"


def test_the_cap_bounds_deletions_per_run(env: Env) -> None:
    names = [env.create(f"old{n}", {"expiresOn": env.at(hours=-n - 1)}) for n in range(4)]
    run = env.service(CLEANUP_MAX_DELETIONS=2).execute(confirm=True)
    assert sorted(run.deleted) == sorted(names[2:]), "the longest expired go first"
    assert sorted(i.name for i in run.plan.having(DEFERRED)) == sorted(names[:2])
    smaller = env.service(CLEANUP_MAX_DELETIONS=2).execute(filters={"maxDeletions": 1}, confirm=True)
    assert len(smaller.deleted) == 1, "a caller may lower the cap"
    bigger = env.service(CLEANUP_MAX_DELETIONS=0).execute(filters={"maxDeletions": 5}, confirm=True)
    assert bigger.deleted == [], "but never raise it"


def test_a_lock_added_after_the_plan_blocks(env: Env) -> None:
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    service = env.service()
    plan = service.plan()
    assert decisions(plan)[name] == DELETE
    env.lock(name)
    run = service.execute(plan.plan_id, confirm=True)
    [outcome] = run.outcomes
    assert outcome.result == BLOCKED
    assert outcome.reason.startswith("the fresh plan: blocked: locked: keep (CanNotDelete)")
    assert (run.blocked, run.failed) == ([name], [])
    assert env.state(name) == "Succeeded"


class Blind:
    """A lock client that does not see locks for its first `hidden` listings, as if they came later."""

    def __init__(self, real: Any, hidden: int) -> None:
        self.real, self.hidden = real, hidden
        self.management_locks = self

    def list_at_resource_group_level(self, name: str) -> list[Any]:
        if self.hidden > 0:
            self.hidden -= 1
            return []
        return list(self.real.management_locks.list_at_resource_group_level(name))

    def list_at_subscription_level(self) -> Any:
        if self.hidden > 0:
            self.hidden -= 1
            return SimpleNamespace(by_page=lambda: iter([[]]))
        return self.real.management_locks.list_at_subscription_level()


def registry_in(env: Env, acr_client: Any, group: str) -> str:
    """A registry created in the group: a resource its delete takes along."""
    name = unique("lab")
    body = {"location": LOCATION, "sku": {"name": "Basic"}}
    return str(acr_client.registries.begin_create(group, name, body).result().name)


@pytest.mark.parametrize("hidden", [0, 1, 2], ids=["by-the-plan", "by-the-recheck", "by-arm-at-the-delete"])
def test_a_lock_on_a_resource_in_a_lab_keeps_the_lab(env: Env, acr_client: Any, hidden: int) -> None:
    """A lock on what a group holds refuses the group's delete (ScopeLocked): the plan reads it from the
    subscription's lock listing (`blocked`, with where the lock sits), the last-moment re-check from the
    group's; one that neither saw is ARM's ScopeLocked at the delete, `blocked` too."""
    name = env.create("holds-locked", {"expiresOn": env.at(hours=-1)})
    registry = registry_in(env, acr_client, name)
    env.lock_client.management_locks.create_or_update_at_resource_level(
        name,
        "Microsoft.ContainerRegistry",
        "",
        "registries",
        registry,
        "keep-registry",
        {"level": "CanNotDelete"},
    )
    held = f"keep-registry (CanNotDelete, on Microsoft.ContainerRegistry/registries/{registry})"
    blind = Blind(env.lock_client, hidden)
    run = env.service(locks=lambda _: blind).execute(confirm=True)
    item = item_of(run.plan, name)
    if hidden == 0:
        assert (item.decision, item.reason.split("; ")[0]) == (BLOCKED, f"locked: {held}")
        assert (run.blocked, run.outcomes) == ([name], [])
    else:
        assert item.decision == DELETE, "the plan did not see the lock"
        [outcome] = run.outcomes
        assert outcome.result == BLOCKED
        if hidden == 1:
            assert outcome.reason.startswith(f"re-checked before deleting: blocked: locked: {held}")
            assert outcome.locks == (held,)
            on = f"Microsoft.ContainerRegistry/registries/{registry}"
            assert outcome.residue == (
                f"lock keep-registry (CanNotDelete) on {on} refuses the group's delete",
            )
        else:
            assert outcome.reason == "a lock appeared after the plan: ARM refused the delete (ScopeLocked)"
    assert env.state(name) == "Succeeded"
    assert registry in [r.name for r in acr_client.registries.list_by_resource_group(name)]


def test_a_deleted_lab_records_what_it_held(env: Env, acr_client: Any) -> None:
    """Right before the delete the group's resources are listed (Resources_ListByResourceGroup through
    the SDK): the run record, its event and its read-back name them; a blocked lab's record too."""
    name = env.create("holds", {"expiresOn": env.at(hours=-1)})
    registries = sorted(registry_in(env, acr_client, name) for _ in range(2))
    run = env.service().execute(confirm=True)
    [outcome] = env.service().get_run(run.run_id).outcomes
    assert outcome.result == DELETED
    assert [(h.type, h.name) for h in outcome.held] == [
        ("Microsoft.ContainerRegistry/registries", r) for r in registries
    ]
    assert outcome.held[0].id.endswith(
        f"/resourceGroups/{name}/providers/Microsoft.ContainerRegistry/registries/{registries[0]}"
    )
    assert (outcome.summary(), outcome.locks, outcome.residue) == (
        {"Microsoft.ContainerRegistry/registries": 2},
        (),
        (),
    )
    [event] = [e for e in env.grid.of(DELETED_EVENT) if e.subject == name]
    assert event.data["heldByType"] == {"Microsoft.ContainerRegistry/registries": 2}


def test_a_plan_reads_pages_not_one_lock_listing_per_candidate(env: Env) -> None:
    """ARM requests of a plan = group pages + lock pages, however many labs are candidates; a throttled
    lock page (429) is retried after ARM's Retry-After instead of failing the plan or counting as none."""
    names = [env.create(f"stale-{n}", {"expiresOn": env.at(hours=-1)}) for n in range(6)]
    env.lock(names[0])
    service = env.service(CLEANUP_DRY_RUN=True)
    service.plan()  # first sight: stamps written, tokens cached
    lock_pages = sum(1 for _ in env.lock_client.management_locks.list_at_subscription_level().by_page())
    path = f"/subscriptions/{env.devstack.subscription}/providers/Microsoft.Authorization/locks$"
    with admin_client(env.devstack) as admin:
        before = requests_seen(admin)["arm"]
        plan = service.plan()
        sent = requests_seen(admin)["arm"] - before
        rule = fault(admin, target="arm", kind="throttle", method="GET", path=path, count=1, retry_after=1)
        throttled = service.plan()
        assert hits(admin, rule) == 1
    assert decisions(plan) == decisions(throttled) == {names[0]: BLOCKED, **dict.fromkeys(names[1:], DELETE)}
    assert sent == plan.pages + lock_pages, "no request per candidate"


def test_the_subscriptions_are_planned_together_with_their_own_locks(env: Env, credential: Any) -> None:
    """CLEANUP_SUBSCRIPTIONS: each subscription's groups and locks are read (concurrently) and a lock
    counts only in its own subscription; a lock on a subscription keeps every lab in it."""
    from azure.mgmt.resource.locks import ManagementLockClient
    from azure.mgmt.resource.locks.models import ManagementLockObject

    subscriptions = [str(s) for s in env.devstack.endpoints["subscriptionIds"]]
    assert len(subscriptions) >= 3
    kwargs = env.devstack.arm_kwargs()
    resources = {s: ResourceManagementClient(credential, s, **kwargs) for s in subscriptions}
    locks = {s: ManagementLockClient(credential, s, **kwargs) for s in subscriptions}
    first, second, third = subscriptions[:3]
    name = env.prefix + "everywhere"
    body = {"location": LOCATION, "tags": {"dmtest": env.marker, "expiresOn": env.at(hours=-1)}}
    for sub in (first, second, third):
        resources[sub].resource_groups.create_or_update(name, body)
    env.created.append(name)
    locks[second].management_locks.create_or_update_at_resource_group_level(
        name, "keep", ManagementLockObject(level="ReadOnly")
    )
    sub_lock = env.prefix + "sub-wide"
    locks[third].management_locks.create_or_update_at_subscription_level(
        sub_lock, ManagementLockObject(level="CanNotDelete")
    )
    try:
        service = env.service(
            resources=resources.__getitem__,
            locks=locks.__getitem__,
            CLEANUP_SUBSCRIPTIONS=",".join(subscriptions[:3]),
        )
        plan = service.plan()
        found = {item.subscription: item for item in plan.items if item.name == name}
        assert {sub: item.decision for sub, item in found.items()} == {
            first: DELETE,
            second: BLOCKED,
            third: BLOCKED,
        }
        assert found[second].reason.startswith("locked: keep (ReadOnly)")
        assert found[third].reason.startswith(f"locked: {sub_lock} (CanNotDelete, on the subscription)")
    finally:
        locks[third].management_locks.delete_at_subscription_level(sub_lock)
        for sub in (second, third):
            remove_locks(locks[sub], name)
            resources[sub].resource_groups.begin_delete(name, polling=False)


def test_a_lock_the_recheck_missed_is_blocked_not_failed(env: Env) -> None:
    """ARM's 409 ScopeLocked at begin_delete (a lock newer than the last look) is `blocked`."""
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    env.lock(name)

    blind = Blind(env.lock_client, hidden=2)
    run = env.service(locks=lambda _: blind).execute(confirm=True)
    [outcome] = run.outcomes
    assert outcome.result == BLOCKED
    assert "ScopeLocked" in outcome.reason
    assert env.state(name) == "Succeeded"


def test_the_last_moment_recheck_sees_a_new_lock(env: Env) -> None:
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    env.lock(name)
    blind = Blind(env.lock_client, hidden=1)
    run = env.service(locks=lambda _: blind).execute(confirm=True)
    assert decisions(run.plan)[name] == DELETE, "the plan did not see the lock"
    [outcome] = run.outcomes
    assert outcome.result == BLOCKED
    assert outcome.reason.startswith("re-checked before deleting: blocked: locked: keep (CanNotDelete)")
    assert env.state(name) == "Succeeded"


def test_a_transient_delete_failure_is_recorded_then_retried(
    env: Env, devstack: Devstack, credential: Any
) -> None:
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    impatient = ResourceManagementClient(
        credential, devstack.subscription, retry_total=0, **devstack.arm_kwargs()
    )
    with admin_client(devstack) as faults:
        fault(faults, target="arm", kind="error", status=503, method="DELETE", path=f"/{name}$", count=None)
        try:
            with pytest.raises(Retryable) as caught:
                env.service(resources=lambda _: impatient).execute(confirm=True)
        finally:
            faults.delete(FAULTS)
    run_id = caught.value.detail["runId"]  # type: ignore[index]
    stored = env.service().get_run(run_id)
    [outcome] = stored.outcomes
    assert (outcome.name, outcome.result, outcome.transient) == (name, FAILED, True)
    assert "503" in outcome.reason
    assert env.state(name) == "Succeeded"
    assert env.service().execute(confirm=True).deleted == [name], "the next run deletes it"


def test_execute_a_reviewed_plan_intersects_with_a_fresh_one(env: Env) -> None:
    first = env.create("a", {"expiresOn": env.at(hours=-2)})
    second = env.create("b", {"expiresOn": env.at(hours=-2)})
    young = env.create("c", {"expiresOn": env.at(days=2)})
    service = env.service()
    reviewed = service.plan()
    assert decisions(reviewed) == {first: DELETE, second: DELETE, young: KEEP}
    # After the review: b gets a protection tag, d appears already expired.
    env.groups.update(second, {"tags": {**env.groups.get(second).tags, "do-not-delete": "yes"}})
    late = env.create("d", {"expiresOn": env.at(hours=-2)})
    run = service.execute(reviewed.plan_id, confirm=True)
    results = {o.name: o.result for o in run.outcomes}
    assert results == {first: DELETED, second: KEPT, late: NOT_REVIEWED}
    assert run.reviewed_plan_id == reviewed.plan_id
    assert run.plan.plan_id != reviewed.plan_id
    assert env.state(late) == env.state(second) == env.state(young) == "Succeeded"
    # Executed again: the first is Deleting or gone, nothing else is touched.
    again = service.execute(reviewed.plan_id, confirm=True)
    assert {o.name: o.result for o in again.outcomes}.get(first) in (KEPT, GONE, None)
    assert again.deleted == []


def test_execute_refuses_without_confirmation_or_with_both_inputs(env: Env) -> None:
    service = env.service()
    with pytest.raises(InvalidInput, match="confirm"):
        service.execute(confirm=False)
    with pytest.raises(InvalidInput, match="not both"):
        service.execute("plan-20260101T000000Z-00000000", {"maxDeletions": 1}, confirm=True)
    with pytest.raises(NotFound):
        service.execute("plan-20260101T000000Z-00000000", confirm=True)
    with pytest.raises(InvalidInput):
        service.execute("not-a-plan", confirm=True)
    with pytest.raises(InvalidInput, match="not configured"):
        service.plan({"subscriptions": ["11111111-1111-1111-1111-111111111111"]})
    with pytest.raises(InvalidInput, match="unknown filters"):
        service.plan({"everything": True})
    with pytest.raises(NotFound):
        service.get_run("run-20260101T000000Z-00000000")


def test_an_old_plan_must_be_made_again(env: Env) -> None:
    env.create("a", {"expiresOn": env.at(hours=-2)})
    service = env.service()
    plan = service.plan()
    env.clock.advance(hours=25)
    with pytest.raises(Conflict, match="make a new plan"):
        service.execute(plan.plan_id, confirm=True)


def test_cleanup_off_does_nothing(env: Env) -> None:
    env.create("a", {"expiresOn": env.at(hours=-2)})
    service = env.service(CLEANUP_ENABLED=False)
    with pytest.raises(Conflict, match="CLEANUP_ENABLED"):
        service.execute(confirm=True)
    with pytest.raises(Conflict):
        service.plan()


def test_an_arm_outage_is_retryable_and_changes_nothing(env: Env, credential: Any) -> None:
    name = env.create("a", {"expiresOn": env.at(hours=-2)})
    scopes = env.devstack.arm_kwargs()["credential_scopes"]
    unreachable = ResourceManagementClient(
        credential, env.devstack.subscription, base_url="https://127.0.0.1:9", credential_scopes=scopes
    )
    with pytest.raises(Retryable, match="unreachable"):
        env.service(resources=lambda _: unreachable).execute(confirm=True)
    assert env.state(name) == "Succeeded"


# Extend -------------------------------------------------------------------------------------------------


def test_extend_within_and_beyond_the_maximum(env: Env) -> None:
    soon = env.at(hours=2)
    name = env.create("lab", {"expiresOn": soon, "owner": "carol"})
    service = env.service(CLEANUP_MAX_EXTENSION_HOURS=168)
    extended = service.extend(name, 24)
    assert iso(extended) == env.at(hours=26)
    assert env.tags(name) == {"expiresOn": env.at(hours=26), "owner": "carol"}
    assert item_of(service.plan(), name).expiry == extended
    with pytest.raises(InvalidInput, match=r"beyond the maximum of 168h.*at most 142.0h"):
        service.extend(name, 143)
    assert iso(service.extend(name, 142)) == env.at(hours=168)
    # An expired lab is extended from now.
    late = env.create("late", {"expiresOn": env.at(hours=-5)})
    assert iso(service.extend(late, 1)) == env.at(hours=1)
    with pytest.raises(InvalidInput, match="positive"):
        service.extend(name, 0)
    with pytest.raises(NotFound):
        service.extend(env.prefix + "missing", 1)
    outsider = env.create("not-a-lab", lab=False)
    with pytest.raises(InvalidInput, match="not a lab"):
        service.extend(outsider, 1)
    env.lock(late, "ReadOnly")
    with pytest.raises(Conflict, match="ReadOnly"):
        service.extend(late, 1)


# Warnings through a real Event Grid topic ---------------------------------------------------------------


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
def topic(devstack: Devstack, credential: Any, resource_client: Any) -> Iterator[Any]:
    from azure.mgmt.eventgrid import EventGridManagementClient

    grid: Any = EventGridManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())
    group = unique("rg-cleanup-events-")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    created = grid.topics.begin_create_or_update(
        group, unique("cleanup-"), {"location": LOCATION, "input_schema": "CloudEventSchemaV1_0"}
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


def test_a_warning_is_published_once_per_lab_and_expiry(env: Env, topic: Any, credential: Any) -> None:
    from azure.eventgrid import EventGridPublisherClient

    created, receiver = topic
    receiver.events.clear()
    name = env.create("soon", {"expiresOn": env.at(hours=2)})
    env.create("later", {"expiresOn": env.at(days=3)})
    publisher = EventGridPublisherClient(created.endpoint, credential)
    service = env.service(publisher=publisher)
    plan = service.plan()
    assert decisions(plan)[name] == WARN
    assert "warning published" in item_of(plan, name).notes[-1]
    [event] = receiver.wait(1)
    assert (event["type"], event["subject"], event["data"]["expiry"]) == (
        "Dockmaster.Cleanup.Warning",
        name,
        env.at(hours=2),
    )
    assert event["source"].endswith(f"/resourceGroups/{name}")
    assert env.tags(name)[WARNED_TAG] == env.at(hours=2)
    service.plan()
    service.execute(confirm=True)
    time.sleep(1)
    assert len(receiver.events) == 1, "one warning per lab and expiry"
    service.extend(name, 1)
    service.plan()
    second = receiver.wait(2)[1]
    assert second["data"]["expiry"] == env.at(hours=3), "a new expiry is a new warning"
    time.sleep(0.5)
    assert len(receiver.events) == 2


def test_the_service_factory_reads_the_settings(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    name = env.create("expired", {"expiresOn": env.at(hours=-1)})
    for key, value in {
        "AZURE_SUBSCRIPTION_ID": env.devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": env.devstack.arm,
        "AzureWebJobsStorage": env.devstack.endpoints["storageConnectionString"],
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "CLEANUP_ENABLED": "true",
        "CLEANUP_LAB_TAG": "",
        "CLEANUP_NAME_PATTERNS": f"{env.prefix}*",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CLEANUP_DRY_RUN", raising=False)
    container.reset()
    try:
        run = container.get_container().cleanup.execute(confirm=True)
        assert run.dry_run, "CLEANUP_DRY_RUN defaults to true"
        assert [(o.name, o.result) for o in run.outcomes] == [(name, WOULD_DELETE)]
        assert container.get_container().cleanup.get_run(run.run_id).run_id == run.run_id
    finally:
        container.reset()


def test_the_group_of_a_configured_registry_is_never_deleted(
    env: Env, acr_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the sample settings: the verified registry sits in a group the lab pattern matches
    # (az204-acr-rg under az204-*), long expired, cleanup on and for real, through the service the timer
    # builds from the settings.
    held = env.create("az204-acr-rg", {"expiresOn": env.at(days=-30)}, lab=False)
    lab = env.create("az204-lab1", {"expiresOn": env.at(hours=-1)}, lab=False)
    created = acr_client.registries.begin_create(
        held, unique("cleanupacr"), {"location": LOCATION, "sku": {"name": "Basic"}}
    ).result()
    # ARM ignores the case of subscription ids and group names; the setting may spell them either way.
    spelled = created.id.replace(env.devstack.subscription, env.devstack.subscription.upper())
    spelled = spelled.replace(f"/resourceGroups/{held}/", f"/resourceGroups/{held.upper()}/")
    for key, value in {
        "AZURE_SUBSCRIPTION_ID": env.devstack.subscription,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": env.devstack.arm,
        "AzureWebJobsStorage": env.devstack.endpoints["storageConnectionString"],
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_REGISTRIES": spelled,
        "CLEANUP_ENABLED": "true",
        "CLEANUP_DRY_RUN": "false",
        "CLEANUP_LAB_TAG": "",
        "CLEANUP_NAME_PATTERNS": f"{env.prefix}az204-*",
    }.items():
        monkeypatch.setenv(key, value)
    container.reset()
    try:
        run = container.get_container().cleanup.execute(confirm=True, trigger="timer")
    finally:
        container.reset()
    assert not run.dry_run
    protected = item_of(run.plan, held)
    assert (protected.decision, protected.reason) == (
        PROTECTED,
        f"holds the configured registry {created.name} (DOCKMASTER_REGISTRIES)",
    )
    assert [(o.name, o.result) for o in run.outcomes] == [(lab, DELETED)], "the run is for real"
    assert env.state(held) == "Succeeded"
    assert acr_client.registries.get(held, created.name).provisioning_state == "Succeeded"
    assert env.tags(held) == {"expiresOn": env.at(days=-30)}, "nothing stamped on it either"
