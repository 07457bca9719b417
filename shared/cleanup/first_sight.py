"""What a plan does to a lab on sight: stamp the tags the planner asks for, and warn before deletion.

Stamps are merged into the group's tags through the inventory (a tag changed since the listing is left
alone); a warning is published once per expiry (the CloudEvent, and the Teams and Slack webhooks
configured: notify.py) and recorded as the tag `dockmaster-warned=<expiry>` once every channel has it.
Neither ever fails a plan: what could not be done is noted on the lab's item and tried again next run.
"""

from __future__ import annotations

import dataclasses
import logging

from azure.core.exceptions import AzureError, HttpResponseError

from ..config import get_settings
from ..errors import DockmasterError
from ..publisher import Publisher
from .events import log_unpublished, warning_event
from .inventory import LabInventory, arm_code, scope_locked
from .notify import Notifier
from .planner import BLOCKED, DELETE, WARN, WARNED_TAG, Group, PlanItem, iso

log = logging.getLogger("dockmaster.cleanup")


@dataclasses.dataclass
class FirstSight:
    inventory: LabInventory
    publisher: Publisher
    notifier: Notifier | None = None  # the Teams and Slack webhooks; None: as configured
    _channels: Notifier = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self._channels = self.notifier or Notifier.configured(get_settings(), self.inventory)

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
        expiry = item.expiry
        if expiry is None:
            raise ValueError(f"a warning for {group.name} needs an expiry")
        published, item = self._publish(group, item)
        delivered, notes = self._channels.send(group, item)
        for note in notes:
            item = item.noted(note)
        if not (published and delivered):
            return item
        try:
            self.inventory.merge_tags(group, {WARNED_TAG: iso(expiry)})
        except AzureError as exc:
            return item.noted(f"warning published, not recorded ({type(exc).__name__}): it may be sent again")
        return item.noted(f"warning published; {WARNED_TAG}={iso(expiry)} stamped")

    def _publish(self, group: Group, item: PlanItem) -> tuple[bool, PlanItem]:
        """The CloudEvent: whether the warning counts as sent on it (no topic: only with a webhook)."""
        if not self.publisher.enabled:
            log.warning("cleanup warning: %s expires %s (no events topic)", group.name, item.expiry)
            note = "warning logged only: no events topic (DOCKMASTER_EVENTS_TOPIC_ENDPOINT)"
            return bool(self._channels.channels), item.noted(note)
        try:
            self.publisher.publish(warning_event(group, item))
        except DockmasterError as exc:
            log_unpublished(exc)
            return False, item.noted(f"warning not published ({exc.message}); tried again next run")
        return True, item
