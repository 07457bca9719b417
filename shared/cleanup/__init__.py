"""Scheduled cleanup of stale lab resource groups: a pure planner, the orchestration, ARM, their records.

`planner` decides (no I/O); `service` orchestrates plan, execute (with the last-moment re-check) and
their records; `inventory` is the only part that talks to ARM (list labs and locks, merge tags,
delete); `first_sight` stamps and warns, `events` builds the CloudEvents, `extension` extends a lab,
`scope` turns settings and filters into subscriptions and rules; `records` holds filters, plans and run
records and stores them in Table storage.
`stamps` merges createdAt/createdBy into new groups from ARM's write events.
"""

from .events import DELETED_EVENT, WARNING_EVENT
from .inventory import ArmInventory, LabInventory
from .planner import Group, Lock, PlanItem, Rules, decide, plan_labs
from .records import RUNS_TABLE, Filters, Outcome, Plan, RunRecord, RunStore
from .service import CleanupService

__all__ = [
    "DELETED_EVENT",
    "RUNS_TABLE",
    "WARNING_EVENT",
    "ArmInventory",
    "CleanupService",
    "Filters",
    "Group",
    "LabInventory",
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
