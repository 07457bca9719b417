"""Retention's orchestration: plan, then execute with the last-moment re-read, and record every run.

- `plan(filters)` reads each repository a rule applies to (its tag and manifest listings, its verdicts
  in one query), decides (planner) and stores the plan under its id. Deletes nothing.
- `execute(plan_id | filters, confirm=True)` plans afresh; with a plan id it acts only on deletions both
  the reviewed and the fresh plan make (the rest is recorded with why). Right before each delete it
  re-reads that manifest or tag: still there, still pointing where the plan saw it, its tags unchanged,
  still unlocked; otherwise it is kept. Indexes go before their children. Dry run unless
  RETENTION_DRY_RUN=false; a caller's `dryRun` can only make a run drier. The run is recorded before
  the first delete and when it ends; each delete the registry accepted is a CloudEvent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import logging
from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..config import RegistryRef, Settings
from ..errors import Conflict, DockmasterError, InvalidInput, NotFound, Retryable
from ..policy import RetentionPolicy
from ..publisher import Publisher
from .events import announce_deleted
from .inventory import RegistryInventory
from .planner import INDEX_TYPES, MANIFEST, PlanItem, plan_repository
from .records import (
    DELETED,
    FAILED,
    GONE,
    KEPT,
    NOT_REVIEWED,
    WOULD_DELETE,
    Filters,
    Outcome,
    Plan,
    RetentionStore,
    RunRecord,
    check,
    new_id,
)
from .rules import limits_of, ruleset_for

log = logging.getLogger("dockmaster.retention")

PLAN_MAX_AGE = dt.timedelta(hours=24)  # a reviewed plan older than this must be made again
OFF = "retention is turned off (RETENTION_ENABLED=false)"


def reconcile(reviewed: Plan, fresh: Plan) -> tuple[list[PlanItem], list[Outcome]]:
    """Deletions both plans make (as the fresh plan sees them now), and why each other one is not made."""
    approved = {item.key: item for item in reviewed.deletions}
    now = {item.key: item for item in fresh.items}
    todo, refused = [], []
    for item in fresh.deletions:
        before = approved.get(item.key)
        if before is not None and before.decision == item.decision and before.digest == item.digest:
            todo.append(item)
        else:
            refused.append(
                Outcome(item, NOT_REVIEWED, f"not this deletion in the reviewed plan {reviewed.plan_id}")
            )
    for key, item in approved.items():
        again = now.get(key)
        if again is None or again.decision != item.decision or again.digest != item.digest:
            why = f"{again.decision} ({again.rule}): {again.reason}" if again else "no longer listed"
            refused.append(Outcome(item, KEPT, f"the fresh plan: {why}"))
    return todo, refused


@dataclasses.dataclass
class RetentionService:
    settings: Settings
    policy: RetentionPolicy
    inventory: RegistryInventory
    store: RetentionStore
    publisher: Publisher
    clock: Clock

    def _registries(self, filters: Filters) -> list[RegistryRef]:
        configured = self.settings.registries
        if filters.registry is None:
            return list(configured.values())
        found = configured.get(filters.registry.lower())
        if found is None:
            raise NotFound(f"registry '{filters.registry}' is not configured")
        return [found]

    def _repositories(self, ref: RegistryRef, filters: Filters) -> list[str]:
        literal = [r for r in filters.repositories if not any(c in r for c in "*?[")]
        if literal and len(literal) == len(filters.repositories):
            names = literal  # no catalog read when every filter names a repository
        else:
            names = self.inventory.repositories(ref)
            if filters.repositories:
                names = [n for n in names if any(fnmatch.fnmatchcase(n, f) for f in filters.repositories)]
        return [n for n in names if ruleset_for(self.policy, n) is not None]

    # ---------------------------------------------------------------- plan

    def plan(self, filters: Filters | Mapping[str, Any] | None = None) -> Plan:
        """Every tag and manifest of the repositories a rule applies to, with its decision; stored."""
        if not self.settings.retention_enabled:
            raise Conflict(OFF)
        wanted = Filters.parse(filters)
        now = self.clock.now()
        limits = limits_of(self.settings, self.policy)
        plan = Plan(new_id("plan", now), now, wanted, self.settings.retention_dry_run, [])
        for ref in self._registries(wanted):
            before = self.inventory.requests(ref)
            for name in self._repositories(ref, wanted):
                try:
                    repo = self.inventory.read(ref, name)
                except NotFound:
                    plan.repositories.append(
                        {"registry": ref.name, "repository": name, "rule": None, "note": "not found"}
                    )
                    continue
                rules = ruleset_for(self.policy, name)
                items = plan_repository(repo, rules, limits, now, self.inventory.subject_reader(ref, name))
                plan.items += items
                plan.repositories.append(
                    {
                        "registry": ref.name,
                        "repository": name,
                        "rule": rules.source if rules else None,
                        "manifests": len(repo.manifests),
                        "tags": len(repo.tags),
                        "cap": limits.cap(repo.size),
                        "deletions": sum(1 for i in items if i.acts),
                        "deferred": sum(1 for i in items if i.decision == "deferred"),
                    }
                )
            plan.requests += self.inventory.requests(ref) - before
        self.store.save_plan(plan)
        log.info("retention plan %s: %s", plan.plan_id, plan.counts())
        return plan

    def get_plan(self, plan_id: str) -> Plan:
        return self.store.get_plan(check("plan", plan_id))

    def get_run(self, run_id: str) -> RunRecord:
        return self.store.get_run(check("run", run_id))

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
        if confirm is not True:
            raise InvalidInput("confirm must be true: execution deletes images")
        if plan_id is not None and filters is not None:
            raise InvalidInput("give a plan id or filters, not both")
        if not self.settings.retention_enabled:
            raise Conflict(OFF)
        reviewed = self._reviewed(plan_id) if plan_id is not None else None
        dry = self.settings.retention_dry_run or bool(dry_run)
        started = self.clock.now()
        wanted = reviewed.filters if reviewed else Filters.parse(filters)
        try:
            fresh = self.plan(wanted)
        except (InvalidInput, Conflict, NotFound):
            raise
        except DockmasterError as exc:
            run = RunRecord(
                new_id("run", started),
                trigger,
                dry,
                started,
                Plan(new_id("plan", started), started, wanted, dry, []),
                reviewed_plan_id=plan_id,
            )
            self._stopped(run, exc)
            raise
        run = RunRecord(new_id("run", started), trigger, dry, started, fresh, reviewed_plan_id=plan_id)
        todo = fresh.deletions
        if reviewed is not None:
            todo, refused = reconcile(reviewed, fresh)
            run.outcomes += refused
        if todo and not dry:
            self.store.save_run(run)  # a run killed mid-way leaves a record naming what it may have deleted
        # An index before its children (ACR keeps a child an index references), tags before manifests.
        todo = sorted(
            todo, key=lambda i: (i.kind == MANIFEST, i.media_type not in INDEX_TYPES, i.updated or started)
        )
        run.outcomes += [self._delete(item, dry) for item in todo]
        refs = {ref.key: ref.resource_id for ref in self.settings.registries.values()}
        announce_deleted(self.publisher, run, refs)
        return self._finish(run)

    def _reviewed(self, plan_id: str) -> Plan:
        reviewed = self.get_plan(plan_id)
        age = self.clock.now() - reviewed.created_at
        if age > PLAN_MAX_AGE:
            raise Conflict(f"plan {plan_id} is {age} old (more than {PLAN_MAX_AGE}): make a new plan")
        return reviewed

    def _delete(self, item: PlanItem, dry: bool) -> Outcome:
        """The last moment: re-read the manifest or tag; delete only if it is as the plan saw it."""
        ref = self.settings.registries.get(item.registry.lower())
        if ref is None:
            return Outcome(item, KEPT, f"registry '{item.registry}' is no longer configured")
        try:
            why = (self.inventory.recheck_manifest if item.kind == MANIFEST else self.inventory.recheck_tag)(
                ref, item
            )
        except NotFound:
            return Outcome(item, GONE, "no longer there")
        except DockmasterError as exc:
            return Outcome(item, FAILED, f"re-reading it: {exc.message}", isinstance(exc, Retryable))
        if why is not None:
            return Outcome(item, KEPT, f"re-read before the delete: {why}")
        if dry:
            return Outcome(item, WOULD_DELETE, f"dry run: {item.reason}")
        try:
            self.inventory.delete(ref, item)
        except NotFound:
            return Outcome(item, GONE, "no longer there")
        except DockmasterError as exc:
            return Outcome(item, FAILED, exc.message, isinstance(exc, Retryable))
        return Outcome(item, DELETED, f"delete accepted: {item.reason}")

    def _finish(self, run: RunRecord) -> RunRecord:
        run.finished_at = self.clock.now()
        self.store.save_run(run)
        log.info(
            "retention run %s (%s%s): %s",
            run.run_id,
            run.trigger,
            ", dry run" if run.dry_run else "",
            run.counts(),
        )
        transient = [o.item.name for o in run.outcomes if o.transient]
        if transient:
            raise Retryable(
                f"retention run {run.run_id}: deleting {', '.join(transient[:10])} failed, worth retrying",
                detail={"runId": run.run_id},
            )
        return run

    def _stopped(self, run: RunRecord, error: DockmasterError) -> None:
        run.error = f"{error.code}: {error.message}"
        known = error.detail if isinstance(error.detail, dict) else {}
        error.detail = {**known, "runId": run.run_id}
        run.finished_at = self.clock.now()
        try:
            self.store.save_run(run)
        except DockmasterError as exc:
            log.error(
                "retention run %s stopped (%s) and cannot be recorded: %s", run.run_id, error, exc.message
            )
