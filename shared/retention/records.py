"""Retention plans and run records, stored as cleanup's are (`shared/cleanup/records.py`: one entity per
plan or run, the record gzip-compressed over binary properties), in the table `retentionruns`."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..cleanup.records import RunStore, _short, check_id, new_id
from ..clock import stamp
from ..errors import InvalidInput
from .planner import ACTIONS, DECISIONS, KEEP, PlanItem

RUNS_TABLE = "retentionruns"
NOUN = "retention"

# Outcomes of an execution, per deletion of the fresh plan or the reviewed one.
DELETED = "deleted"  # the registry accepted the delete (202)
WOULD_DELETE = "would-delete"  # dry run
KEPT = "kept"  # the re-read right before the delete, or the fresh plan, keeps it
NOT_REVIEWED = "not-reviewed"  # the fresh plan deletes it, the reviewed plan did not
GONE = "gone"  # no longer there
FAILED = "failed"
RESULTS = (DELETED, WOULD_DELETE, KEPT, NOT_REVIEWED, GONE, FAILED)

NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def check(kind: str, value: str) -> str:
    return check_id(kind, value, NOUN)


@dataclass(frozen=True)
class Filters:
    """A caller's narrowing: one configured registry, repositories by name or glob."""

    registry: str | None = None
    repositories: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Filters | Mapping[str, Any] | None) -> Filters:
        if raw is None:
            return cls()
        if isinstance(raw, Filters):
            return raw
        unknown = sorted(set(raw) - {"registry", "repositories", "repository"})
        if unknown:
            raise InvalidInput(f"unknown filters: {', '.join(unknown)}")
        registry = raw.get("registry")
        if registry is not None and (
            not isinstance(registry, str) or not re.fullmatch(r"[A-Za-z0-9]{5,50}", registry)
        ):
            raise InvalidInput("filters.registry must be a configured registry's name")
        names = raw.get("repositories") or ([raw["repository"]] if raw.get("repository") else [])
        if isinstance(names, str):
            names = [names]
        for name in names:
            # A glob's * and ? aside, a repository name as the distribution spec allows it.
            if (
                not isinstance(name, str)
                or len(name) > 256
                or not NAME.fullmatch(name.replace("*", "a").replace("?", "a"))
            ):
                raise InvalidInput(f"filters.repositories: '{name}' is not a repository name or glob")
        return cls(registry, tuple(names))

    def public(self) -> dict[str, Any]:
        return {"registry": self.registry, "repositories": list(self.repositories)}


@dataclass
class Plan:
    plan_id: str
    created_at: dt.datetime
    filters: Filters
    dry_run: bool
    items: list[PlanItem]
    repositories: list[dict[str, Any]] = field(default_factory=list)  # per repository: rule, cap, counts
    requests: int = 0  # registry requests the plan took

    def having(self, decision: str) -> list[PlanItem]:
        return [item for item in self.items if item.decision == decision]

    @property
    def deletions(self) -> list[PlanItem]:
        """What execution sends a request for: manifests deleted by digest, tags untagged."""
        return [item for item in self.items if item.acts]

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for item in self.items:
            found[f"{item.kind}:{item.decision}"] = found.get(f"{item.kind}:{item.decision}", 0) + 1
        return {k: found[k] for k in sorted(found)}

    def public(self, omit_kept: bool = False) -> dict[str, Any]:
        items = [i for i in self.items if not (omit_kept and i.decision == KEEP)]
        return {
            "planId": self.plan_id,
            "createdAt": stamp(self.created_at),
            "dryRun": self.dry_run,
            "filters": self.filters.public(),
            "requests": self.requests,
            "counts": self.counts(),
            "repositories": self.repositories,
            "items": [item.public() for item in items],
            **({"omitted": len(self.items) - len(items)} if omit_kept else {}),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            plan_id=str(data["planId"]),
            created_at=dt.datetime.fromisoformat(str(data["createdAt"])),
            filters=Filters.parse(data.get("filters") or {}),
            dry_run=bool(data["dryRun"]),
            items=[PlanItem.from_public(item) for item in data.get("items") or ()],
            repositories=list(data.get("repositories") or ()),
            requests=int(data.get("requests") or 0),
        )


@dataclass(frozen=True)
class Outcome:
    """What execution did with one deletion."""

    item: PlanItem
    result: str
    reason: str
    transient: bool = False

    def public(self) -> dict[str, Any]:
        return {
            **self.item.public(),
            "result": self.result,
            "reason": self.reason,
            "transient": self.transient,
            "planReason": self.item.reason,
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> Outcome:
        item = PlanItem.from_public({**data, "reason": data.get("planReason") or ""})
        return cls(item, str(data["result"]), str(data["reason"]), bool(data.get("transient")))


@dataclass
class RunRecord:
    run_id: str
    trigger: str
    dry_run: bool
    started_at: dt.datetime
    plan: Plan
    finished_at: dt.datetime | None = None
    reviewed_plan_id: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def having(self, result: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == result]

    def names(self, result: str) -> list[str]:
        return [
            f"{o.item.repository}{':' if o.item.kind == 'tag' else '@'}{o.item.name}"
            for o in self.having(result)
        ]

    def counts(self) -> dict[str, int]:
        return {result: n for result in RESULTS if (n := len(self.having(result)))}

    def public(self, omit_kept: bool = False) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "trigger": self.trigger,
            "dryRun": self.dry_run,
            "startedAt": stamp(self.started_at),
            "finishedAt": stamp(self.finished_at) if self.finished_at else None,
            "planId": self.plan.plan_id,
            "reviewedPlanId": self.reviewed_plan_id,
            "counts": self.counts(),
            "deleted": self.names(DELETED),
            "failed": self.names(FAILED),
            "outcomes": [o.public() for o in self.outcomes],
            "notes": list(self.notes),
            "error": self.error,
            "plan": self.plan.public(omit_kept),
        }

    @classmethod
    def from_public(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(
            run_id=str(data["runId"]),
            trigger=str(data["trigger"]),
            dry_run=bool(data["dryRun"]),
            started_at=dt.datetime.fromisoformat(str(data["startedAt"])),
            plan=Plan.from_public(data["plan"]),
            finished_at=dt.datetime.fromisoformat(str(data["finishedAt"]))
            if data.get("finishedAt")
            else None,
            reviewed_plan_id=data.get("reviewedPlanId"),
            outcomes=[Outcome.from_public(o) for o in data.get("outcomes") or ()],
            notes=list(data.get("notes") or ()),
            error=data.get("error"),
        )


class RetentionStore(RunStore):
    """Retention plans and runs: cleanup's store, its own table and records."""

    NOUN: ClassVar[str] = NOUN

    def save_plan(self, plan: Plan) -> None:  # type: ignore[override]
        summary = {
            "CreatedAt": plan.created_at,
            "DryRun": plan.dry_run,
            "Counts": json.dumps(plan.counts()),
            "Filters": json.dumps(plan.filters.public()),
            "Deletions": _short([f"{i.repository}:{i.name}" for i in plan.deletions]),
        }
        try:
            self._write("plan", plan.plan_id, plan.public(), summary)
        except OverflowError:
            self._write("plan", plan.plan_id, plan.public(omit_kept=True), summary)

    def get_plan(self, plan_id: str) -> Plan:  # type: ignore[override]
        return Plan.from_public(self._read("plan", check("plan", plan_id)))

    def save_run(self, run: RunRecord) -> None:  # type: ignore[override]
        summary: dict[str, Any] = {
            "StartedAt": run.started_at,
            "Trigger": run.trigger,
            "DryRun": run.dry_run,
            "PlanId": run.plan.plan_id,
            "ReviewedPlanId": run.reviewed_plan_id or "",
            "Counts": json.dumps(run.counts()),
            "Deleted": _short(run.names(DELETED)),
            "Failed": _short(run.names(FAILED)),
        }
        if run.finished_at is not None:
            summary["FinishedAt"] = run.finished_at
        if run.error:
            summary["Error"] = run.error[:1000]
        try:
            self._write("run", run.run_id, run.public(), summary)
        except OverflowError:
            self._write("run", run.run_id, run.public(omit_kept=True), summary)

    def get_run(self, run_id: str) -> RunRecord:  # type: ignore[override]
        return RunRecord.from_public(self._read("run", check("run", run_id)))


__all__ = [
    "ACTIONS",
    "DECISIONS",
    "RUNS_TABLE",
    "Filters",
    "Outcome",
    "Plan",
    "RetentionStore",
    "RunRecord",
    "new_id",
]
