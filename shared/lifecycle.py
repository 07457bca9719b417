"""A verdict's transitions, each a named pure function: the verdict as it is → the verdict it becomes, or
None when the transition no longer applies (another delivery or worker did it, or got there first).

The verifier writes a transition's result with the verdict's ETag; on a concurrent write it reads the
verdict again and applies the same transition to that, so every transition is decided on what is stored.

    pending ─claim→ pending (claimed) ─start_run→ running ─finalize→ passed | failed
       │                  │                                   └─→ superseded (supersede)
       └──── finalize / supersede ────────────────────────────────┘
    superseded ─reopen→ pending        final ─record_referrer, record_action*, mark_published
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .verdicts import Verdict

Transition = Callable[[Verdict], "Verdict | None"]


def _copy(verdict: Verdict) -> Verdict:
    """A copy whose lists and maps can change without touching `verdict`."""
    return replace(
        verdict,
        checks=list(verdict.checks),
        events=list(verdict.events),
        tag_results={tag: dict(result) for tag, result in verdict.tag_results.items()},
        images=dict(verdict.images),
        actions=list(verdict.actions),
        pending_actions=list(verdict.pending_actions),
        run_result=dict(verdict.run_result),
    )


def record_delivery(verdict: Verdict, cause: str, now: dt.datetime) -> Verdict | None:
    """Another delivery for the verdict: its cause counted once."""
    changed = _copy(verdict)
    if not changed.record_event(cause):
        return None
    changed.updated_at = now
    return changed


def reopen(verdict: Verdict, tag: str | None, now: dt.datetime) -> Verdict | None:
    """Superseded said "no tag pointed here": a push naming the digest again may say otherwise, so it is
    verified afresh (and superseded again if nothing points to it still). Claimed by the reopening push."""
    if verdict.status != "superseded":
        return None
    return replace(
        _copy(verdict),
        status="pending",
        tag=tag,
        checks=[],
        completed_at=None,
        published=False,
        pending_actions=[],
        run_result={},
        final_events=0,
        referrer=None,
        claimed_at=now,
        updated_at=now,
    )


def claim(verdict: Verdict, now: dt.datetime, abandoned_after: dt.timedelta) -> Verdict | None:
    """Take an unfinished verdict whose claim was released (None: e.g. its run's follow-up could not be
    queued) or abandoned (older than `abandoned_after`); a second chain of follow-ups for one run is
    harmless, none is not."""
    if verdict.final:
        return None
    if verdict.claimed_at is not None and now - verdict.claimed_at < abandoned_after:
        return None
    return replace(_copy(verdict), claimed_at=now)


def release(verdict: Verdict, claimed_at: dt.datetime | None) -> Verdict | None:
    """Give up the claim taken at `claimed_at`, so the platform's redelivery can take the work again."""
    if verdict.final or verdict.claimed_at != claimed_at:
        return None
    return replace(_copy(verdict), claimed_at=None)


def delete(verdict: Verdict, event_id: str, now: dt.datetime) -> Verdict | None:
    """The image is gone from the registry (an ImageDeleted event, recorded once)."""
    if verdict.deleted and event_id in verdict.events:
        return None
    changed = replace(_copy(verdict), deleted=True, updated_at=now)
    if event_id not in changed.events:
        changed.events.append(event_id)
    return changed


@dataclass(frozen=True)
class Checked:
    """What checking found, as a verdict records it: the tag checked (the event's, or another pointing to
    the digest), the checks, an index's images (digest → passed | failed) and what the smoke run runs."""

    tag: str | None
    checks: list[dict[str, str]]
    images: dict[str, str] | None = None  # None: not read (the verdict keeps what it has)
    run_digest: str | None = None
    tag_result: dict[str, str] | None = None  # the tag judged on the tag rules (None: not judged)
    log_excerpt: str = ""
    actions: list[str] = field(default_factory=list)  # to apply once final: lock | quarantine
    subject: tuple[str, int] | None = None  # the manifest read: (media type, size); None: not read
    run_result: dict[str, Any] | None = None  # the smoke run's end (None: no run ended)


def start_run(verdict: Verdict, run_id: str, checked: Checked, now: dt.datetime) -> Verdict | None:
    """The checks passed and the smoke run `run_id` is scheduled: running, unless another worker
    scheduled one first or the verdict is final."""
    if verdict.final or verdict.status == "running":
        return None
    changed = replace(
        _copy(verdict),
        status="running",
        run_id=run_id,
        tag=checked.tag,
        checks=checked.checks,
        images=checked.images or {},
        run_digest=checked.run_digest,
        subject=checked.subject or verdict.subject,
        updated_at=now,
    )
    if checked.tag and checked.tag_result is not None:
        changed.record_tag(checked.tag, checked.tag_result)
    return changed


def finalize(
    verdict: Verdict, outcome: str, checked: Checked, now: dt.datetime, *, smoke_failed: bool = False
) -> Verdict | None:
    """The verdict is in (passed | failed | superseded), with the actions still to apply. When the smoke
    run failed, the image it ran is failed among an index's images too."""
    if verdict.final:
        return None
    changed = replace(
        _copy(verdict),
        status=outcome,
        tag=checked.tag,
        checks=checked.checks,
        log_excerpt=checked.log_excerpt,
        subject=checked.subject or verdict.subject,
        run_result=dict(checked.run_result) if checked.run_result is not None else verdict.run_result,
        final_events=len(verdict.events),
        completed_at=now,
        updated_at=now,
    )
    if checked.images is not None:
        changed.images, changed.run_digest = dict(checked.images), checked.run_digest
    if smoke_failed and changed.run_digest in changed.images:
        changed.images = {**changed.images, str(changed.run_digest): "failed"}
    if checked.tag and checked.tag_result is not None:
        changed.record_tag(checked.tag, checked.tag_result)
    if checked.actions:
        changed.pending_actions = list(checked.actions)
    return changed


def supersede(
    verdict: Verdict, tag: str | None, checks: list[dict[str, str]], now: dt.datetime
) -> Verdict | None:
    """No tag points to the digest any more (or it is gone): final, nothing to apply, no tag judged."""
    return finalize(verdict, "superseded", Checked(tag, checks), now)


def record_action(verdict: Verdict, action: str, done: str) -> Verdict | None:
    """The first pending action is applied (`done` says what came of it)."""
    if verdict.pending_actions[:1] != [action]:
        return None
    changed = _copy(verdict)
    changed.pending_actions = changed.pending_actions[1:]
    changed.actions.append(done)
    return changed


def record_referrer(verdict: Verdict, referrer: str, note: str = "") -> Verdict | None:
    """The verdict is attached to its image as the OCI referrer `referrer`; or, with `note`, it is not
    ("" and why, among the actions), and is not tried again."""
    if verdict.referrer is not None or not verdict.final:
        return None
    changed = replace(_copy(verdict), referrer=referrer)
    if note:
        changed.actions.append(note)
    return changed


def mark_published(verdict: Verdict) -> Verdict | None:
    """The verdict's event is sent."""
    return None if verdict.published else replace(_copy(verdict), published=True)


def judge_tag(verdict: Verdict, tag: str, result: dict[str, str]) -> Verdict | None:
    """A tag pointing to the digest, judged on the tag rules (with the action taken on it, if any)."""
    changed = _copy(verdict)
    return changed if changed.record_tag(tag, result) else None
