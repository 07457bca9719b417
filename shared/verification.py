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

from . import checks, events, oci, rootfs, tasks
from .checks import CheckResult
from .clock import Clock
from .config import RegistryRef, Settings
from .errors import AccessDenied, Conflict, DockmasterError, InvalidInput, NotFound, Retryable
from .policy import LOCK, QUARANTINE, Policy, Rule
from .registry import MAX_MANIFEST_BYTES, Manifest, ReadBudget, RegistryClient
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
MAX_INDEX_IMAGES = 16  # an index listing more images is failed, not read
MAX_LAYER_READ_BYTES = 512 * 1024 * 1024  # layers read to find /etc/passwd (compressed bytes)
LOCKED = {"writeEnabled": False, "deleteEnabled": False}


@dataclass(frozen=True)
class Inspection:
    """What reading an image found: its checks, an index's images (digest → passed | failed) and the
    image the smoke run runs (None: an index with no image for the runner's platform)."""

    results: list[CheckResult]
    images: dict[str, str]
    run_digest: str | None


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
                return self._judge_tag(verdict, request)
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
            if not current.record_event(request.cause):
                return False
            current.updated_at = now
            return True

        existing = self._write(existing, recorded)
        reopened = False

        def reopen(current: Verdict) -> bool:
            # Superseded said "no tag pointed here": a push naming the digest again may say otherwise,
            # so it is verified afresh (and superseded again if nothing points to it still).
            nonlocal reopened
            reopened = current.status == "superseded"
            if reopened:
                current.status, current.tag, current.checks = "pending", request.tag, []
                current.completed_at, current.published, current.pending_actions = None, False, []
                current.claimed_at = current.updated_at = now
            return reopened

        if existing.status == "superseded":
            existing = self._write(existing, reopen)
            if reopened:
                log.info("superseded digest pushed again: verifying %s", context(existing, request.cause))
                return existing, True
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
        try:
            request, manifest = self._resolve(client, request)
        except AccessDenied:
            if not self._quarantined(client, request.repository, request.digest):
                raise
            refused = checks.failed("image", "quarantined (readEnabled=false): it cannot be pulled")
            return self._finalize(verdict, registry, rule, [refused], "")
        if isinstance(manifest, CheckResult):
            return self._finalize(verdict, registry, rule, [manifest], "", status="superseded")
        verdict.tag = request.tag
        results = [checks.passed("tag-resolves", manifest.digest)] if request.tag else []
        if request.tag:
            results += checks.check_tag(rule, request.tag)
        inspection = self._inspect(client, rule, verdict.repository, manifest)
        results += inspection.results
        if checks.outcome(results) == "passed" and rule.smoke_run.enabled and inspection.run_digest is None:
            results.append(
                checks.failed("smoke-run", f"the index has no {checks.RUNNER_PLATFORM} image for the run")
            )
        if checks.outcome(results) == "failed" or not rule.smoke_run.enabled:
            return self._finalize(verdict, registry, rule, results, "", inspection=inspection)
        return self._start_run(verdict, registry, rule, results, inspection)

    def _inspect(self, client: RegistryClient, rule: Rule, repository: str, manifest: Manifest) -> Inspection:
        """The manifest's checks; an index is as good as its worst image, each read and checked."""
        try:
            results = checks.check_manifest(rule, manifest.media_type, manifest.document)
        except oci.Malformed as exc:
            return Inspection([checks.failed("image", exc.message)], {}, manifest.digest)
        if manifest.media_type not in oci.INDEX_TYPES:
            results += self._image(client, rule, repository, manifest, in_index=False)
            return Inspection(results, {}, manifest.digest)
        children = checks.index_children(manifest.document)
        if not children or len(children) > MAX_INDEX_IMAGES:
            why = f"the index lists {len(children)} images: verification reads 1 to {MAX_INDEX_IMAGES}"
            return Inspection([*results, checks.failed("index", why)], {}, None)
        per_image: list[tuple[str, list[CheckResult]]] = []
        images: dict[str, str] = {}
        for child in children:
            found = self._index_image(client, rule, repository, child)
            per_image.append((f"{checks.platform_of(child)} {child.digest[:19]}", found))
            images[child.digest] = checks.outcome(found)
        runner = checks.runner_child(children)
        return Inspection(results + checks.merge_images(per_image), images, runner.digest if runner else None)

    def _index_image(
        self, client: RegistryClient, rule: Rule, repository: str, child: oci.Descriptor
    ) -> list[CheckResult]:
        if child.media_type in oci.INDEX_TYPES:
            return [checks.failed("image", "an index inside the index: not verified")]
        if child.media_type not in rule.media_types:
            return [checks.failed("image", f"media type '{child.media_type}' is not allowed")]
        if child.size > MAX_MANIFEST_BYTES:
            return [checks.failed("image", f"the manifest is over {MAX_MANIFEST_BYTES} bytes")]
        try:
            image = client.get_manifest(repository, child.digest)
        except NotFound:
            return [checks.failed("image", "not in the repository")]
        except InvalidInput as exc:
            return [checks.failed("image", exc.message)]
        except AccessDenied:
            if not self._quarantined(client, repository, child.digest):
                raise
            return [checks.failed("image", "quarantined (readEnabled=false): it cannot be pulled")]
        return self._image(client, rule, repository, image, in_index=True)

    @staticmethod
    def _quarantined(client: RegistryClient, repository: str, digest: str) -> bool:
        """A read refused while metadata reads go through: the image has readEnabled=false, which no
        client can pull (a refusal of anything else is the app's access, and retried)."""
        attributes = (client.manifest_properties(repository, digest) or {}).get("changeableAttributes")
        return isinstance(attributes, dict) and attributes.get("readEnabled") is False

    def _image(
        self, client: RegistryClient, rule: Rule, repository: str, manifest: Manifest, *, in_index: bool
    ) -> list[CheckResult]:
        """An image manifest's own checks and its config's; a malformed one fails with why."""
        try:
            found = checks.check_image_manifest(manifest.document)
            if found:
                return found
            descriptor = oci.image_manifest(manifest.document).config
            if descriptor.size > rule.max_config_bytes:
                return checks.check_config(rule, oci.ImageConfig(), descriptor.size)
            config = oci.image_config(client.get_json_blob(repository, descriptor))
            users: dict[str, int] | str | None = None
            if rule.forbid_root_user and checks.user_to_resolve(config) is not None:
                users = self._passwd(client, repository, oci.image_manifest(manifest.document).layers)
            return checks.check_config(rule, config, descriptor.size, users, in_index=in_index)
        except oci.Malformed as exc:
            return [checks.failed("image", exc.message)]

    def _passwd(
        self, client: RegistryClient, repository: str, layers: list[oci.Descriptor]
    ) -> dict[str, int] | str:
        """The image's /etc/passwd users, or why they could not be read (bounded: MAX_LAYER_READ_BYTES)."""
        budget = ReadBudget(MAX_LAYER_READ_BYTES)
        try:
            return rootfs.passwd_users(layers, lambda layer: client.blob_chunks(repository, layer, budget))
        except (InvalidInput, NotFound) as exc:
            return exc.message

    def _resolve(self, client: RegistryClient, request: Request) -> tuple[Request, Manifest | CheckResult]:
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
        self,
        verdict: Verdict,
        registry: RegistryRef,
        rule: Rule,
        results: list[CheckResult],
        inspection: Inspection,
    ) -> Verdict:
        smoke, run_digest = rule.smoke_run, inspection.run_digest or verdict.digest
        body = tasks.encoded_cmd_request(
            tasks.smoke_command(verdict.repository, run_digest, smoke.args), timeout=smoke.timeout_seconds
        )
        client = self.tasks_client(registry.subscription)
        state = tasks.schedule(client, registry.group, registry.name, body)
        tag = verdict.tag  # the tag checked, which may not be the first event's (see _resolve)

        def running(current: Verdict) -> bool:
            if current.final or current.status == "running":
                return False
            current.status, current.run_id, current.tag = "running", state.run_id, tag
            current.checks = [r.as_dict() for r in results]
            current.images, current.run_digest = inspection.images, run_digest
            if tag:
                current.record_tag(tag, checks.tag_result(checks.check_tag(rule, tag)))
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
        inspection: Inspection | None = None,
    ) -> Verdict:
        outcome, tag = status or checks.outcome(results), verdict.tag

        def final(current: Verdict) -> bool:
            if current.final:
                return False
            current.status, current.tag = outcome, tag
            current.checks = [r.as_dict() for r in results]
            current.log_excerpt = log_text
            current.completed_at = current.updated_at = self.clock.now()
            if inspection is not None:
                current.images, current.run_digest = inspection.images, inspection.run_digest
            smoke = next((r for r in results if r.name == "smoke-run"), None)
            if smoke is not None and smoke.status == "failed" and current.run_digest in current.images:
                current.images = {**current.images, current.run_digest: "failed"}
            if tag and outcome != "superseded":
                current.record_tag(tag, checks.tag_result(checks.check_tag(rule, tag)))
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
                done = self._lock(client, verdict) if action == LOCK else self._quarantine(client, verdict)
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

    def _lock(self, client: RegistryClient, verdict: Verdict) -> str:
        """Lock the digest that passed (an index with its images), and each passed tag that still points
        to it: a tag moved on to another image is left as it is, and said so."""
        for digest in (verdict.digest, *verdict.images):
            client.update_manifest(verdict.repository, digest, LOCKED)
        done = [
            f"locked {verdict.digest}" + (f" and its {len(verdict.images)} images" if verdict.images else "")
        ]
        passed = [t for t, r in verdict.tag_results.items() if r.get("status") == "passed"]
        for tag in dict.fromkeys([*([verdict.tag] if verdict.tag else []), *passed]):
            done.append(self._lock_tag(client, verdict.repository, tag, verdict.digest))
        return "; ".join(done)

    def _lock_tag(self, client: RegistryClient, repository: str, tag: str, digest: str) -> str:
        """Lock `tag` only while it points to `digest`: read, lock, read again. A push between the first
        read and the lock moved the tag: its attributes are put back as they were. Once locked, the tag
        cannot move."""
        current, attributes = client.tag_target(repository, tag)
        if current != digest:
            return f"tag {tag} not locked: it points to {current or 'nothing'} now"
        client.update_tag(repository, tag, LOCKED)
        after, _ = client.tag_target(repository, tag)
        if after != digest:
            client.update_tag(repository, tag, {key: bool(attributes.get(key, True)) for key in LOCKED})
            return f"tag {tag} not locked: it moved to {after or 'nothing'} while being locked"
        return f"locked tag {tag}"

    def _quarantine(self, client: RegistryClient, verdict: Verdict) -> str:
        """readEnabled=false on the digest and on each image of an index that failed its checks (an image
        that passed may be shared with another index, and stays readable)."""
        bad = [digest for digest, status in verdict.images.items() if status == "failed"]
        for digest in (verdict.digest, *bad):
            client.update_manifest(verdict.repository, digest, {"readEnabled": False})
        return (
            f"quarantined {verdict.digest}"
            + (f" and {len(bad)} of its images" if bad else "")
            + (" (readEnabled=false)")
        )

    def _judge_tag(self, verdict: Verdict, request: Request) -> Verdict:
        """A tag pushed for a digest already verified: the tag rules are the tag's own, judged for each
        tag while it points to the digest, with the rule's action on that tag."""
        tag = request.tag
        if tag is None or tag == verdict.tag or tag in verdict.tag_results:
            # Judged already (a redelivery, or another event of the tag): its action was applied then,
            # or is the final lock's (`_lock` locks every passed tag it finds recorded).
            return verdict
        rule = self.policy.rule_for(verdict.repository)
        client = self.registry_data(request.registry)
        if client.tag_target(verdict.repository, tag)[0] != verdict.digest:
            return verdict  # moved on: the event of the image it points to now judges it
        result = checks.tag_result(checks.check_tag(rule, tag))
        action = None
        if result["status"] == "failed" and rule.on_fail == QUARANTINE:
            client.update_tag(verdict.repository, tag, {"readEnabled": False})
            action = f"quarantined tag {tag} (readEnabled=false)"
        judged = {**result, **({"action": action} if action else {})}
        verdict = self._write(verdict, lambda current: current.record_tag(tag, judged))
        if result["status"] == "passed" and rule.on_pass == LOCK and verdict.status == "passed":
            locked = {**result, "action": self._lock_tag(client, verdict.repository, tag, verdict.digest)}
            verdict = self._write(verdict, lambda current: current.record_tag(tag, locked))
        log.info("tag %s %s: %s %s", tag, judged["status"], action or "", context(verdict, request.cause))
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
