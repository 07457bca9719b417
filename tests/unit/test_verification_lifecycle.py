"""A verdict's transitions (shared/lifecycle.py), each on its own: when it applies, what it changes, and
that it changes nothing of the verdict it is given (the verifier retries it on a fresh read)."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace

import pytest

from shared import lifecycle
from shared.lifecycle import Checked
from shared.verdicts import MAX_EVENTS, Verdict

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
CLAIM = dt.timedelta(seconds=120)
DIGEST = "sha256:" + "a" * 64
IMAGE = "sha256:" + "b" * 64  # an index's image


def verdict(**fields: object) -> Verdict:
    base = Verdict("reg", "app/web", DIGEST, "v1", "1.0", events=["e1"], created_at=NOW, claimed_at=NOW)
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def unchanged(transition: lifecycle.Transition, given: Verdict) -> Verdict | None:
    """`transition` on `given`, checking it left `given` as it was."""
    before = copy.deepcopy(given)
    after = transition(given)
    assert given == before, "a transition returns a new verdict, never changes the one it is given"
    return after


def test_claim_takes_a_released_or_abandoned_verdict_only() -> None:
    fresh = verdict(claimed_at=NOW - CLAIM + dt.timedelta(seconds=1))
    assert unchanged(lambda v: lifecycle.claim(v, NOW, CLAIM), fresh) is None
    for claimed_at in (None, NOW - CLAIM, NOW - dt.timedelta(hours=1)):
        taken = unchanged(lambda v: lifecycle.claim(v, NOW, CLAIM), verdict(claimed_at=claimed_at))
        assert taken is not None
        assert taken.claimed_at == NOW
    assert lifecycle.claim(verdict(status="passed", claimed_at=None), NOW, CLAIM) is None, (
        "final: nothing to do"
    )


def test_release_gives_up_only_its_own_claim() -> None:
    mine = verdict(claimed_at=NOW)
    released = unchanged(lambda v: lifecycle.release(v, NOW), mine)
    assert released is not None
    assert released.claimed_at is None
    assert lifecycle.release(verdict(claimed_at=NOW + CLAIM), NOW) is None, "another worker's claim"
    assert lifecycle.release(verdict(status="failed", claimed_at=NOW), NOW) is None


def test_record_delivery_counts_each_cause_once_and_keeps_the_first_ids() -> None:
    again = unchanged(lambda v: lifecycle.record_delivery(v, "e2", NOW), verdict())
    assert again is not None
    assert (again.events, again.events_recorded, again.updated_at) == (["e1", "e2"], 2, NOW)
    assert lifecycle.record_delivery(again, "e2", NOW) is None
    full = verdict(events=[f"e{i}" for i in range(MAX_EVENTS)])
    counted = lifecycle.record_delivery(full, "late", NOW)
    assert counted is not None
    assert (len(counted.events), counted.events_recorded) == (MAX_EVENTS, MAX_EVENTS + 1)


def test_reopen_turns_a_superseded_verdict_pending_for_the_new_push() -> None:
    old = verdict(
        status="superseded",
        checks=[{"name": "tag-resolves"}],
        completed_at=NOW,
        published=True,
        claimed_at=None,
    )
    reopened = unchanged(lambda v: lifecycle.reopen(v, "2.0", NOW), old)
    assert reopened is not None
    assert (reopened.status, reopened.tag, reopened.checks) == ("pending", "2.0", [])
    assert (reopened.completed_at, reopened.published, reopened.claimed_at) == (None, False, NOW)
    assert lifecycle.reopen(verdict(status="passed"), "2.0", NOW) is None
    assert lifecycle.reopen(verdict(), "2.0", NOW) is None


def test_delete_marks_the_verdict_once_per_event() -> None:
    gone = unchanged(lambda v: lifecycle.delete(v, "d1", NOW), verdict())
    assert gone is not None
    assert (gone.deleted, gone.events, gone.updated_at) == (True, ["e1", "d1"], NOW)
    assert lifecycle.delete(gone, "d1", NOW) is None
    assert lifecycle.delete(gone, "d2", NOW) is not None


CHECKED = Checked(
    tag="1.0",
    checks=[{"name": "env", "status": "passed", "reason": ""}],
    images={IMAGE: "passed"},
    run_digest=IMAGE,
    tag_result={"status": "passed", "reason": "ok"},
)


def test_start_run_records_the_run_and_what_was_checked() -> None:
    running = unchanged(lambda v: lifecycle.start_run(v, "dm1", CHECKED, NOW), verdict())
    assert running is not None
    assert (running.status, running.run_id, running.checks) == ("running", "dm1", CHECKED.checks)
    assert (running.images, running.run_digest) == (CHECKED.images, CHECKED.run_digest)
    assert running.tag_results == {"1.0": {"status": "passed", "reason": "ok"}}
    assert lifecycle.start_run(running, "dm2", CHECKED, NOW) is None, "another worker scheduled one first"
    assert lifecycle.start_run(verdict(status="failed"), "dm1", CHECKED, NOW) is None


@pytest.mark.parametrize("outcome", ["passed", "failed"])
def test_finalize_records_the_outcome_and_the_actions_to_apply(outcome: str) -> None:
    action = "lock" if outcome == "passed" else "quarantine"
    checked = Checked("1.0", [], None, None, {"status": outcome, "reason": ""}, "log", [action])
    running = verdict(
        status="running", images={"sha256:" + "b" * 64: "passed"}, run_digest="sha256:" + "b" * 64
    )
    final = unchanged(lambda v: lifecycle.finalize(v, outcome, checked, NOW), running)
    assert final is not None
    assert (final.status, final.log_excerpt, final.completed_at) == (outcome, "log", NOW)
    assert final.pending_actions == [action]
    assert final.images == running.images, "not read again: the verdict keeps what it has"
    assert final.tag_results["1.0"]["status"] == outcome
    assert lifecycle.finalize(final, "failed", checked, NOW) is None, "final once"


def test_finalize_fails_the_image_a_failed_smoke_run_ran() -> None:
    running = verdict(
        status="running", images={"sha256:" + "b" * 64: "passed"}, run_digest="sha256:" + "b" * 64
    )
    final = lifecycle.finalize(running, "failed", Checked("1.0", []), NOW, smoke_failed=True)
    assert final is not None
    assert final.images == {IMAGE: "failed"}


def test_supersede_judges_no_tag_and_applies_nothing() -> None:
    gone = unchanged(lambda v: lifecycle.supersede(v, "1.0", [{"name": "tag-resolves"}], NOW), verdict())
    assert gone is not None
    assert (gone.status, gone.tag, gone.tag_results, gone.pending_actions) == ("superseded", "1.0", {}, [])


def test_actions_are_recorded_in_order_then_the_verdict_published() -> None:
    final = verdict(status="passed", pending_actions=["lock", "quarantine"])
    assert lifecycle.record_action(final, "quarantine", "quarantined") is None, "not the next one"
    locked = unchanged(lambda v: lifecycle.record_action(v, "lock", "locked it"), final)
    assert locked is not None
    assert (locked.pending_actions, locked.actions) == (["quarantine"], ["locked it"])
    published = unchanged(lifecycle.mark_published, locked)
    assert published is not None
    assert published.published
    assert lifecycle.mark_published(published) is None


def test_judge_tag_records_a_changed_result_only() -> None:
    judged = unchanged(
        lambda v: lifecycle.judge_tag(v, "latest", {"status": "failed", "reason": "r"}), verdict()
    )
    assert judged is not None
    assert judged.tag_results == {"latest": {"status": "failed", "reason": "r"}}
    assert lifecycle.judge_tag(judged, "latest", {"status": "failed", "reason": "r"}) is None


def test_finalize_fixes_what_the_referrer_says_and_reopen_forgets_it() -> None:
    checked = Checked("1.0", [{"name": "x", "status": "passed", "reason": "ok"}], subject=("oci", 42))
    ran = {"status": "Succeeded", "exitStatus": 0, "logDigest": "sha256:" + "c" * 64}
    done = unchanged(
        lambda v: lifecycle.finalize(v, "passed", replace(checked, run_result=ran), NOW),
        verdict(events=["e1", "e2"]),
    )
    assert done is not None
    assert (done.subject, done.run_result, done.final_events, done.referrer) == (("oci", 42), ran, 2, None)
    done.referrer = "sha256:" + "d" * 64
    done.status = "superseded"
    again = unchanged(lambda v: lifecycle.reopen(v, "2.0", NOW), done)
    assert again is not None
    assert (again.referrer, again.final_events, again.run_result) == (None, 0, {})


def test_record_referrer_once_on_a_final_verdict_with_why_when_not_attached() -> None:
    final = verdict(status="passed")
    attached = unchanged(lambda v: lifecycle.record_referrer(v, "sha256:" + "d" * 64), final)
    assert attached is not None
    assert attached.referrer == "sha256:" + "d" * 64
    assert attached.actions == []
    assert lifecycle.record_referrer(attached, "sha256:" + "e" * 64) is None, "attached already"
    refused = lifecycle.record_referrer(final, "", "verdict not attached as a referrer: denied")
    assert refused is not None
    assert (refused.referrer, refused.actions) == ("", ["verdict not attached as a referrer: denied"])
    assert lifecycle.record_referrer(verdict(status="running"), "sha256:" + "d" * 64) is None
