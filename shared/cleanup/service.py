"""The cleanup executor: lists groups, applies the planner, stamps tags, warns, deletes, records.

- `plan(filters)` lists every page of resource groups, keeps the labs, checks the locks of those that
  would be deleted or warned about, decides (planner), then acts on first sight: relative expiries are
  normalized to absolute tags, `dockmaster-first-seen` is stamped, warnings are published and recorded
  as a `dockmaster-warned=<expiry>` tag. The plan is stored under its id.
- `execute(plan_id | filters, confirm=True)` plans afresh; with a plan id it acts only on labs both the
  reviewed and the fresh plan delete. Right before each delete it reads the group and its locks again
  and decides once more, so a lab extended, tagged or locked a moment ago is kept. `begin_delete` is
  sent with no polling (the no-wait delete), a few at a time, at most the cap per run.
  The run is recorded before the first delete and again when it ends.
- Tag writes read the group and write back its tags with ours merged in; a tag someone changed since
  the listing is left alone. Nothing else of the group is ever written.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from ..clock import Clock
from ..config import Settings
from ..errors import (
    CLEANUP_ROLE,
    AccessDenied,
    ConfigurationError,
    Conflict,
    DockmasterError,
    InvalidInput,
    NotFound,
    Retryable,
    from_azure,
)
from ..publisher import Event, Publisher
from .planner import (
    BLOCKED,
    DELETE,
    INVALID_EXPIRY,
    KEPT,
    MANAGED,
    PROTECTED,
    WARN,
    WARNED_TAG,
    Group,
    Key,
    Lock,
    PlanItem,
    Rules,
    decide,
    expiry_of,
    iso,
    needs_locks,
    parse_lab_tag,
    plan_labs,
    reconcile,
    split_list,
)
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
)

log = logging.getLogger("dockmaster.cleanup")

CONCURRENCY = 8  # ARM requests in flight at once (lock checks, tag writes, deletes)
PLAN_MAX_AGE = dt.timedelta(hours=24)  # a reviewed plan older than this must be made again

T = TypeVar("T")
R = TypeVar("R")


def arm_code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "code", None) or exc.reason or exc.status_code)


def arm_error(exc: AzureError, doing: str) -> DockmasterError:
    """An ARM failure through the one table in shared/errors.py: Retryable when trying later can help.
    A refusal of the app's identity is logged as an error where it happens, whoever handles it."""
    error = from_azure(exc, doing, service="Azure Resource Manager", role=CLEANUP_ROLE)
    if isinstance(error, AccessDenied):
        log.error("%s", error.message)
    return error


def scope_locked(exc: HttpResponseError) -> bool:
    return exc.status_code == 409 and arm_code(exc) == "ScopeLocked"


def as_group(subscription: str, found: Any) -> Group:
    properties = getattr(found, "properties", None)
    return Group(
        subscription=subscription,
        name=str(found.name),
        tags=dict(found.tags or {}),
        managed_by=found.managed_by or None,
        state=str(getattr(properties, "provisioning_state", None) or "Succeeded"),
    )


WARNING_EVENT = "Dockmaster.Cleanup.Warning"
DELETED_EVENT = "Dockmaster.Cleanup.Deleted"


def warning_event(group: Group, item: PlanItem) -> Event:
    """A lab's warning before deletion; one per expiry (a later extension warns again)."""
    if item.expiry is None:
        raise ValueError(f"a warning for {group.name} needs an expiry")
    return Event(
        type=WARNING_EVENT,
        source=group.id,
        subject=group.name,
        data=item.public(),
        id=f"warning|{group.subscription}|{group.name}|{iso(item.expiry)}".lower(),
        doing=f"publishing {WARNING_EVENT} for {group.name}",
    )


def deleted_event(outcome: Outcome, run_id: str) -> Event:
    """A lab whose delete ARM accepted, in run `run_id`."""
    source = f"/subscriptions/{outcome.subscription}/resourceGroups/{outcome.name}"
    return Event(
        type=DELETED_EVENT,
        source=source,
        subject=outcome.name,
        data={**outcome.public(), "runId": run_id},
        id=f"deleted|{source}|{run_id}".lower(),
        doing=f"publishing {DELETED_EVENT} for {outcome.name}",
    )


@dataclasses.dataclass
class CleanupService:
    """Plan, execute, extend, and read back runs. Clients are injected; time comes from `clock`."""

    settings: Settings
    resource_client: Callable[[str], Any]
    lock_client: Callable[[str], Any]
    store: RunStore
    publisher: Publisher
    clock: Clock
    concurrency: int = CONCURRENCY

    # ---------------------------------------------------------------- configuration

    def _ensure_enabled(self) -> None:
        if not self.settings.cleanup_enabled:
            raise Conflict("cleanup is turned off (CLEANUP_ENABLED=false)")

    def subscriptions(self, filters: Filters | None = None) -> tuple[str, ...]:
        configured = split_list(self.settings.cleanup_subscriptions) or tuple(
            split_list(self.settings.subscription_id)
        )
        if not configured:
            raise ConfigurationError("set CLEANUP_SUBSCRIPTIONS or AZURE_SUBSCRIPTION_ID")
        if filters is None or not filters.subscriptions:
            return configured
        known = {s.lower(): s for s in configured}
        others = [s for s in filters.subscriptions if s.lower() not in known]
        if others:
            raise InvalidInput(f"subscriptions not configured for cleanup: {', '.join(others)}")
        return tuple(dict.fromkeys(known[s.lower()] for s in filters.subscriptions))

    def rules(self, filters: Filters | None = None) -> Rules:
        settings, filters = self.settings, filters or Filters()
        try:
            lab_tag = parse_lab_tag(settings.cleanup_lab_tag)
        except ValueError as exc:
            raise ConfigurationError(f"CLEANUP_LAB_TAG: {exc}") from exc
        try:
            only_tag = parse_lab_tag(filters.lab_tag) if filters.lab_tag else None
        except ValueError as exc:
            raise InvalidInput(f"filters.labTag: {exc}") from exc
        cap = settings.cleanup_max_deletions
        if filters.max_deletions is not None:
            cap = min(cap, filters.max_deletions)
        older = filters.older_than_hours
        try:
            return Rules(
                lab_tag=lab_tag,
                name_patterns=split_list(settings.cleanup_name_patterns),
                expiry_tag=settings.cleanup_expiry_tag.strip() or "expiresOn",
                creation_tags=split_list(settings.cleanup_creation_tags),
                protection_tags=split_list(settings.cleanup_protection_tag),
                protected_groups=split_list(settings.cleanup_protected_groups),
                app_group=settings.app_resource_group.strip(),
                registry_groups=tuple(
                    (ref.subscription, ref.group, ref.name) for ref in settings.registries.values()
                ),
                ttl=dt.timedelta(hours=settings.cleanup_ttl_hours),
                grace=dt.timedelta(hours=settings.cleanup_grace_hours),
                warning=dt.timedelta(hours=settings.cleanup_warning_hours),
                max_deletions=cap,
                only_patterns=filters.name_patterns,
                only_tag=only_tag,
                older_than=dt.timedelta(hours=older) if older is not None else None,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"cleanup settings: {exc} (CLEANUP_LAB_TAG, CLEANUP_NAME_PATTERNS)"
            ) from exc

    # ---------------------------------------------------------------- plan

    def plan(self, filters: Filters | Mapping[str, Any] | None = None) -> Plan:
        """The plan for `filters` (see `Filters`), applied on first sight and stored under its id."""
        return self._plan(Filters.parse(filters))[0]

    def get_plan(self, plan_id: str) -> Plan:
        return self.store.get_plan(check_id("plan", plan_id))

    def _plan(self, filters: Filters) -> tuple[Plan, Rules]:
        self._ensure_enabled()
        rules = self.rules(filters)
        subscriptions = self.subscriptions(filters)
        now = self.clock.now()
        labs, scanned, pages = self.list_labs(subscriptions, rules)
        locks = self._locks_of([lab for lab in labs if needs_locks(lab, rules, now)])
        items = plan_labs(labs, rules, now, locks)
        by_key = {lab.key: lab for lab in labs}
        items = self._each(lambda item: self._apply(by_key[item.key], item), items)
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

    def list_labs(self, subscriptions: Iterable[str], rules: Rules) -> tuple[list[Group], int, int]:
        """The labs of every subscription (every page), with the number of groups and pages read."""
        labs: list[Group] = []
        scanned = pages = 0
        for subscription in subscriptions:
            doing = f"listing the resource groups of subscription {subscription}"
            try:
                for page in (
                    self.resource_client(subscription)
                    .resource_groups.list(filter=rules.server_filter)
                    .by_page()
                ):
                    pages += 1
                    for found in page:
                        scanned += 1
                        group = as_group(subscription, found)
                        if rules.is_lab(group):
                            labs.append(group)
            except AzureError as exc:
                raise arm_error(exc, doing) from exc
        return labs, scanned, pages

    def _lock_list(self, subscription: str, name: str) -> list[Lock]:
        operations = self.lock_client(subscription).management_locks
        return [
            Lock(str(lock.name), str(lock.level)) for lock in operations.list_at_resource_group_level(name)
        ]

    def _locks_of(self, groups: Sequence[Group]) -> dict[Key, list[Lock]]:
        def one(group: Group) -> list[Lock]:
            try:
                return self._lock_list(group.subscription, group.name)
            except ResourceNotFoundError:
                return []  # gone meanwhile: the delete will find it gone
            except AzureError as exc:
                raise arm_error(exc, f"reading the locks of {group.name}") from exc

        return dict(zip((g.key for g in groups), self._each(one, groups), strict=True))

    def _each(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`work` on every item, a few at a time, results in order; the first error propagates."""
        if len(items) <= 1:
            return [work(item) for item in items]
        workers = min(self.concurrency, len(items))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cleanup") as pool:
            return list(pool.map(work, items))

    # ---------------------------------------------------------------- first sight: stamps and warnings

    def merge_tags(
        self, group: Group, updates: Mapping[str, str], expected: Mapping[str, str | None] | None = None
    ) -> dict[str, str]:
        """Write `updates` into the group's tags, leaving every other tag as it is; a tag whose value is
        no longer the `expected` one (changed since the listing) is not written. Returns what was."""
        operations = self.resource_client(group.subscription).resource_groups
        current = as_group(group.subscription, operations.get(group.name))
        tags = dict(current.tags)
        written: dict[str, str] = {}
        for name, value in updates.items():
            found = current.tag(name)
            if expected is not None and name in expected and (found[1] if found else None) != expected[name]:
                continue
            tags[found[0] if found else name] = value
            written[name] = value
        if written:
            operations.update(group.name, {"tags": tags})
        return written

    def _apply(self, group: Group, item: PlanItem) -> PlanItem:
        if item.tag_writes:
            item = self._stamp(group, item)
        if item.decision == WARN and item.warn:
            item = self._warn(group, item)
        return item

    def _stamp(self, group: Group, item: PlanItem) -> PlanItem:
        try:
            written = self.merge_tags(group, item.tag_writes, item.expected_tags)
        except HttpResponseError as exc:
            if scope_locked(exc):
                note = "tags not stamped: the group is locked (ReadOnly)"
                if item.decision in (DELETE, WARN):
                    return item.noted(note, decision=BLOCKED, reason=f"{note}; {item.reason}")
                return item.noted(note)
            return item.noted(f"tags not stamped ({exc.status_code} {arm_code(exc)}); tried again next run")
        except AzureError as exc:
            return item.noted(f"tags not stamped ({type(exc).__name__}); tried again next run")
        skipped = sorted(set(item.tag_writes) - set(written))
        note = (
            "stamped " + ", ".join(f"{k}={v}" for k, v in written.items()) if written else "nothing stamped"
        )
        if skipped:
            note += f"; {', '.join(skipped)} changed since the listing, left as is"
        return item.noted(note)

    def _warn(self, group: Group, item: PlanItem) -> PlanItem:
        if item.expiry is None:
            raise ValueError(f"a warning for {group.name} needs an expiry")
        if not self.publisher.enabled:
            log.warning("cleanup warning: %s expires %s (no events topic)", group.name, iso(item.expiry))
            return item.noted("warning logged only: no events topic (DOCKMASTER_EVENTS_TOPIC_ENDPOINT)")
        try:
            self.publisher.publish(warning_event(group, item))
        except DockmasterError as exc:
            log.log(logging.WARNING if isinstance(exc, Retryable) else logging.ERROR, "%s", exc.message)
            return item.noted(f"warning not published ({exc.message}); tried again next run")
        try:
            self.merge_tags(group, {WARNED_TAG: iso(item.expiry)})
        except AzureError as exc:
            return item.noted(f"warning published, not recorded ({type(exc).__name__}): it may be sent again")
        return item.noted(f"warning published; {WARNED_TAG}={iso(item.expiry)} stamped")

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
        self._ensure_enabled()
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
        run.outcomes += self._each(lambda item: self._delete(item, rules, dry), todo)
        self._announce_deleted(run)
        return self._finish(run)

    def _reviewed(self, plan_id: str) -> Plan:
        """The plan a caller reviewed, while it is recent enough to stand for the world."""
        reviewed = self.get_plan(plan_id)
        age = self.clock.now() - reviewed.created_at
        if age > PLAN_MAX_AGE:
            raise Conflict(f"plan {plan_id} is {age} old (more than {PLAN_MAX_AGE}): make a new plan")
        return reviewed

    def _announce_deleted(self, run: RunRecord) -> None:
        """An event for each deletion ARM accepted; one not published is noted in the run, not retried."""
        for outcome in run.having(DELETED):
            try:
                self.publisher.publish(deleted_event(outcome, run.run_id))
            except DockmasterError as exc:
                log.log(logging.WARNING if isinstance(exc, Retryable) else logging.ERROR, "%s", exc.message)
                run.notes.append(f"{DELETED_EVENT} for {outcome.name} not published: {exc.message}")

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
        """The last moment: read the group and its locks, decide again, then send the delete, no wait."""

        def outcome(
            result: str, reason: str, expiry: dt.datetime | None = item.expiry, transient: bool = False
        ) -> Outcome:
            return Outcome(item.subscription, item.name, result, reason, expiry, transient)

        operations = self.resource_client(item.subscription).resource_groups
        try:
            group = as_group(item.subscription, operations.get(item.name))
            locks = self._lock_list(item.subscription, item.name)
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
            # polling=False: send the DELETE and return; no poller thread follows the operation.
            operations.begin_delete(item.name, polling=False)
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
        """Push a lab's expiry out by `hours` (from its expiry, or from now if that has passed); the new
        expiry may be at most CLEANUP_MAX_EXTENSION_HOURS from now. Returns the new expiry."""
        self._ensure_enabled()
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            raise InvalidInput("hours must be a positive number")
        if hours > self.settings.cleanup_max_extension_hours:  # also keeps the date arithmetic in range
            limit = self.settings.cleanup_max_extension_hours
            raise InvalidInput(f"hours must be at most {limit:g} (CLEANUP_MAX_EXTENSION_HOURS)")
        sub = self.subscriptions(Filters(subscriptions=(subscription,)) if subscription else None)[0]
        rules = self.rules()
        found = self._lab(sub, group, rules)
        new = self._extended_expiry(found, rules, hours)
        try:
            self.merge_tags(found, {rules.expiry_tag: iso(new)})
        except HttpResponseError as exc:
            if scope_locked(exc):
                raise Conflict(f"'{group}' is locked (ReadOnly): its expiry cannot be written") from exc
            raise arm_error(exc, f"writing the expiry of {group}") from exc
        except AzureError as exc:
            raise arm_error(exc, f"writing the expiry of {group}") from exc
        log.info("cleanup: %s extended to %s", group, iso(new))
        return new

    def _lab(self, subscription: str, group: str, rules: Rules) -> Group:
        """A lab as ARM has it now; one that is not a lab, or is being deleted, is refused."""
        try:
            found = as_group(subscription, self.resource_client(subscription).resource_groups.get(group))
        except ResourceNotFoundError as exc:
            raise NotFound(f"resource group '{group}' was not found in subscription {subscription}") from exc
        except AzureError as exc:
            raise arm_error(exc, f"reading {group}") from exc
        if not rules.is_lab(found):
            raise InvalidInput(f"'{group}' is not a lab (no lab tag, no matching name pattern)")
        if found.state.lower() == "deleting":
            raise Conflict(f"'{group}' is already being deleted")
        return found

    def _extended_expiry(self, found: Group, rules: Rules, hours: float) -> dt.datetime:
        """The lab's expiry `hours` later (whole seconds); refused unless it only delays the deletion."""
        group, now = found.name, self.clock.now()
        # A lab cleanup never deletes (protected, managed, an expiry that does not parse) has no expiry to
        # push out: writing one would make it deletable. Refused with the plan's own reason.
        before = decide(found, rules, now, ())
        if before.decision in (PROTECTED, MANAGED, INVALID_EXPIRY):
            advice = "; write a valid expiry to its tag instead" if before.decision == INVALID_EXPIRY else ""
            raise Conflict(
                f"'{group}' cannot be extended: cleanup never deletes it ({before.decision}: "
                f"{before.reason}){advice}"
            )
        current = expiry_of(found, rules, now).at
        if current is None:  # decide() said invalid-expiry above; kept for the type checker
            raise Conflict(f"'{group}' cannot be extended: its expiry does not parse")
        start = max(current, now)
        exact = start + dt.timedelta(hours=hours)
        maximum = dt.timedelta(hours=self.settings.cleanup_max_extension_hours)
        if exact > now + maximum:
            room = max(0.0, (now + maximum - start).total_seconds() / 3600)
            limit = maximum.total_seconds() / 3600
            raise InvalidInput(
                f"the expiry would be {iso(exact)}, beyond the maximum of {limit:g}h "
                f"from now (CLEANUP_MAX_EXTENSION_HOURS): extend by at most {room:.1f}h"
            )
        # Whole seconds, rounded up: rounding down could write an expiry before the current one.
        new = exact if exact.microsecond == 0 else exact.replace(microsecond=0) + dt.timedelta(seconds=1)
        after = decide(
            dataclasses.replace(found, tags={**found.tags, rules.expiry_tag: iso(new)}), rules, now, ()
        )
        if new <= current or (after.decision == DELETE and before.decision != DELETE):
            raise Conflict(f"'{group}': extending to {iso(new)} would bring its deletion closer")
        return new

    def get_run(self, run_id: str) -> RunRecord:
        return self.store.get_run(check_id("run", run_id))
