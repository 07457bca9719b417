"""The cleanup orchestration: plan, then execute with the last-moment re-check, and record every run.

- `plan(filters)` lists the labs through the inventory, reads the locks of those that would be deleted or
  warned about, decides (planner), then acts on first sight (`first_sight`): relative expiries are
  normalized to absolute tags, `dockmaster-first-seen` is stamped, warnings are published and recorded
  as a `dockmaster-warned=<expiry>` tag. The plan is stored under its id.
- `execute(plan_id | filters, confirm=True)` plans afresh; with a plan id it acts only on labs both the
  reviewed and the fresh plan delete. Right before each delete it reads the group and its locks again
  and decides once more, so a lab extended, tagged or locked a moment ago is kept. The delete is sent
  with no polling (the no-wait delete), a few at a time, at most the cap per run.
  The run is recorded before the first delete and again when it ends.
- ARM is reached only through the `LabInventory` (`inventory`); extending a lab is `extension`'s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from ..clock import Clock
from ..config import Settings
from ..errors import Conflict, DockmasterError, InvalidInput, Retryable
from ..publisher import Publisher
from . import holdings
from .events import announce_deleted
from .extension import LabExtension
from .first_sight import FirstSight
from .inventory import LabInventory, arm_error, scope_locked
from .parallel import CONCURRENCY, each
from .planner import BLOCKED, DELETE, KEPT, PlanItem, Rules, decide, plan_labs, reconcile
from .records import (
    DELETED,
    FAILED,
    GONE,
    WOULD_DELETE,
    Filters,
    Outcome,
    Plan,
    RunRecord,
    RunStore,
    check_id,
    new_id,
    plan_summary,
    run_summary,
)
from .scope import ensure_enabled, rules_of, subscriptions_of

log = logging.getLogger("dockmaster.cleanup")

PLAN_MAX_AGE = dt.timedelta(hours=24)  # a reviewed plan older than this must be made again


@dataclasses.dataclass
class CleanupService:
    """Plan, execute, extend, and read back runs. ARM is the inventory's; time comes from `clock`."""

    settings: Settings
    inventory: LabInventory
    store: RunStore
    publisher: Publisher
    clock: Clock
    concurrency: int = CONCURRENCY

    def subscriptions(self, filters: Filters | None = None) -> tuple[str, ...]:
        return subscriptions_of(self.settings, filters)

    def rules(self, filters: Filters | None = None) -> Rules:
        return rules_of(self.settings, filters)

    # ---------------------------------------------------------------- plan

    def plan(self, filters: Filters | Mapping[str, Any] | None = None) -> Plan:
        """The plan for `filters` (see `Filters`), applied on first sight and stored under its id."""
        return self._plan(Filters.parse(filters))[0]

    def get_plan(self, plan_id: str) -> Plan:
        return self.store.get_plan(check_id("plan", plan_id))

    def recent(
        self, kind: str, top: int, continuation: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Stored plans or runs (`kind`), newest first, a page at a time: (summaries, next continuation).
        Readable while cleanup is off, as a stored record is."""
        entities, following = self.store.newest(kind, top, continuation)
        summarize = plan_summary if kind == "plan" else run_summary
        return [summarize(entity) for entity in entities], following

    def _plan(self, filters: Filters) -> tuple[Plan, Rules]:
        ensure_enabled(self.settings)
        rules = self.rules(filters)
        subscriptions = self.subscriptions(filters)
        now = self.clock.now()
        labs, locks, scanned, pages, _ = self.inventory.survey(subscriptions, rules)
        items = plan_labs(labs, rules, now, locks)
        by_key = {lab.key: lab for lab in labs}
        first_sight = FirstSight(self.inventory, self.publisher)
        items = each(lambda item: first_sight.apply(by_key[item.key], item), items, self.concurrency)
        plan = Plan(
            plan_id=new_id("plan", now),
            created_at=now,
            filters=filters,
            dry_run=self.settings.cleanup_dry_run,
            max_deletions=rules.max_deletions,
            subscriptions=subscriptions,
            items=items,
            scanned=scanned,
            pages=pages,
        )
        self.store.save_plan(plan)
        log.info("cleanup plan %s: %d groups listed, %s", plan.plan_id, scanned, plan.counts())
        return plan, rules

    # ---------------------------------------------------------------- execute

    def execute(
        self,
        plan_id: str | None = None,
        filters: Filters | Mapping[str, Any] | None = None,
        *,
        confirm: bool,
        dry_run: bool | None = None,
        trigger: str = "api",
    ) -> RunRecord:
        """Plan afresh and delete what it says (with `plan_id`: only what the reviewed plan also said).

        `dry_run` can only make a run drier than CLEANUP_DRY_RUN, never wetter. Raises Retryable, after
        the run is recorded, when a deletion failed in a way worth retrying."""
        if confirm is not True:
            raise InvalidInput("confirm must be true: execution deletes resource groups")
        if plan_id is not None and filters is not None:
            raise InvalidInput("give a plan id or filters, not both")
        ensure_enabled(self.settings)
        reviewed = self._reviewed(plan_id) if plan_id is not None else None
        dry = self.settings.cleanup_dry_run or bool(dry_run)
        started = self.clock.now()
        wanted = reviewed.filters if reviewed else Filters.parse(filters)
        try:
            fresh, rules = self._plan(wanted)
        except (InvalidInput, Conflict):
            raise  # the caller's filters: no run took place
        except DockmasterError as exc:
            unplanned = Plan(new_id("plan", started), started, wanted, dry, 0, (), [])
            run = RunRecord(
                new_id("run", started), trigger, dry, started, unplanned, reviewed_plan_id=plan_id
            )
            self._record_stopped(run, exc)
            raise
        run = RunRecord(new_id("run", started), trigger, dry, started, fresh, reviewed_plan_id=plan_id)
        todo = fresh.deletions
        if reviewed is not None:
            todo, refused = reconcile(reviewed.plan_id, reviewed.items, fresh.items)
            run.outcomes += [Outcome(r.subscription, r.name, r.result, r.reason, r.expiry) for r in refused]
        if todo and not dry:
            # Recorded before the first delete: a run killed mid-batch still leaves a record (no
            # finishedAt) whose plan names every group it may have deleted.
            self.store.save_run(run)
        run.outcomes += each(lambda item: self._delete(item, rules, dry), todo, self.concurrency)
        announce_deleted(self.publisher, run)
        return self._finish(run)

    def _reviewed(self, plan_id: str) -> Plan:
        """The plan a caller reviewed, while it is recent enough to stand for the world."""
        reviewed = self.get_plan(plan_id)
        age = self.clock.now() - reviewed.created_at
        if age > PLAN_MAX_AGE:
            raise Conflict(f"plan {plan_id} is {age} old (more than {PLAN_MAX_AGE}): make a new plan")
        return reviewed

    def _finish(self, run: RunRecord) -> RunRecord:
        """Record the run as finished; Retryable (after recording) when a deletion is worth trying again."""
        run.finished_at = self.clock.now()
        self.store.save_run(run)
        mode = "dry run" if run.dry_run else "for real"
        log.info(
            "cleanup run %s (%s, %s): deleted %s, blocked %s, failed %s",
            *(run.run_id, run.trigger, mode, run.deleted, run.blocked, run.failed),
        )
        transient = [o.name for o in run.outcomes if o.transient]
        if transient:
            raise Retryable(
                f"cleanup run {run.run_id}: deleting {', '.join(transient)} failed in a way worth retrying",
                detail={"runId": run.run_id},
            )
        return run

    def _record_stopped(self, run: RunRecord, error: DockmasterError) -> None:
        """A run that could not plan (ARM throttled or refused the listing, storage failed) is recorded with
        why, so every run, timer or API, leaves a record; if storage itself is down it is only logged."""
        run.error = f"{error.code}: {error.message}"
        known = error.detail if isinstance(error.detail, dict) else {}
        error.detail = {**known, "runId": run.run_id}  # the API's error body points at the record
        run.finished_at = self.clock.now()
        try:
            self.store.save_run(run)
        except DockmasterError as exc:
            log.error(
                "cleanup run %s stopped (%s) and cannot be recorded: %s", run.run_id, error, exc.message
            )
            return
        log.error("cleanup run %s stopped before acting: %s", run.run_id, run.error)

    def _delete(self, item: PlanItem, rules: Rules, dry: bool) -> Outcome:
        """The last moment: read the group, its locks and what it holds, decide again, then send the
        delete, no wait. The outcome records what the group held and what may block or outlive its delete."""
        seen: dict[str, Any] = {}

        def outcome(
            result: str, reason: str, expiry: dt.datetime | None = item.expiry, transient: bool = False
        ) -> Outcome:
            return Outcome(item.subscription, item.name, result, reason, expiry, transient, **seen)

        try:
            group = self.inventory.group(item.subscription, item.name)
            locks = self.inventory.locks(item.subscription, item.name)
            held = self.inventory.resources(item.subscription, item.name)
            seen["held"], seen["held_count"] = holdings.kept(held)
            seen["locks"] = tuple(lock.describe() for lock in locks)
            seen["residue"] = holdings.residue(held, locks)
        except ResourceNotFoundError:
            return outcome(GONE, "no longer exists")
        except AzureError as exc:
            error = arm_error(exc, f"re-reading {item.name} before deleting it")
            return outcome(FAILED, error.message, transient=isinstance(error, Retryable))
        if not rules.is_lab(group):
            return outcome(KEPT, "re-checked before deleting: no longer a lab")
        again = decide(group, rules, self.clock.now(), locks)
        if again.decision != DELETE:
            result = BLOCKED if again.decision == BLOCKED else KEPT
            return outcome(
                result, f"re-checked before deleting: {again.decision}: {again.reason}", again.expiry
            )
        if dry:
            return outcome(WOULD_DELETE, f"dry run: {again.reason}", again.expiry)
        try:
            self.inventory.delete(item.subscription, item.name)
        except HttpResponseError as exc:
            if scope_locked(exc):
                return outcome(
                    BLOCKED, "a lock appeared after the plan: ARM refused the delete (ScopeLocked)"
                )
            if exc.status_code == 404:
                return outcome(GONE, "no longer exists")
            error = arm_error(exc, f"deleting {item.name}")
            return outcome(FAILED, error.message, transient=isinstance(error, Retryable))
        except AzureError as exc:
            error = arm_error(exc, f"deleting {item.name}")
            return outcome(FAILED, error.message, transient=True)
        return outcome(DELETED, f"delete accepted: {again.reason}", again.expiry)

    # ---------------------------------------------------------------- extend, runs

    def extend(self, group: str, hours: float, subscription: str | None = None) -> dt.datetime:
        """Push a lab's expiry out by `hours` (see `LabExtension.extend`). Returns the new expiry."""
        return LabExtension(self.settings, self.inventory, self.clock).extend(group, hours, subscription)

    def get_run(self, run_id: str) -> RunRecord:
        return self.store.get_run(check_id("run", run_id))
