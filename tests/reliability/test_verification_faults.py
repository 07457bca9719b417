"""Verification under injected faults: exactly one verdict, never a false pass, no retry storm."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from shared.errors import REGISTRY_ARM_ROLE, AccessDenied, DockmasterError, Retryable
from shared.policy import parse_policy
from shared.verdicts import Verdict, VerdictStore
from shared.verification import Request, RunQueue, Verifier
from tests.support.faults import FAULTS, fault, hits
from tests.support.tasks import build
from tests.support.verification import drain, pushed


def repository() -> str:
    return f"nosmoke/r{uuid.uuid4().hex[:8]}"


def test_throttling_on_the_registry_is_waited_out(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    rule = fault(
        admin, target="dataplane", kind="throttle", method="GET", path=f"/v2/{repo}/manifests/", count=2
    )
    started = time.monotonic()
    verdict = verifier.handle_event(pushed(registry, repo, "v1", digest))
    assert isinstance(verdict, Verdict)
    assert verdict.status == "passed"
    assert hits(admin, rule) == 2
    assert time.monotonic() - started >= 2, "Retry-After (1 s) was honoured twice"


def test_a_registry_outage_leaves_the_verdict_pending_then_redelivery_passes(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    rule = fault(admin, target="dataplane", kind="error", status=503, path=f"/v2/{repo}/", count=None)
    event = pushed(registry, repo, "v1", digest)
    with pytest.raises(Retryable):
        verifier.handle_event(event)
    attempts = hits(admin, rule)
    assert 2 <= attempts <= 6, f"bounded retries, no storm ({attempts} attempts)"
    partition, row = Verdict(registry.name, repo, digest, verifier.policy.version, "v1").key
    stored = verifier.store.get(partition, row)
    assert stored.status == "pending", "never a false pass"
    admin.delete(FAULTS)
    again = verifier.handle_event(event)  # Event Grid's redelivery of the same event
    assert isinstance(again, Verdict)
    assert again.status == "passed"
    assert verifier.store.get(partition, row).events == [event["id"]]


def test_a_referrer_push_that_fails_is_retried_by_the_redelivery_and_attached_once(
    verifier: Verifier,
    admin: httpx.Client,
    tasks_client: Any,
    registry: Any,
    hello_context: Path,
    data_client: Any,
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    rule = fault(
        admin,
        target="dataplane",
        kind="error",
        status=503,
        method="PUT",
        path=f"/v2/{repo}/manifests/",
        count=None,
    )
    event = pushed(registry, repo, "v1", digest)
    with pytest.raises(Retryable):
        verifier.handle_event(event)
    assert 2 <= hits(admin, rule) <= 6, "the SDK pipeline's own retries, bounded, then the invocation fails"
    admin.delete(f"{FAULTS}/{rule['id']}")
    stored = verifier.verdict(verifier.settings.registries[registry.name.lower()], repo, digest, "test.1")
    assert (stored.status, stored.referrer, stored.published) == ("passed", None, False)
    again = verifier.handle_event(event)
    assert isinstance(again, Verdict)
    assert again.referrer
    assert again.published is verifier.publisher.enabled
    manifests = {m.digest for m in data_client.list_manifest_properties(repo)}
    assert manifests == {digest, again.referrer}, "one referrer, however many deliveries"
    assert verifier.handle_event(event).referrer == again.referrer  # type: ignore[union-attr]


def test_dropped_connections_and_arm_errors_during_a_smoke_run(
    verifier: Verifier, admin: httpx.Client, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = f"verify/r{uuid.uuid4().hex[:8]}"
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    fault(admin, target="dataplane", kind="drop", method="GET", path=f"/v2/{repo}/blobs/", count=1)
    fault(admin, target="arm", kind="error", status=503, path="/runs/", method="GET", count=2)
    verdict = verifier.handle_event(pushed(registry, repo, "v1", digest))
    assert isinstance(verdict, Verdict)
    final = drain(verifier, verdict)
    assert final.status == "passed"
    assert final.run_id == verdict.run_id, "one smoke run, not one per retry"


def test_deleted_before_pushed_and_duplicates(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    deleted = {
        "id": str(uuid.uuid4()),
        "topic": registry.id,
        "subject": repo,
        "eventType": "Microsoft.ContainerRegistry.ImageDeleted",
        "eventTime": "2026-11-29T08:00:01Z",
        "data": {"target": {"mediaType": "x", "repository": repo, "digest": digest}},
    }
    assert verifier.handle_event(deleted) == [], "nothing to mark yet"
    event = pushed(registry, repo, "v1", digest)
    results = [verifier.handle_event(event) for _ in range(3)]
    statuses = {r.status for r in results if isinstance(r, Verdict)}
    assert statuses == {"passed"}
    partition, row = Verdict(registry.name, repo, digest, verifier.policy.version, "v1").key
    assert verifier.store.get(partition, row).events == [event["id"]]


NO_ACTIONS = parse_policy(
    """
version: "reliability.1"
default: {smokeRun: {enabled: false}, onPass: none, onFail: report}
rules:
  - match: "strict/*"
    forbidRootUser: true
    tagSemver: true
"""
)


def push_variants(devstack: Any, registry: Any, repo: str, pushes: list[tuple[str, str]]) -> list[str]:
    """For each (tag, variant), the manifest at `repo:v1` annotated with the variant, PUT straight to the
    backend under the tag, in order: one digest per variant. Returns the digests pushed."""
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    path = f"/v2/{registry.name.lower()}/{repo}/manifests"
    digests = []
    with httpx.Client(base_url=str(devstack.endpoints["registryBackend"])) as backend:
        base = backend.get(f"{path}/v1", headers=accept).json()
        for tag, variant in pushes:
            body = json.dumps({**base, "annotations": {"test.variant": variant}}).encode()
            headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            response = backend.put(f"{path}/{tag}", content=body, headers=headers)
            response.raise_for_status()
            digests.append(response.headers["docker-content-digest"])
    return digests


def outcomes(store: VerdictStore, registry: Any, repos: list[str]) -> dict[tuple[str, str], Any]:
    return {
        (verdict.repository, verdict.digest): (
            verdict.status,
            sorted(c["name"] for c in verdict.checks),
            sorted(verdict.events),  # a duplicate delivery is one event, not two
        )
        for repo in repos
        for verdict in store.history(registry.name, repo)
    }


def test_duplicates_and_shuffling_give_the_same_verdicts_as_a_clean_run(
    devstack: Any, verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    passing, failing = repository(), f"strict/r{uuid.uuid4().hex[:8]}"  # strict: no root, semver tags
    for repo in (passing, failing):
        build(tasks_client, registry, hello_context, f"{repo}:v1")
    pushes = {
        passing: [(f"b{i}", f"b{i}") for i in range(8)]
        # b0's digest is pushed as latest too, then latest moves on: that event's tag no longer
        # resolves, yet the digest is live under b0. `gone` moves on from a digest nothing else tags.
        + [("latest", "b0"), ("latest", "new"), ("gone", "g1"), ("gone", "g2")],
        failing: [("1.0.0", "f1"), ("1.0.1", "f2")],
    }
    events = [
        pushed(registry, repo, tag, digest)
        for repo, tags in pushes.items()
        for (tag, _), digest in zip(tags, push_variants(devstack, registry, repo, tags), strict=True)
    ]

    def run_with_own_table(name: str) -> Verifier:  # no actions: a quarantine would hide the image
        copied = copy.copy(verifier)
        copied.policy = NO_ACTIONS
        conn = str(devstack.endpoints["storageConnectionString"])
        copied.store = VerdictStore(TableClient.from_connection_string(conn, f"{name}{uuid.uuid4().hex[:8]}"))
        return copied

    calm, noisy = run_with_own_table("calm"), run_with_own_table("noisy")
    for event in events:  # the clean run: each event once, in order
        calm.handle_event(event)
    clean = outcomes(calm.store, registry, [passing, failing])

    delivered = events + [copy.deepcopy(e) for e in random.sample(events, k=round(len(events) * 0.3))]
    random.shuffle(delivered)

    def deliver(event: dict[str, Any]) -> None:
        for _ in range(5):  # Event Grid redelivers what failed
            try:
                noisy.handle_event(event)
                return
            except Retryable:
                time.sleep(0.2)
        raise AssertionError(f"{event['subject']} never handled")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(deliver, delivered))
    assert outcomes(noisy.store, registry, [passing, failing]) == clean
    statuses = sorted(status for status, _, _ in clean.values())
    assert statuses == sorted(["passed"] * 10 + ["failed"] * 2 + ["superseded"])


def test_an_image_deleted_before_its_event_is_superseded_not_retried_forever(
    devstack: Any, verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    repo = repository()
    build(tasks_client, registry, hello_context, f"{repo}:v1")
    [digest] = push_variants(devstack, registry, repo, [("gone", "deleted")])
    backend = str(devstack.endpoints["registryBackend"])
    httpx.delete(f"{backend}/v2/{registry.name.lower()}/{repo}/manifests/{digest}").raise_for_status()
    verdict = verifier.handle_event(pushed(registry, repo, "gone", digest))
    assert isinstance(verdict, Verdict)
    assert (verdict.status, verdict.checks[0]["reason"]) == (
        "superseded",
        f"{repo}@{digest} is no longer in the registry",
    )


def test_a_claim_is_released_even_when_a_redelivery_wrote_meanwhile(
    verifier: Verifier, registry: Any
) -> None:
    """A worker failing transiently releases its claim; if a second delivery recorded its event id in the
    meantime (the ETag moved), the release must still land, or that redelivery is turned away."""
    mine = seeded(verifier, registry, "first", dt.datetime.now(dt.UTC))
    # another delivery's write: `mine` is now stale
    another_worker(verifier, mine, lambda current: current.events.append("second"))()
    verifier._release(mine)
    stored = verifier.store.get(*mine.key)
    assert (stored.claimed_at, stored.events) == (None, ["first", "second"])


class InterleavedStore(VerdictStore):
    """A store whose reads of an existing verdict are followed by `between()`: another worker's write
    lands after this delivery has read the verdict and before it writes, whatever the scheduler does."""

    def __init__(self, table: Any, between: Any) -> None:
        super().__init__(table)
        self._between = between

    def insert(self, verdict: Verdict) -> Verdict | None:
        existing = super().insert(verdict)
        if existing is not None:
            self._between()
        return existing

    def for_digest(self, registry: str, repository: str, digest: str) -> list[Verdict]:
        found = super().for_digest(registry, repository, digest)
        self._between()
        return found


def interleaved(verifier: Verifier, first_worker_writes: Any) -> Verifier:
    copied = copy.copy(verifier)
    copied.store = InterleavedStore(verifier.store._table, first_worker_writes)
    return copied


def seeded(verifier: Verifier, registry: Any, event: str, at: dt.datetime, **fields: Any) -> Verdict:
    """A verdict an earlier delivery of `event` stored (and claimed) at `at`."""
    verdict = Verdict(
        registry.name, repository(), f"sha256:{uuid.uuid4().hex * 2}", verifier.policy.version, "v1",
        events=[event], created_at=at, updated_at=at, claimed_at=at, **fields,
    )  # fmt: skip
    assert verifier.store.insert(verdict) is None
    return verdict


def another_worker(verifier: Verifier, verdict: Verdict, change: Callable[[Verdict], None]) -> Any:
    """Another worker's write of the verdict: read it, change it, store it (its ETag moves)."""

    def write() -> None:
        current = verifier.store.get(*verdict.key)
        change(current)
        verifier.store.replace(current)

    return write


def test_a_redelivery_keeps_its_event_id_when_the_first_worker_writes_between(
    verifier: Verifier, registry: Any
) -> None:
    """The interleaving that lost an event id: the second delivery reads the verdict, the first worker
    moves it on (its ETag changes), the second delivery's write of its id conflicts."""
    first = seeded(verifier, registry, "first", dt.datetime.now(dt.UTC))

    def schedules_its_run(current: Verdict) -> None:
        current.status, current.run_id = "running", "run-1"

    second = interleaved(verifier, another_worker(verifier, first, schedules_its_run))
    ref = verifier.settings.registries[registry.name.lower()]
    result = second.verify(Request(ref, first.repository, first.digest, "v1", "second"))
    stored = verifier.store.get(*first.key)
    assert (stored.status, stored.run_id, stored.events) == ("running", "run-1", ["first", "second"])
    assert (result.status, result.events) == ("running", ["first", "second"]), "answers what is stored"


def test_an_abandoned_verdict_is_taken_over_when_a_third_delivery_writes_between(
    verifier: Verifier, registry: Any
) -> None:
    """A claim long expired: the redelivery takes the work over even though another delivery recorded
    its id between the read and the claim, and both ids stay."""
    abandoned = seeded(verifier, registry, "first", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    third = another_worker(verifier, abandoned, lambda current: current.events.append("third"))
    ref = verifier.settings.registries[registry.name.lower()]
    result = interleaved(verifier, third).verify(
        Request(ref, abandoned.repository, abandoned.digest, "v1", "second")
    )
    # The digest is not in the registry: the takeover reaches a final verdict instead of waiting.
    assert result.status == "superseded"
    stored = verifier.store.get(*abandoned.key)
    assert (stored.status, sorted(stored.events)) == ("superseded", ["first", "second", "third"])


def test_a_delete_is_recorded_when_a_worker_writes_between(verifier: Verifier, registry: Any) -> None:
    verdict = seeded(verifier, registry, "pushed", dt.datetime.now(dt.UTC), status="passed")

    def publishes(current: Verdict) -> None:
        current.published = True

    deleted = {
        "id": "deleted",
        "topic": registry.id,
        "subject": verdict.repository,
        "eventType": "Microsoft.ContainerRegistry.ImageDeleted",
        "eventTime": "2026-11-29T08:00:01Z",
        "data": {"target": {"mediaType": "x", "repository": verdict.repository, "digest": verdict.digest}},
    }
    result = interleaved(verifier, another_worker(verifier, verdict, publishes)).handle_event(deleted)
    assert isinstance(result, list)
    [marked] = result
    stored = verifier.store.get(*verdict.key)
    assert (stored.deleted, stored.published, stored.events) == (True, True, ["pushed", "deleted"])
    assert (marked.deleted, marked.events) == (True, ["pushed", "deleted"])


class FailingOnce(RunQueue):
    """The runs queue failing its first send, as a storage outage right after scheduleRun would."""

    def __init__(self, queue: RunQueue) -> None:
        self.__dict__.update(queue.__dict__)
        self.failed = False

    def send(self, message: dict[str, Any], delay_seconds: int) -> None:
        if not self.failed:
            self.failed = True
            raise Retryable("queueing the run follow-up: Queue storage answered 503")
        super().send(message, delay_seconds)


def test_a_follow_up_that_could_not_be_queued_is_sent_by_the_redelivery(
    verifier: Verifier, tasks_client: Any, registry: Any, hello_context: Path
) -> None:
    """scheduleRun succeeded, the verdict says running, then queueing its follow-up failed: the invocation
    fails and the claim is released, so Event Grid's redelivery queues the follow-up (the run is not
    scheduled again) instead of finding a running verdict and acknowledging with nothing to come."""
    repo = f"verify/r{uuid.uuid4().hex[:8]}"
    digest = build(tasks_client, registry, hello_context, f"{repo}:v1")
    event = pushed(registry, repo, "v1", digest)
    verifier.queue = FailingOnce(verifier.queue)
    with pytest.raises(Retryable):
        verifier.handle_event(event)
    partition, row = Verdict(registry.name, repo, digest, verifier.policy.version, "v1").key
    running = verifier.store.get(partition, row)
    assert (running.status, running.claimed_at) == ("running", None), "released for the redelivery"

    again = verifier.handle_event(event)
    assert isinstance(again, Verdict)
    final = drain(verifier, again)
    assert final.status == "passed"
    assert final.run_id == running.run_id, "followed, not scheduled again"


@pytest.mark.parametrize(
    ("answer", "error"), [("throttle", Retryable), (403, AccessDenied)], ids=["429", "403"]
)
def test_reading_the_registrys_login_server_goes_through_the_table(
    verifier: Verifier, admin: httpx.Client, registry: Any, answer: str | int, error: type[DockmasterError]
) -> None:
    """The login server comes from ARM (the only host a credential is sent to): a throttled read is worth a
    retry, a refused one names the role — never a 'configured registry does not exist'."""
    from shared import clients
    from shared.config import RegistryRef

    kind = (
        {"kind": "throttle", "retry_after": 0}
        if answer == "throttle"
        else {"kind": "error", "status": answer}
    )
    fault(admin, target="arm", method="GET", path=f"/registries/{registry.name}$", count=None, **kind)
    clients.login_server.cache_clear()
    try:
        with pytest.raises(error) as caught:
            clients.login_server(RegistryRef.parse(registry.id))
    finally:
        clients.login_server.cache_clear()
    if error is AccessDenied:
        assert REGISTRY_ARM_ROLE in caught.value.message
