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
from dataclasses import dataclass, replace
from typing import Any

from . import checks, events, tasks
from .checks import CheckResult
from .clock import Clock
from .config import RegistryRef, Settings
from .errors import Conflict, DockmasterError, InvalidInput, NotFound, Retryable
from .policy import LOCK, QUARANTINE, Policy, Rule
from .registry import Manifest, RegistryClient
from .verdicts import Publisher, Verdict, VerdictStore

log = logging.getLogger("dockmaster.verification")

WRITE_ATTEMPTS = 5  # re-reads of a verdict another delivery changed meanwhile
CLAIM_SECONDS = 120  # a claim older than this was left by a crashed worker and may be taken over
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


class Verifier:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        store: VerdictStore,
        registry_data: Callable[[RegistryRef], RegistryClient],
        tasks_client: Callable[[str], Any],
        queue: RunQueue,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.store = store
        self.registry_data = registry_data
        self.tasks_client = tasks_client
        self.queue = queue
        self.publisher = publisher
        self.clock = clock

    # Entry points ---------------------------------------------------------------------
    def handle_event(self, raw: dict[str, Any]) -> Verdict | list[Verdict]:
        """An ACR event. InvalidInput (incl. UnknownRegistry) means: log it and acknowledge."""
        event = events.parse(raw, self.settings.registries)
        if not event.pushed:
            return self.mark_deleted(event)
        return self.verify(Request(event.registry, event.repository, event.digest, event.tag, event.event_id))

    def mark_deleted(self, event: events.ImageEvent) -> list[Verdict]:
        def deleted(current: Verdict) -> bool:
            if current.deleted and event.event_id in current.events:
                return False
            current.deleted = True
            current.updated_at = self.clock.now()
            if event.event_id not in current.events:
                current.events.append(event.event_id)
            return True

        marked = [
            self._write(verdict, deleted)
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
                return verdict
        try:
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
                rule = self.policy.rule_for(verdict.repository)
                why = checks.failed("verification", f"could not be completed: {exc.message}")
                return self._finalize(verdict, request.registry, rule, [*self._prior(verdict), why], "")
        except BaseException:
            # Whatever failed (throttled, refused, a bug), the redelivery Event Grid sends must find the
            # verdict free to take, or it would be turned away and acknowledged.
            self._release(verdict)
            raise

    def follow_run(self, message: dict[str, Any]) -> Verdict | None:
        """A queue message about a scheduled smoke run: finish the verdict or look again later."""
        try:
            partition, row, run_id = message["partition"], message["row"], message["runId"]
            deadline = dt.datetime.fromisoformat(message["deadline"])
            attempt = int(message.get("attempt", 0))
            registry = self.settings.registries[message["registry"].lower()]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed run follow-up message: {exc}") from exc
        try:
            verdict = self.store.get(partition, row)
        except NotFound:
            log.warning("follow-up for run %s: its verdict %s/%s no longer exists", run_id, partition, row)
            return None
        if verdict.final:
            return self._complete(verdict, registry)
        if verdict.run_id != run_id or verdict.status != "running":
            log.info("stale follow-up for run %s; %s", run_id, context(verdict))
            return verdict
        rule = self.policy.rule_for(verdict.repository)
        client = self.tasks_client(registry.subscription)
        try:
            state = tasks.get_run(client, registry.group, registry.name, run_id)
            log_text = self._log_of(client, registry, run_id) if state.finished else ""
        except NotFound as exc:
            result = checks.failed("smoke-run", f"run {run_id} cannot be found: {exc.message}")
            return self._finalize(verdict, registry, rule, [*self._prior(verdict), result], "")
        except InvalidInput as exc:
            result = checks.failed("smoke-run", f"the run cannot be read: {exc.message}")
            return self._finalize(verdict, registry, rule, [*self._prior(verdict), result], "")
        except DockmasterError as exc:  # throttled, failing, refused: look again later, never drop it
            give_up = deadline + GIVE_UP_AFTER_DEADLINE
            if self.clock.now() >= give_up:
                result = checks.failed(
                    "smoke-run", f"no result from ACR Tasks by {give_up.isoformat()}: {exc.message}"
                )
                return self._finalize(verdict, registry, rule, [*self._prior(verdict), result], "")
            level = logging.WARNING if isinstance(exc, Retryable) else logging.ERROR
            log.log(
                level, "run %s not read, looking again later: %s; %s", run_id, exc.message, context(verdict)
            )
            self._follow_later(verdict, registry, deadline, attempt + 1, ceiling=MAX_RETRY_POLL_SECONDS)
            return verdict
        if not state.finished:
            if self.clock.now() >= deadline:
                try:
                    tasks.cancel_run(client, registry.group, registry.name, run_id)
                except DockmasterError as exc:  # best effort: ACR ends the run at its own timeout
                    log.warning("run %s not canceled: %s", run_id, exc.message)
                result = checks.failed("smoke-run", f"no result before the deadline ({deadline.isoformat()})")
                return self._finalize(verdict, registry, rule, [*self._prior(verdict), result], "")
            self._follow_later(verdict, registry, deadline, attempt + 1)
            return verdict
        result = checks.check_smoke_run(rule, state.status, state.error, log_text)
        log.info("run finished status=%s %s", state.status, context(verdict))
        return self._finalize(verdict, registry, rule, [*self._prior(verdict), result], log_text)

    def _log_of(self, client: Any, registry: RegistryRef, run_id: str) -> str:
        try:
            return tasks.read_log(client, registry.group, registry.name, run_id)
        except NotFound:
            return ""  # a run with no log is judged on its status alone

    def revive_run(self, message: dict[str, Any]) -> None:
        """A follow-up the platform gave up on (it failed maxDequeueCount times: storage or ACR Tasks
        unavailable meanwhile) goes back to the runs queue after REVIVE_SECONDS; `follow_run` ends it
        when the verdict is final, stale or gone, and gives the run up an hour after its deadline."""
        if not isinstance(message, dict) or not isinstance(message.get("runId"), str):
            raise InvalidInput("malformed run follow-up message")
        revived = int(message.get("revived", 0)) + 1
        log.error("follow-up of run %s failed repeatedly; sent again (revival %d)", message["runId"], revived)
        self.queue.send({**message, "revived": revived}, REVIVE_SECONDS)

    # Pipeline --------------------------------------------------------------------------
    def _resume(self, existing: Verdict, request: Request, now: dt.datetime) -> tuple[Verdict, bool]:
        """A second delivery: record it; carry on (True) only if the first one was abandoned. Both writes go
        through `_write`: a Conflict only means another worker wrote first (the first delivery moving
        on, a third recording its id), and giving up on it would lose this delivery's event id."""

        def recorded(current: Verdict) -> bool:
            if request.cause in current.events:
                return False
            current.events.append(request.cause)
            current.updated_at = now
            return True

        existing = self._write(existing, recorded)
        if existing.final:
            if existing.pending_actions or not existing.published:
                existing = self._complete(existing, request.registry)
            return existing, False
        claimed = False

        def claim(current: Verdict) -> bool:
            nonlocal claimed
            age = None if current.claimed_at is None else (now - current.claimed_at).total_seconds()
            abandoned = age is None or age >= CLAIM_SECONDS
            # A running verdict is taken over only when released (claimed_at None: its follow-up could not
            # be queued) or abandoned; a second chain of follow-ups for one run is harmless, none is not.
            claimed = abandoned and not current.final
            if claimed:
                current.claimed_at = now
            return claimed

        return self._write(existing, claim), claimed

    def _release(self, verdict: Verdict) -> None:
        """After a transient failure, let the platform's redelivery take the work again. A claim left
        behind (because another delivery wrote meanwhile) would turn that redelivery away for
        CLAIM_SECONDS, so the release is written through `_write`, not given up on a Conflict."""
        claimed = verdict.claimed_at

        def released(current: Verdict) -> bool:
            if current.final or current.claimed_at != claimed:
                return False
            current.claimed_at = None
            return True

        with contextlib.suppress(Retryable):  # storage down: the claim expires after CLAIM_SECONDS
            self._write(verdict, released)

    def _prior(self, verdict: Verdict) -> list[CheckResult]:
        return [CheckResult(c["name"], c["status"], c["reason"]) for c in verdict.checks]  # type: ignore[arg-type]

    def _check(self, verdict: Verdict, request: Request) -> Verdict:
        registry = request.registry
        rule = self.policy.rule_for(verdict.repository)
        client = self.registry_data(registry)
        request, manifest = self._resolve(client, request)
        if isinstance(manifest, CheckResult):
            return self._finalize(verdict, registry, rule, [manifest], "", status="superseded")
        verdict.tag = request.tag
        results = [checks.passed("tag-resolves", manifest.digest)] if request.tag else []
        if request.tag:
            results += checks.check_tag(rule, request.tag)
        results += checks.check_manifest(rule, manifest.media_type, manifest.document)
        descriptor = checks.config_descriptor(manifest.document)
        if descriptor is not None:
            digest, size = descriptor
            if size > rule.max_config_bytes:
                results += checks.check_config(rule, {}, size)
            else:
                config = client.get_json_blob(verdict.repository, digest, rule.max_config_bytes)
                results += checks.check_config(rule, config, size)
        if checks.outcome(results) == "failed" or not rule.smoke_run.enabled:
            return self._finalize(verdict, registry, rule, results, "")
        return self._start_run(verdict, registry, rule, results)

    def _resolve(self, client: RegistryClient, request: Request) -> tuple[Request, Manifest | CheckResult]:
        """The manifest to verify: through the event's tag while it points to the digest, else through
        another tag that does (pushed as :1.2 and :latest, then latest moved on), so that no order of
        events lets a live digest escape. With no tag left, or the image gone: why it is superseded."""
        repository, digest = request.repository, request.digest
        try:
            manifest = client.get_manifest(repository, request.tag or digest)
        except NotFound:
            manifest = None
        if manifest is not None and manifest.digest == digest:
            return request, manifest
        tags = client.manifest_tags(repository, digest)
        if not tags:
            if manifest is not None:
                return request, checks.failed(
                    "tag-resolves", f"tag {request.tag} now points to {manifest.digest}"
                )
            return request, checks.failed(
                "tag-resolves", f"{repository}@{digest} is no longer in the registry"
            )
        return replace(request, tag=min(tags)), client.get_manifest(repository, digest)

    def _start_run(
        self, verdict: Verdict, registry: RegistryRef, rule: Rule, results: list[CheckResult]
    ) -> Verdict:
        smoke = rule.smoke_run
        body = tasks.encoded_cmd_request(
            tasks.smoke_command(verdict.repository, verdict.digest, smoke.args), timeout=smoke.timeout_seconds
        )
        client = self.tasks_client(registry.subscription)
        state = tasks.schedule(client, registry.group, registry.name, body)
        tag = verdict.tag  # the tag checked, which may not be the first event's (see _resolve)

        def running(current: Verdict) -> bool:
            if current.final or current.status == "running":
                return False
            current.status, current.run_id, current.tag = "running", state.run_id, tag
            current.checks = [r.as_dict() for r in results]
            current.updated_at = self.clock.now()
            return True

        verdict = self._write(verdict, running)
        if verdict.run_id != state.run_id:
            return verdict  # another worker got there first
        log.info("smoke run scheduled %s", context(verdict))
        self._follow_later(verdict, registry, self._deadline(rule), 0)
        return verdict

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
        partition, row = verdict.key
        message = {
            "partition": partition,
            "row": row,
            "registry": registry.name,
            "runId": verdict.run_id,
            "deadline": deadline.isoformat(),
            "attempt": attempt,
        }
        self.queue.send(message, min(FIRST_POLL_SECONDS * 2 ** min(attempt, 16), ceiling))

    def _finalize(
        self,
        verdict: Verdict,
        registry: RegistryRef,
        rule: Rule,
        results: list[CheckResult],
        log_text: str,
        status: str | None = None,
    ) -> Verdict:
        outcome, tag = status or checks.outcome(results), verdict.tag

        def final(current: Verdict) -> bool:
            if current.final:
                return False
            current.status, current.tag = outcome, tag
            current.checks = [r.as_dict() for r in results]
            current.log_excerpt = log_text
            current.completed_at = current.updated_at = self.clock.now()
            if outcome == "passed" and rule.on_pass == LOCK:
                current.pending_actions = [LOCK]
            elif outcome == "failed" and rule.on_fail == QUARANTINE:
                current.pending_actions = [QUARANTINE]
            return True

        verdict = self._write(verdict, final)
        log.info("verdict %s %s", verdict.status, context(verdict))
        return self._complete(verdict, registry)

    def _complete(self, verdict: Verdict, registry: RegistryRef) -> Verdict:
        """Apply the recorded actions, then publish; each step is recorded, so a retry resumes."""
        client = self.registry_data(registry)
        while verdict.pending_actions:
            action = verdict.pending_actions[0]
            try:
                if action == LOCK:
                    locked = {"writeEnabled": False, "deleteEnabled": False}
                    if verdict.tag:
                        client.update_tag(verdict.repository, verdict.tag, locked)
                    client.update_manifest(verdict.repository, verdict.digest, locked)
                    done = f"locked {verdict.tag + ' and ' if verdict.tag else ''}{verdict.digest}"
                else:
                    client.update_manifest(verdict.repository, verdict.digest, {"readEnabled": False})
                    done = f"quarantined {verdict.digest} (readEnabled=false)"
            except (NotFound, InvalidInput) as exc:  # the image is gone, or the registry will never accept it
                done = f"{action} not applied: {exc.message}"
                log.warning("%s %s", done, context(verdict))

            def recorded(current: Verdict, action: str = action, done: str = done) -> bool:
                if current.pending_actions[:1] != [action]:
                    return False
                current.pending_actions = current.pending_actions[1:]
                current.actions.append(done)
                return True

            verdict = self._write(verdict, recorded)
            log.info("%s %s", done, context(verdict))
        if not verdict.published and self.publisher.enabled:
            self.publisher.publish(verdict, registry.resource_id)

            def published(current: Verdict) -> bool:
                if current.published:
                    return False
                current.published = True
                return True

            verdict = self._write(verdict, published)
        return verdict

    def _write(self, verdict: Verdict, change: Callable[[Verdict], bool]) -> Verdict:
        """Apply `change` and store it. A concurrent write (a redelivery recording its event id moves
        the ETag) loses nothing: read the verdict again and apply the change to that, unless `change`
        says it no longer applies (returns False: another worker did it)."""
        for _ in range(WRITE_ATTEMPTS):
            if not change(verdict):
                return verdict
            try:
                return self.store.replace(verdict)
            except Conflict:
                verdict = self.store.get(*verdict.key)
        raise Retryable(f"the verdict kept changing while writing it; {context(verdict)}")


def new_cause() -> str:
    return f"api:{uuid.uuid4()}"
