"""The verification pipeline: event → checks → smoke run → verdict → actions → event.

Triggers call `Verifier.handle_event` (Event Grid) and `Verifier.follow_run` (queue);
nothing here waits for a run: scheduling returns at once and a delayed queue
message comes back to look at it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import actions, checks, events, lifecycle, referrers, tasks
from .checks import CheckResult
from .clock import Clock, exact
from .config import RegistryRef, Settings
from .errors import AccessDenied, Conflict, DockmasterError, InvalidInput, NotFound, Retryable
from .inspection import QUARANTINED, Inspection, inspect, quarantined
from .lifecycle import Checked, Transition
from .policy import LOCK, QUARANTINE, Policy, Rule
from .publisher import Publisher
from .registry import Manifest, RegistryClient
from .verdicts import Verdict, VerdictStore, partition_key, row_key, verdict_event

log = logging.getLogger("dockmaster.verification")

WRITE_ATTEMPTS = 5  # re-reads of a verdict another delivery changed meanwhile
CLAIM_SECONDS = 120  # a claim older than this was left by a crashed worker and may be taken over
CLAIM_EXPIRES = dt.timedelta(seconds=CLAIM_SECONDS)
FIRST_POLL_SECONDS = 1
MAX_POLL_SECONDS = 15
DEADLINE_MARGIN_SECONDS = 120
# While ACR Tasks is throttled, failing or refusing, a run is looked at again at most this often, and
# given up on (failed, with why) an hour after its deadline.
MAX_RETRY_POLL_SECONDS = 60
GIVE_UP_AFTER_DEADLINE = dt.timedelta(hours=1)
REVIVE_SECONDS = 60  # pause before a poisoned follow-up is tried again


@dataclass(frozen=True)
class Request:
    """What to verify: from an ImagePushed event or an API call."""

    registry: RegistryRef
    repository: str
    digest: str
    tag: str | None
    cause: str  # the event id, or api:<id>


class RunQueue:
    """The queue that brings a scheduled run back to the verifier after a delay."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ready = False

    def send(self, message: dict[str, Any], delay_seconds: int) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        from .errors import QUEUES_ROLE, from_azure

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._client.create_queue()
                self._ready = True
            self._client.send_message(json.dumps(message), visibility_timeout=delay_seconds)
        except AzureError as exc:
            raise from_azure(
                exc, "queueing the run follow-up", service="Queue storage", role=QUEUES_ROLE
            ) from exc


def context(verdict: Verdict | None = None, cause: str | None = None) -> str:
    parts = []
    if cause:
        parts.append(f"event={cause}")
    if verdict is not None:
        parts += [f"digest={verdict.digest}", f"repository={verdict.repository}"]
        if verdict.run_id:
            parts.append(f"run={verdict.run_id}")
    return " ".join(parts)


@dataclass(frozen=True)
class FollowUp:
    """A queue message about a scheduled smoke run: which verdict, which run, until when."""

    partition: str
    row: str
    registry: RegistryRef
    run_id: str
    deadline: dt.datetime
    attempt: int = 0

    @classmethod
    def parse(cls, message: dict[str, Any], registries: dict[str, RegistryRef]) -> FollowUp:
        try:
            partition, row, run_id = message["partition"], message["row"], message["runId"]
            deadline = dt.datetime.fromisoformat(message["deadline"])
            attempt = int(message.get("attempt", 0))
            registry = registries[message["registry"].lower()]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed run follow-up message: {exc}") from exc
        return cls(partition, row, registry, run_id, deadline, attempt)

    def message(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "row": self.row,
            "registry": self.registry.name,
            "runId": self.run_id,
            "deadline": exact(self.deadline),
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class Resolution:
    """How the digest is reached now: through `tag` (the event's, or another tag pointing to the digest)
    to its `manifest`; with no tag pointing to it any more, or the image gone, `manifest` is None and
    `superseded` says why."""

    tag: str | None
    manifest: Manifest | None
    superseded: str = ""


@dataclass
class Verifier:
    settings: Settings
    policy: Policy
    store: VerdictStore
    registry_data: Callable[[RegistryRef], RegistryClient]
    tasks_client: Callable[[str], Any]
    queue: RunQueue
    publisher: Publisher
    clock: Clock
    attacher: referrers.Attacher | None = None  # None: verdicts are not attached to their images

    # Entry points ---------------------------------------------------------------------
    def handle_event(self, raw: dict[str, Any]) -> Verdict | list[Verdict]:
        """An ACR event. InvalidInput (incl. UnknownRegistry) means: log it and acknowledge."""
        event = events.parse(raw, self.settings.registries)
        if not event.pushed:
            return self.mark_deleted(event)
        return self.verify(Request(event.registry, event.repository, event.digest, event.tag, event.event_id))

    def mark_deleted(self, event: events.ImageEvent) -> list[Verdict]:
        marked = [
            self._write(verdict, lambda current: lifecycle.delete(current, event.event_id, self.clock.now()))
            for verdict in self.store.for_digest(event.registry.name, event.repository, event.digest)
            if not verdict.deleted
        ]
        log.info("image deleted event=%s digest=%s verdicts=%d", event.event_id, event.digest, len(marked))
        return marked

    def verify(self, request: Request) -> Verdict:
        now = self.clock.now()
        verdict = Verdict(
            registry=request.registry.name,
            repository=request.repository,
            digest=request.digest,
            policy_version=self.policy.version,
            tag=request.tag,
            events=[request.cause],
            created_at=now,
            updated_at=now,
            claimed_at=now,
        )
        existing = self.store.insert(verdict)
        if existing is not None:
            verdict, claimed = self._resume(existing, request, now)
            if not claimed:
                return self._judge_tag(verdict, request)
        try:
            return self._carry_on(verdict, request)
        except BaseException:
            # Whatever failed (throttled, refused, a bug), the redelivery Event Grid sends must find the
            # verdict free to take, or it would be turned away and acknowledged.
            self._release(verdict)
            raise

    def follow_run(self, message: dict[str, Any]) -> Verdict | None:
        """A queue message about a scheduled smoke run: finish the verdict or look again later."""
        follow = FollowUp.parse(message, self.settings.registries)
        try:
            verdict = self.store.get(follow.partition, follow.row)
        except NotFound:
            log.warning(
                "follow-up for run %s: its verdict %s/%s no longer exists",
                *(follow.run_id, follow.partition, follow.row),
            )
            return None
        if verdict.final:
            return self._complete(verdict, follow.registry)
        if verdict.run_id != follow.run_id or verdict.status != "running":
            log.info("stale follow-up for run %s; %s", follow.run_id, context(verdict))
            return verdict
        return self._look_at_run(verdict, follow)

    def revive_run(self, message: dict[str, Any]) -> None:
        """A follow-up the platform gave up on (it failed maxDequeueCount times: storage or ACR Tasks
        unavailable meanwhile) goes back to the runs queue after REVIVE_SECONDS; `follow_run` ends it
        when the verdict is final, stale or gone, and gives the run up an hour after its deadline."""
        if not isinstance(message, dict) or not isinstance(message.get("runId"), str):
            raise InvalidInput("malformed run follow-up message")
        revived = int(message.get("revived", 0)) + 1
        log.error("follow-up of run %s failed repeatedly; sent again (revival %d)", message["runId"], revived)
        self.queue.send({**message, "revived": revived}, REVIVE_SECONDS)

    # Queries: what the API shows ------------------------------------------------------
    def verdict(self, registry: RegistryRef, repository: str, digest: str, policy_version: str) -> Verdict:
        try:
            return self.store.get(partition_key(registry.name, repository), row_key(digest, policy_version))
        except NotFound as exc:
            raise NotFound(
                f"no verification of {repository}@{digest} under policy {policy_version} in registry "
                f"'{registry.name}'"
            ) from exc

    def history(self, registry: RegistryRef, repository: str, digest: str | None = None) -> list[Verdict]:
        """A repository's verdicts, newest first (optionally of one digest)."""
        if digest:
            return self.store.for_digest(registry.name, repository, digest)
        return self.store.history(registry.name, repository)

    def failed_verdict(self, registry: RegistryRef, repository: str, digest: str) -> Verdict | None:
        """The verdict that fails this digest, if one does: its verdict under the current policy once final,
        else its newest final verdict under any policy (a digest failed and quarantined before a policy
        change stays refused until the new policy passes it)."""
        verdicts = [v for v in self.store.for_digest(registry.name, repository, digest) if v.final]
        current = [v for v in verdicts if v.policy_version == self.policy.version]
        deciding = (current or verdicts)[:1]
        return deciding[0] if deciding and deciding[0].status == "failed" else None

    def judge_listing(
        self, registry: RegistryRef, repository: str, tags: list[tuple[str, str]]
    ) -> list[tuple[Verdict | None, dict[str, str] | None]]:
        """For each (tag, digest) of a listing: its digest's verdict under the current policy, and, with a
        verdict, the tag judged on the tag rules. Judged here as well as on its push: a tag pushed before
        the verdict existed, or whose result was not kept (Verdict.tag_results is bounded), shows what the
        rules say of it."""
        verdicts = self.store.for_policy(registry.name, repository, self.policy.version) if tags else {}
        rule = self.policy.rule_for(repository)
        judged: list[tuple[Verdict | None, dict[str, str] | None]] = []
        for tag, digest in tags:
            verdict = verdicts.get(digest)
            rules = None
            if verdict is not None:
                rules = checks.tag_result(checks.check_tag(rule, tag))
                if action := verdict.tag_results.get(tag, {}).get("action"):
                    rules["action"] = action
            judged.append((verdict, rules))
        return judged

    # Pipeline --------------------------------------------------------------------------
    def _resume(self, existing: Verdict, request: Request, now: dt.datetime) -> tuple[Verdict, bool]:
        """A second delivery: record it; carry on (True) only if the first one was abandoned. Every write
        goes through `_write`: a Conflict only means another worker wrote first (the first delivery moving
        on, a third recording its id), and giving up on it would lose this delivery's event id."""
        existing = self._write(
            existing, lambda current: lifecycle.record_delivery(current, request.cause, now)
        )
        if existing.status == "superseded":
            existing, reopened = self._try(
                existing, lambda current: lifecycle.reopen(current, request.tag, now)
            )
            if reopened:
                log.info("superseded digest pushed again: verifying %s", context(existing, request.cause))
                return existing, True
        if existing.final:
            if existing.pending_actions or not existing.published or self._to_attach(existing):
                existing = self._complete(existing, request.registry)
            return existing, False
        return self._try(existing, lambda current: lifecycle.claim(current, now, CLAIM_EXPIRES))

    def _carry_on(self, verdict: Verdict, request: Request) -> Verdict:
        """The claimed verdict's next step: follow its run again, or check the image."""
        if verdict.status == "running":  # taken over: its run was scheduled, its follow-up was lost
            log.info("following again %s", context(verdict, request.cause))
            rule = self.policy.rule_for(verdict.repository)
            self._follow_later(verdict, request.registry, self._deadline(rule), 0)
            return verdict
        log.info("verifying %s", context(verdict, request.cause))
        try:
            return self._check(verdict, request)
        except InvalidInput as exc:
            # The request can never succeed as sent (a manifest that is not JSON, a run ACR refuses):
            # the verdict says why, instead of staying pending with no delivery to come.
            why = checks.failed("verification", f"could not be completed: {exc.message}")
            return self._finalize(verdict, request.registry, [*_prior(verdict), why])

    def _release(self, verdict: Verdict) -> None:
        """After a transient failure, let the platform's redelivery take the work again. A claim left
        behind (because another delivery wrote meanwhile) would turn that redelivery away for
        CLAIM_SECONDS, so the release is written through `_write`, not given up on a Conflict."""
        claimed = verdict.claimed_at
        with contextlib.suppress(Retryable):  # storage down: the claim expires after CLAIM_SECONDS
            self._write(verdict, lambda current: lifecycle.release(current, claimed))

    def _check(self, verdict: Verdict, request: Request) -> Verdict:
        registry = request.registry
        rule = self.policy.rule_for(verdict.repository)
        client = self.registry_data(registry)
        try:
            resolution = _resolve(client, request)
        except AccessDenied:
            if not quarantined(client, request.repository, request.digest):
                raise
            return self._finalize(verdict, registry, [checks.failed("image", QUARANTINED)])
        if resolution.manifest is None:
            return self._supersede(verdict, registry, resolution.superseded)
        manifest, tag = resolution.manifest, resolution.tag
        # The tag checked, which may not be the event's; a failure after this point reports it too.
        verdict.tag = tag
        results = (
            [checks.passed("tag-resolves", manifest.digest), *checks.check_tag(rule, tag)] if tag else []
        )
        found = inspect(client, rule, verdict.repository, manifest)
        results += found.results
        if checks.outcome(results) == "passed" and rule.smoke_run.enabled and found.run_digest is None:
            results.append(
                checks.failed("smoke-run", f"the index has no {checks.RUNNER_PLATFORM} image for the run")
            )
        if checks.outcome(results) == "failed" or not rule.smoke_run.enabled:
            return self._finalize(verdict, registry, results, inspection=found)
        return self._start_run(verdict, registry, rule, results, found)

    def _start_run(
        self,
        verdict: Verdict,
        registry: RegistryRef,
        rule: Rule,
        results: list[CheckResult],
        found: Inspection,
    ) -> Verdict:
        smoke, run_digest = rule.smoke_run, found.run_digest or verdict.digest
        body = tasks.encoded_cmd_request(
            tasks.smoke_command(verdict.repository, run_digest, smoke.args), timeout=smoke.timeout_seconds
        )
        client = self.tasks_client(registry.subscription)
        state = tasks.schedule(client, registry.group, registry.name, body)
        checked = Checked(
            verdict.tag,
            [r.as_dict() for r in results],
            found.images,
            run_digest,
            _tag_result(rule, verdict.tag),
            subject=found.subject,
        )
        verdict = self._write(
            verdict, lambda current: lifecycle.start_run(current, state.run_id, checked, self.clock.now())
        )
        if verdict.run_id != state.run_id:
            return verdict  # another worker got there first
        log.info("smoke run scheduled %s", context(verdict))
        self._follow_later(verdict, registry, self._deadline(rule), 0)
        return verdict

    def _look_at_run(self, verdict: Verdict, follow: FollowUp) -> Verdict:
        """The run's state: finished (judged on its status and log), running (looked at again later),
        past its deadline (canceled, failed), or unreadable (looked at again, given up on in the end)."""
        registry, run_id = follow.registry, follow.run_id
        client = self.tasks_client(registry.subscription)
        try:
            state = tasks.get_run(client, registry.group, registry.name, run_id)
            log_text = _log_of(client, registry, run_id) if state.finished else ""
        except NotFound as exc:
            return self._smoke_failed(verdict, registry, f"run {run_id} cannot be found: {exc.message}")
        except InvalidInput as exc:
            return self._smoke_failed(verdict, registry, f"the run cannot be read: {exc.message}")
        except DockmasterError as exc:  # throttled, failing, refused: look again later, never drop it
            give_up = follow.deadline + GIVE_UP_AFTER_DEADLINE
            if self.clock.now() >= give_up:
                why = f"no result from ACR Tasks by {exact(give_up)}: {exc.message}"
                return self._smoke_failed(verdict, registry, why)
            level = logging.WARNING if isinstance(exc, Retryable) else logging.ERROR
            log.log(
                level, "run %s not read, looking again later: %s; %s", run_id, exc.message, context(verdict)
            )
            self._follow_later(
                verdict, registry, follow.deadline, follow.attempt + 1, ceiling=MAX_RETRY_POLL_SECONDS
            )
            return verdict
        if state.finished:
            result = checks.check_smoke_run(
                self.policy.rule_for(verdict.repository), state.status, state.error, log_text
            )
            log.info("run finished status=%s %s", state.status, context(verdict))
            ended = checks.run_result(state.status, state.error, log_text)
            return self._finalize(verdict, registry, [*_prior(verdict), result], log_text, run_result=ended)
        if self.clock.now() < follow.deadline:
            self._follow_later(verdict, registry, follow.deadline, follow.attempt + 1)
            return verdict
        try:
            tasks.cancel_run(client, registry.group, registry.name, run_id)
        except DockmasterError as exc:  # best effort: ACR ends the run at its own timeout
            log.warning("run %s not canceled: %s", run_id, exc.message)
        return self._smoke_failed(
            verdict, registry, f"no result before the deadline ({exact(follow.deadline)})"
        )

    def _deadline(self, rule: Rule) -> dt.datetime:
        return self.clock.now() + dt.timedelta(
            seconds=rule.smoke_run.timeout_seconds + DEADLINE_MARGIN_SECONDS
        )

    def _follow_later(
        self,
        verdict: Verdict,
        registry: RegistryRef,
        deadline: dt.datetime,
        attempt: int,
        ceiling: int = MAX_POLL_SECONDS,
    ) -> None:
        follow = FollowUp(*verdict.key, registry, verdict.run_id or "", deadline, attempt)
        self.queue.send(follow.message(), min(FIRST_POLL_SECONDS * 2 ** min(attempt, 16), ceiling))

    def _smoke_failed(self, verdict: Verdict, registry: RegistryRef, reason: str) -> Verdict:
        return self._finalize(verdict, registry, [*_prior(verdict), checks.failed("smoke-run", reason)])

    def _finalize(
        self,
        verdict: Verdict,
        registry: RegistryRef,
        results: list[CheckResult],
        log_text: str = "",
        inspection: Inspection | None = None,
        run_result: dict[str, Any] | None = None,
    ) -> Verdict:
        rule = self.policy.rule_for(verdict.repository)
        outcome = checks.outcome(results)
        checked = Checked(
            tag=verdict.tag,
            checks=[r.as_dict() for r in results],
            images=inspection.images if inspection is not None else None,
            run_digest=inspection.run_digest if inspection is not None else None,
            tag_result=_tag_result(rule, verdict.tag),
            log_excerpt=log_text,
            actions=_actions(rule, outcome),
            subject=inspection.subject if inspection is not None else None,
            run_result=run_result,
        )
        smoke = next((r for r in results if r.name == "smoke-run"), None)
        smoke_failed = smoke is not None and smoke.status == "failed"
        verdict = self._write(
            verdict,
            lambda current: lifecycle.finalize(
                current, outcome, checked, self.clock.now(), smoke_failed=smoke_failed
            ),
        )
        log.info("verdict %s %s", verdict.status, context(verdict))
        return self._complete(verdict, registry)

    def _supersede(self, verdict: Verdict, registry: RegistryRef, why: str) -> Verdict:
        found = [checks.failed("tag-resolves", why).as_dict()]
        tag = verdict.tag
        verdict = self._write(
            verdict, lambda current: lifecycle.supersede(current, tag, found, self.clock.now())
        )
        log.info("verdict %s %s", verdict.status, context(verdict))
        return self._complete(verdict, registry)

    def _complete(self, verdict: Verdict, registry: RegistryRef) -> Verdict:
        """Attach the verdict to its image, apply the recorded actions, then publish; each step is
        recorded, so a retry resumes. The referrer goes first: pushing it never depends on whether the
        registry lets a locked image gain referrers."""
        client = self.registry_data(registry)
        if self.attacher is not None and self._to_attach(verdict):
            verdict = self._attach(self.attacher, client, verdict)
        while verdict.pending_actions:
            action = verdict.pending_actions[0]
            try:
                done = (
                    actions.lock(client, verdict) if action == LOCK else actions.quarantine(client, verdict)
                )
            except (NotFound, InvalidInput) as exc:  # the image is gone, or the registry will never accept it
                done = f"{action} not applied: {exc.message}"
                log.warning("%s %s", done, context(verdict))
            verdict = self._write(verdict, _recording(action, done))
            log.info("%s %s", done, context(verdict))
        if not verdict.published and self.publisher.enabled:
            self.publisher.publish(verdict_event(verdict, registry.resource_id))
            verdict = self._write(verdict, lifecycle.mark_published)
        return verdict

    def _to_attach(self, verdict: Verdict) -> bool:
        return (
            self.attacher is not None
            and verdict.referrer is None
            and verdict.status in referrers.ATTACHED
            and not verdict.deleted
        )

    def _attach(self, attacher: referrers.Attacher, client: RegistryClient, verdict: Verdict) -> Verdict:
        """Push the verdict's referrer. Throttled or failing: raised, so the delivery is retried. Refused
        for good (the image is gone, no right to push, a registry that will not take it): recorded as not
        attached, with why; the verdict itself stands."""
        try:
            digest, note = attacher.attach(client, verdict), ""
        except NotFound as exc:
            digest, note = "", f"verdict not attached as a referrer: {exc.message}"
        except (AccessDenied, InvalidInput) as exc:
            digest, note = "", f"verdict not attached as a referrer: {exc.message}"
            log.error("%s %s", note, context(verdict))
        verdict = self._write(verdict, lambda current: lifecycle.record_referrer(current, digest, note))
        log.info("referrer %s %s", digest or "not attached", context(verdict))
        return verdict

    def _judge_tag(self, verdict: Verdict, request: Request) -> Verdict:
        """A tag pushed for a digest already verified: the tag rules are the tag's own, judged for each
        tag while it points to the digest, with the rule's action on that tag."""
        tag = request.tag
        if tag is None or tag == verdict.tag or tag in verdict.tag_results:
            # Judged already (a redelivery, or another event of the tag): its action was applied then,
            # or is the final lock's (`actions.lock` locks every passed tag it finds recorded).
            return verdict
        rule = self.policy.rule_for(verdict.repository)
        client = self.registry_data(request.registry)
        if client.tag_target(verdict.repository, tag)[0] != verdict.digest:
            return verdict  # moved on: the event of the image it points to now judges it
        result = checks.tag_result(checks.check_tag(rule, tag))
        action = None
        if result["status"] == "failed" and rule.on_fail == QUARANTINE:
            action = actions.quarantine_tag(client, verdict.repository, tag)
        judged = {**result, **({"action": action} if action else {})}
        verdict = self._write(verdict, lambda current: lifecycle.judge_tag(current, tag, judged))
        if result["status"] == "passed" and rule.on_pass == LOCK and verdict.status == "passed":
            locked = {**result, "action": actions.lock_tag(client, verdict.repository, tag, verdict.digest)}
            verdict = self._write(verdict, lambda current: lifecycle.judge_tag(current, tag, locked))
        log.info("tag %s %s: %s %s", tag, judged["status"], action or "", context(verdict, request.cause))
        return verdict

    def _write(self, verdict: Verdict, transition: Transition) -> Verdict:
        return self._try(verdict, transition)[0]

    def _try(self, verdict: Verdict, transition: Transition) -> tuple[Verdict, bool]:
        """Store the verdict `transition` makes of `verdict`, and whether it did. A concurrent write (a
        redelivery recording its event id moves the ETag) loses nothing: read the verdict again and apply
        the transition to that, unless it no longer applies (None: another worker did it)."""
        for _ in range(WRITE_ATTEMPTS):
            changed = transition(verdict)
            if changed is None:
                return verdict, False
            try:
                return self.store.replace(changed), True
            except Conflict:
                verdict = self.store.get(*verdict.key)
        raise Retryable(f"the verdict kept changing while writing it; {context(verdict)}")


def _resolve(client: RegistryClient, request: Request) -> Resolution:
    """The manifest to verify: through the event's tag while it points to the digest, else through
    another tag that does (pushed as :1.2 and :latest, then latest moved on), so that no order of
    events lets a live digest escape. With no tag left, or the image gone: why it is superseded."""
    repository, digest = request.repository, request.digest
    try:
        manifest = client.get_manifest(repository, request.tag or digest)
    except NotFound:
        manifest = None
    except AccessDenied:
        if request.tag is None:
            raise
        manifest = None  # the tag is quarantined (readEnabled=false): go through the digest
    if manifest is not None and manifest.digest == digest:
        return Resolution(request.tag, manifest)
    tags = client.manifest_tags(repository, digest)
    if tags:
        return Resolution(min(tags), client.get_manifest(repository, digest))
    if manifest is not None:
        return Resolution(request.tag, None, f"tag {request.tag} now points to {manifest.digest}")
    return Resolution(request.tag, None, f"{repository}@{digest} is no longer in the registry")


def _log_of(client: Any, registry: RegistryRef, run_id: str) -> str:
    try:
        return tasks.read_log(client, registry.group, registry.name, run_id)
    except NotFound:
        return ""  # a run with no log is judged on its status alone


def _prior(verdict: Verdict) -> list[CheckResult]:
    return [CheckResult(c["name"], c["status"], c["reason"]) for c in verdict.checks]  # type: ignore[arg-type]


def _tag_result(rule: Rule, tag: str | None) -> dict[str, str] | None:
    return checks.tag_result(checks.check_tag(rule, tag)) if tag else None


def _actions(rule: Rule, outcome: str) -> list[str]:
    """What a final verdict does to the image, by the rule."""
    if outcome == "passed" and rule.on_pass == LOCK:
        return [LOCK]
    if outcome == "failed" and rule.on_fail == QUARANTINE:
        return [QUARANTINE]
    return []


def _recording(action: str, done: str) -> Transition:
    return lambda current: lifecycle.record_action(current, action, done)


def new_cause() -> str:
    return f"api:{uuid.uuid4()}"
