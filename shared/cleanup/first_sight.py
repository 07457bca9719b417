"""What a plan does to a lab on sight: stamp the tags the planner asks for, and warn before deletion.

Stamps are merged into the group's tags through the inventory (a tag changed since the listing is left
alone); a warning is published once per expiry and recorded as the tag `dockmaster-warned=<expiry>`.
Neither ever fails a plan: what could not be done is noted on the lab's item and tried again next run.
"""

from __future__ import annotations

import dataclasses
import logging

from azure.core.exceptions import AzureError, HttpResponseError

from ..errors import DockmasterError
from ..publisher import Publisher
from .events import log_unpublished, warning_event
from .inventory import LabInventory, arm_code, scope_locked
from .planner import BLOCKED, DELETE, WARN, WARNED_TAG, Group, PlanItem, iso

log = logging.getLogger("dockmaster.cleanup")


@dataclasses.dataclass
class FirstSight:
    inventory: LabInventory
    publisher: Publisher

    def apply(self, group: Group, item: PlanItem) -> PlanItem:
        """The item once its stamps are written and its warning sent, with a note of each."""
        if item.tag_writes:
            item = self._stamp(group, item)
        if item.decision == WARN and item.warn:
            item = self._warn(group, item)
        return item

    def _stamp(self, group: Group, item: PlanItem) -> PlanItem:
        try:
            written = self.inventory.merge_tags(group, item.tag_writes, item.expected_tags)
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
            log_unpublished(exc)
            return item.noted(f"warning not published ({exc.message}); tried again next run")
        try:
            self.inventory.merge_tags(group, {WARNED_TAG: iso(item.expiry)})
        except AzureError as exc:
            return item.noted(f"warning published, not recorded ({type(exc).__name__}): it may be sent again")
        return item.noted(f"warning published; {WARNED_TAG}={iso(item.expiry)} stamped")
