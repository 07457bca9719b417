"""Azure throttling, failing or refusing each operation of a verification, through the Functions host.

The app runs on the local host; devstack answers one Azure operation with 429, 503, 403 or 400 until the
test removes the fault. Whatever the answer, the push must end with a final verdict once Azure answers
again, with no help: Event Grid's redelivery (the invocation failed) or the app's own follow-up (a run
it could not read is looked at again later). A verdict left `pending` or `running` with nothing to come
is what this module exists to catch. A request Azure refuses as such (400) ends the verdict with why.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError

from tests.support.e2e import App, local_image, push
from tests.support.faults import FAULTS
from tests.support.faults import fault as add_fault
from tests.support.faults import hits as hits_of


def fault(admin: httpx.Client, **rule: Any) -> dict[str, Any]:
    """Until removed, and answering at once (no Retry-After wait): the test removes it when it has seen
    what it waits for."""
    return add_fault(admin, **{"count": None, "retry_after": 0, **rule})


def wait_hits(admin: httpx.Client, rule: dict[str, Any], at_least: int, timeout: float = 60) -> int:
    """Waits until the faulty operation was tried `at_least` times: more than one invocation's worth
    shows that a redelivery or a follow-up came after the first one failed."""
    deadline = time.monotonic() + timeout
    while True:
        hits = hits_of(admin, rule)
        if hits >= at_least:
            return hits
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{rule['method']} {rule['path']} tried {hits} times in {timeout}s, expected {at_least}: "
                "the failure was acknowledged and nothing came after it"
            )
        time.sleep(0.1)


def host_log(app: App) -> str:
    logs = Path(app.devstack.home) / "logs"
    return "\n".join(p.read_text(errors="replace") for p in logs.glob("host-*.log"))


def registry_path(app: App, operation: str) -> str:
    return f"/registries/{app.registry.name}/{operation}"


# (method, path after the registry, hits of one invocation: 1 + the SDK's 3 retries, none for a 403/400)
SCHEDULE = ("POST", "scheduleRun$")
RUN_GET = ("GET", "runs/[^/]+$")
LOG_LINK = ("POST", "runs/[^/]+/listLogSasUrl$")


@pytest.mark.parametrize(
    ("operation", "answer"),
    [
        (SCHEDULE, "throttle"),
        (SCHEDULE, 503),
        (SCHEDULE, 403),
        (RUN_GET, "throttle"),
        (RUN_GET, 403),
        (LOG_LINK, "throttle"),
    ],
    ids=["schedule-429", "schedule-503", "schedule-403", "run-get-429", "run-get-403", "log-link-429"],
)
def test_a_failing_tasks_operation_never_strands_the_verdict(
    app: App, admin: httpx.Client, hello_context: Path, operation: tuple[str, str], answer: str | int
) -> None:
    method, path = operation
    kind = {"kind": "throttle"} if answer == "throttle" else {"kind": "error", "status": answer}
    rule = fault(admin, target="arm", method=method, path=registry_path(app, path), **kind)
    per_invocation = 1 if answer == 403 else 4
    repository = f"e2e/failing-{rule['id']}"
    push(app, local_image(hello_context), f"{repository}:v1")

    wait_hits(admin, rule, per_invocation + 1)
    admin.delete(f"{FAULTS}/{rule['id']}")

    verdict = app.verdict(repository, "v1")
    assert verdict["Status"] == "passed", verdict["Checks"]
    if answer == 403:
        assert "Container Registry Tasks Contributor" in host_log(app), "the refusal names the missing role"


def test_a_run_azure_refuses_to_schedule_ends_the_verdict_with_why(
    app: App, admin: httpx.Client, hello_context: Path
) -> None:
    method, path = SCHEDULE
    rule = fault(admin, target="arm", method=method, path=registry_path(app, path), kind="error", status=400)
    repository = f"e2e/refused-{rule['id']}"
    push(app, local_image(hello_context), f"{repository}:v1")

    verdict = app.verdict(repository, "v1")
    assert verdict["Status"] == "failed"
    reasons = {c["name"]: c["reason"] for c in json.loads(verdict["Checks"])}
    assert "rejected the request (400 BadRequest)" in reasons["verification"], reasons


@pytest.mark.parametrize("answer", ["throttle", 403], ids=["429", "403"])
def test_a_failing_registry_never_strands_the_verdict(
    app: App, admin: httpx.Client, hello_context: Path, answer: str | int
) -> None:
    kind = {"kind": "throttle"} if answer == "throttle" else {"kind": "error", "status": answer}
    repository = f"e2e/registry-{answer}-{time.monotonic_ns()}"
    rule = fault(admin, target="dataplane", method="GET", path=f"^/v2/{repository}/manifests/", **kind)
    push(app, local_image(hello_context), f"{repository}:v1")

    wait_hits(admin, rule, 6)  # the registry client retries a 429 up to 4 times, a 403 not at all
    admin.delete(f"{FAULTS}/{rule['id']}")

    verdict = app.verdict(repository, "v1")
    assert verdict["Status"] == "passed", verdict["Checks"]


def test_a_follow_up_the_host_gave_up_on_is_sent_again(app: App) -> None:
    """maxDequeueCount failures move a follow-up to `<queue>-poison`; the app's function there sends it
    back to the runs queue (after a pause), so the run it follows is not forgotten."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    connection = app.devstack.endpoints["storageConnectionString"]
    runs = QueueClient.from_connection_string(connection, app.settings["DOCKMASTER_RUNS_QUEUE"])
    poison = QueueClient.from_connection_string(
        connection, f"{runs.queue_name}-poison", message_encode_policy=TextBase64EncodePolicy()
    )
    for queue in (runs, poison):
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
    run_id = f"dm-lost-{time.monotonic_ns()}"
    message = {
        "partition": "p",
        "row": "r",
        "registry": app.registry.name,
        "runId": run_id,
        "deadline": "2026-12-04T00:00:00+00:00",
        "attempt": 3,
    }
    poison.send_message(json.dumps(message))

    # Done when the function logged the revival and its invocation succeeded (the host deletes the poison
    # message only then, i.e. after the send to the runs queue); the revived message waits there, invisible.
    revived = f"follow-up of run {run_id} failed repeatedly; sent again (revival 1)"
    deadline = time.monotonic() + 60
    while revived not in host_log(app) or poison.get_queue_properties().approximate_message_count:
        assert time.monotonic() < deadline, "the poisoned follow-up was not sent back"
        time.sleep(0.2)
    assert runs.get_queue_properties().approximate_message_count
