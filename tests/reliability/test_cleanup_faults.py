"""Cleanup under ARM faults, with the app's own client options (bounded retries, Retry-After honoured).

Throttling and dropped connections are waited out and the run does what a clean run would; an ARM
that keeps failing costs a bounded number of attempts per request, then the run records the failure
as worth retrying and the next run deletes the lab.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.resources import ResourceManagementClient

from shared.cleanup import CleanupService
from shared.cleanup.records import DELETED, FAILED
from shared.clients import RETRIES, arm_options
from shared.errors import AccessDenied, DockmasterError, Retryable
from tests.support.cleanup import Env
from tests.support.faults import FAULTS, admin_client, fault, hits
from tests.support.stack import Devstack


class Faults:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def add(self, **rule: Any) -> str:
        return str(fault(self.client, **rule)["id"])

    def hits(self, rule_id: str) -> int:
        return hits(self.client, {"id": rule_id})


@pytest.fixture
def faults(devstack: Devstack) -> Iterator[Faults]:
    with admin_client(devstack) as client:
        yield Faults(client)
        client.delete(FAULTS)


def app_service(env: Env, credential: Any) -> CleanupService:
    """The service with ARM clients built as shared/clients.py builds them."""
    options = arm_options(env.settings())
    groups = ResourceManagementClient(credential, env.devstack.subscription, **options)
    locks = ManagementLockClient(credential, env.devstack.subscription, **options)
    return env.service(resources=lambda _: groups, locks=lambda _: locks)


def test_throttling_and_drops_during_a_run_are_waited_out(env: Env, faults: Faults, credential: Any) -> None:
    expired = [env.create(f"old{i}", {"expiresOn": env.at(hours=-1)}) for i in range(2)]
    kept = env.create("new", {"expiresOn": env.at(days=3)})
    listing = faults.add(
        target="arm", kind="throttle", method="GET", path="/resourcegroups$", retry_after=1, count=1
    )
    locks = faults.add(target="arm", kind="drop", method="GET", path=f"/{expired[0]}/providers/", count=1)
    deletes = faults.add(
        target="arm", kind="throttle", method="DELETE", path=f"/{env.prefix}", retry_after=1, count=2
    )
    started = time.monotonic()
    run = app_service(env, credential).execute(confirm=True)
    assert time.monotonic() - started >= 1, "Retry-After was not waited out"
    assert sorted(run.deleted) == sorted(expired)
    assert [faults.hits(rule) for rule in (listing, locks, deletes)] == [1, 1, 2]
    assert env.state(kept) == "Succeeded"


def test_an_arm_that_keeps_failing_costs_bounded_attempts_then_the_next_run(
    env: Env, faults: Faults, credential: Any
) -> None:
    failing = env.create("failing", {"expiresOn": env.at(hours=-1)})
    other = env.create("other", {"expiresOn": env.at(hours=-1)})
    outage = faults.add(
        target="arm", kind="error", status=503, method="DELETE", path=f"/{failing}$", count=None
    )
    service = app_service(env, credential)
    with pytest.raises(Retryable) as caught:
        service.execute(confirm=True)
    assert faults.hits(outage) == 1 + RETRIES["retry_total"], "one request, then the bounded retries"
    run = service.get_run(caught.value.detail["runId"])  # type: ignore[index]
    results = {outcome.name: (outcome.result, outcome.transient) for outcome in run.outcomes}
    assert results == {failing: (FAILED, True), other: (DELETED, False)}
    faults.client.delete(f"{FAULTS}/{outage}")
    assert service.execute(confirm=True).deleted == [failing], "the next run deletes it"


@pytest.mark.parametrize(
    ("operation", "answer", "error"),
    [
        (("GET", "/resourcegroups$"), "throttle", Retryable),
        (("GET", "/resourcegroups$"), 403, AccessDenied),
        (("GET", "/providers/Microsoft.Authorization/locks$"), 503, Retryable),
    ],
    ids=["listing-429", "listing-403", "locks-503"],
)
def test_a_run_that_cannot_plan_is_recorded_with_why(
    env: Env,
    faults: Faults,
    credential: Any,
    operation: tuple[str, str],
    answer: str | int,
    error: type[DockmasterError],
) -> None:
    expired = env.create("expired", {"expiresOn": env.at(hours=-1)})
    method, path = operation
    kind = (
        {"kind": "throttle", "retry_after": 0}
        if answer == "throttle"
        else {"kind": "error", "status": answer}
    )
    faults.add(target="arm", method=method, path=path, count=None, **kind)
    service = app_service(env, credential)
    with pytest.raises(error) as caught:
        service.execute(confirm=True, trigger="timer")
    faults.client.delete(FAULTS)
    run = service.get_run(caught.value.detail["runId"])  # type: ignore[index]
    assert run.trigger == "timer"
    assert run.finished_at is not None
    assert run.error is not None
    assert caught.value.message in run.error
    assert (run.plan.items, run.outcomes) == ([], []), "nothing planned, nothing done"
    if answer == 403:
        assert "cleanup-role.bicep" in run.error, "the refusal names the missing role"
    assert env.state(expired) == "Succeeded"


def test_a_delete_refused_to_the_app_is_a_failure_naming_the_role(
    env: Env, faults: Faults, credential: Any
) -> None:
    refused = env.create("refused", {"expiresOn": env.at(hours=-1)})
    faults.add(target="arm", kind="error", status=403, method="DELETE", path=f"/{refused}$", count=None)
    run = app_service(env, credential).execute(confirm=True)
    [outcome] = run.outcomes
    assert (outcome.name, outcome.result, outcome.transient) == (refused, FAILED, False)
    assert "AuthorizationFailed" in outcome.reason
    assert "cleanup-role.bicep" in outcome.reason
    assert env.state(refused) == "Succeeded"
