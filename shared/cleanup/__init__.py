"""Scheduled cleanup of stale lab resource groups: a pure planner, an executor, their records.

`planner` decides (no I/O), `service` lists, stamps, warns and deletes through injected clients, and
`records` holds filters, plans and run records and stores them in Table storage.
"""

from .planner import Group, Lock, PlanItem, Rules, decide, plan_labs
from .records import RUNS_TABLE, Filters, Outcome, Plan, RunRecord, RunStore
from .service import DELETED_EVENT, WARNING_EVENT, CleanupService

__all__ = [
    "DELETED_EVENT",
    "RUNS_TABLE",
    "WARNING_EVENT",
    "CleanupService",
    "Filters",
    "Group",
    "Lock",
    "Outcome",
    "Plan",
    "PlanItem",
    "Rules",
    "RunRecord",
    "RunStore",
    "decide",
    "plan_labs",
]
