"""The cleanup orchestration over an in-memory inventory: what happens between the plan and the delete
(a lock, an extension, a group gone), how a delete ARM refuses or fails is recorded, and what a run
publishes and stores. The same paths against devstack are in tests/integration/test_cleanup.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.cleanup import DELETED_EVENT, WARNING_EVENT, CleanupService, RunStore
from shared.cleanup.planner import BLOCKED, KEPT, NOT_REVIEWED, WARN, WARNED_TAG, Group, Lock, iso
from shared.cleanup.records import DELETED, FAILED, GONE, WOULD_DELETE, Held, Outcome, RunRecord
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import DockmasterError, Retryable
from shared.publisher import Publisher
from tests.support.cleanup import Grid, MemoryInventory, MemoryTable, arm_failure

SUB = "00000000-0000-0000-0000-0000000000c1"
NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)


def run_of(error: DockmasterError) -> str:
    """The run id an error names in its detail, as the API's error body shows it."""
    assert isinstance(error.detail, dict)
    return str(error.detail["runId"])


def lab(name: str, **expires_in: float) -> Group:
    return Group(SUB, name, {"purpose": "lab", "expiresOn": iso(NOW + dt.timedelta(**expires_in))})


class World:
    """A service over an in-memory inventory, table and event grid, at a fixed time."""

    def __init__(self, *groups: Group, **settings: Any) -> None:
        self.inventory = MemoryInventory({group.name: group for group in groups})
        self.table = MemoryTable()
        self.grid = Grid()
        self.clock = FixedClock(NOW)
        values = {
            "AZURE_SUBSCRIPTION_ID": SUB,
            "CLEANUP_ENABLED": True,
            "CLEANUP_DRY_RUN": False,
            "CLEANUP_LAB_TAG": "purpose=lab",
            "CLEANUP_NAME_PATTERNS": "",
            "CLEANUP_WARNING_HOURS": 12,
            **settings,
        }
        self.service = CleanupService(
            Settings.model_validate(values),
            self.inventory,
            RunStore(self.table),
            Publisher(self.grid),
            self.clock,
            concurrency=1,
        )

    def outcome(self, run: RunRecord, name: str) -> Outcome:
        (found,) = [outcome for outcome in run.outcomes if outcome.name == name]
        return found


def test_a_lock_set_between_plan_and_delete_keeps_the_lab() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.meanwhile.append(lambda inv: inv.locked.update(old=[Lock("late", "CanNotDelete")]))
    run = world.service.execute(confirm=True)
    outcome = world.outcome(run, "old")
    assert outcome.result == BLOCKED
    assert outcome.reason.startswith("re-checked before deleting: blocked: locked"), outcome.reason
    assert world.inventory.deleted == []
    assert ("delete", "old") not in world.inventory.calls, "no delete is sent for a locked lab"
    assert world.service.get_run(run.run_id).blocked == ["old"]


def test_a_lock_arm_reports_at_the_delete_blocks_the_lab() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.failures["delete", "old"] = arm_failure(409, "ScopeLocked")
    run = world.service.execute(confirm=True)
    outcome = world.outcome(run, "old")
    assert (outcome.result, outcome.reason) == (
        BLOCKED,
        "a lock appeared after the plan: ARM refused the delete (ScopeLocked)",
    )
    assert not outcome.transient


def test_a_failed_delete_is_recorded_as_failed_and_retried_by_the_next_run() -> None:
    world = World(lab("failing", hours=-2), lab("fine", hours=-1))
    world.inventory.failures["delete", "failing"] = arm_failure(500, "InternalServerError")
    with pytest.raises(Retryable) as raised:
        world.service.execute(confirm=True)
    run_id = run_of(raised.value)
    stored = world.service.get_run(run_id)
    failed = world.outcome(stored, "failing")
    assert (failed.result, failed.transient) == (FAILED, True)
    assert failed.reason == "deleting failing: Azure Resource Manager answered 500 InternalServerError"
    assert stored.deleted == ["fine"]
    assert stored.finished_at == NOW
    del world.inventory.failures["delete", "failing"]
    assert world.service.execute(confirm=True).deleted == ["failing"], "the next run deletes it"


def test_a_delete_the_identity_may_not_send_is_failed_and_not_retried() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.failures["delete", "old"] = arm_failure(403, "AuthorizationFailed")
    run = world.service.execute(confirm=True)
    outcome = world.outcome(run, "old")
    assert (outcome.result, outcome.transient) == (FAILED, False)
    assert "refused the app's identity (403 AuthorizationFailed)" in outcome.reason
    assert run.failed == ["old"]


def test_a_re_read_that_fails_is_a_failed_deletion_worth_retrying() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.failures["locks", "old"] = ServiceRequestError("connection dropped")
    with pytest.raises(Retryable):
        world.service.execute(confirm=True)
    (stored,) = [world.service.get_run(key[1]) for key in world.table.rows if key[1].startswith("run-")]
    outcome = world.outcome(stored, "old")
    assert (outcome.result, outcome.transient) == (FAILED, True)
    assert outcome.reason.startswith("re-reading old before deleting it: ")
    assert world.inventory.deleted == []


def test_a_lab_extended_or_gone_before_the_delete_is_not_deleted() -> None:
    world = World(lab("extended", hours=-2), lab("gone", hours=-1))

    def meanwhile(inventory: MemoryInventory) -> None:
        inventory.groups["extended"] = lab("extended", hours=30)
        del inventory.groups["gone"]

    world.inventory.meanwhile.append(meanwhile)
    run = world.service.execute(confirm=True)
    extended = world.outcome(run, "extended")
    assert extended.result == KEPT
    assert extended.reason.startswith("re-checked before deleting: keep: expires "), extended.reason
    assert (world.outcome(run, "gone").result, world.outcome(run, "gone").reason) == (
        GONE,
        "no longer exists",
    )
    assert world.inventory.deleted == []


def test_the_run_is_recorded_before_the_first_delete() -> None:
    world = World(lab("old", hours=-1))
    seen: list[RunRecord] = []
    world.inventory.meanwhile.append(
        lambda _: seen.extend(
            world.service.get_run(key[1]) for key in world.table.rows if key[1].startswith("run-")
        )
    )
    run = world.service.execute(confirm=True)
    assert [(r.run_id, r.finished_at) for r in seen] == [(run.run_id, None)]
    assert run.finished_at == NOW


def test_a_dry_run_sends_no_delete() -> None:
    world = World(lab("old", hours=-1), CLEANUP_DRY_RUN=True)
    run = world.service.execute(confirm=True)
    assert world.outcome(run, "old").result == WOULD_DELETE
    assert [call for call in world.inventory.calls if call[0] == "delete"] == []
    assert world.grid.of(DELETED_EVENT) == []


def test_only_what_the_reviewed_plan_deletes_is_deleted() -> None:
    world = World(lab("old", hours=-1))
    plan = world.service.plan()
    world.inventory.groups["newer"] = lab("newer", hours=-1)
    world.clock.advance(minutes=5)
    run = world.service.execute(plan.plan_id, confirm=True)
    assert run.deleted == ["old"]
    assert world.outcome(run, "newer").result == NOT_REVIEWED
    assert world.inventory.deleted == ["old"]


def test_a_listing_that_fails_stops_the_run_and_is_recorded() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.failures["list", ""] = Retryable("listing: Azure Resource Manager answered 429")
    with pytest.raises(DockmasterError) as raised:
        world.service.execute(confirm=True, trigger="timer")
    stored = world.service.get_run(run_of(raised.value))
    assert stored.error == "DependencyUnavailable: listing: Azure Resource Manager answered 429"
    assert (stored.trigger, stored.outcomes, stored.finished_at) == ("timer", [], NOW)
    assert world.inventory.deleted == []


def test_each_accepted_delete_is_announced_with_its_run() -> None:
    world = World(lab("a", hours=-2), lab("b", hours=-1), lab("kept", hours=40))
    world.inventory.failures["delete", "b"] = arm_failure(409, "ScopeLocked")
    run = world.service.execute(confirm=True)
    (event,) = world.grid.of(DELETED_EVENT)
    assert (event.subject, event.data["runId"], event.data["result"]) == ("a", run.run_id, DELETED)


def test_a_lab_near_its_expiry_is_warned_once_and_the_warning_stamped() -> None:
    world = World(lab("soon", hours=6))
    item = world.service.plan().items[0]
    assert item.decision == WARN
    assert item.notes[-1] == f"warning published; {WARNED_TAG}={iso(NOW + dt.timedelta(hours=6))} stamped"
    assert world.inventory.groups["soon"].tags[WARNED_TAG] == iso(NOW + dt.timedelta(hours=6))
    world.service.plan()
    assert [event.subject for event in world.grid.of(WARNING_EVENT)] == ["soon"], "warned once"


def test_a_read_only_lock_on_a_lab_to_be_warned_blocks_it_and_stamps_nothing() -> None:
    world = World(lab("soon", hours=6))
    world.inventory.locked["soon"] = [Lock("frozen", "ReadOnly")]
    item = world.service.plan().items[0]
    assert item.decision == BLOCKED
    assert world.grid.of(WARNING_EVENT) == []
    assert WARNED_TAG not in world.inventory.groups["soon"].tags


def held(group: str, *types: str) -> list[Held]:
    return [
        Held(kind, f"r{n}", f"/subscriptions/{SUB}/resourceGroups/{group}/providers/{kind}/r{n}")
        for n, kind in enumerate(types)
    ]


def test_a_deleted_lab_records_what_it_held_and_what_may_outlive_it() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.held["old"] = held(
        "old",
        "Microsoft.ContainerRegistry/registries",
        "Microsoft.KeyVault/vaults",
        "Microsoft.ContainerRegistry/registries",
    )
    run = world.service.execute(confirm=True)
    outcome = world.service.get_run(run.run_id).outcomes[0]  # as stored, read back
    assert outcome.result == DELETED
    assert [h.name for h in outcome.held] == ["r0", "r2", "r1"]  # by id
    assert outcome.summary() == {"Microsoft.ContainerRegistry/registries": 2, "Microsoft.KeyVault/vaults": 1}
    (residue,) = outcome.residue
    assert residue.startswith("a Key Vault outlives the delete as a soft-deleted vault")
    (event,) = world.grid.of(DELETED_EVENT)
    assert event.data["heldByType"] == outcome.summary()
    assert event.data["heldCount"] == 3


def test_a_lock_on_a_resource_inside_a_lab_is_recorded_as_what_blocks_it() -> None:
    world = World(lab("old", hours=-1))
    world.inventory.held["old"] = held("old", "Microsoft.RecoveryServices/vaults")
    on = "Microsoft.RecoveryServices/vaults/r0"
    late = [Lock("keep-vault", "CanNotDelete", on)]
    world.inventory.meanwhile.append(lambda inv: inv.locked.update(old=late))  # after the plan
    run = world.service.execute(confirm=True)
    outcome = world.outcome(run, "old")
    assert outcome.result == BLOCKED
    assert outcome.locks == (f"keep-vault (CanNotDelete, on {on})",)
    assert outcome.residue[0] == f"lock keep-vault (CanNotDelete) on {on} refuses the group's delete"
    assert outcome.residue[1].startswith("a Recovery Services vault fails the group's delete")
    assert world.inventory.deleted == []
