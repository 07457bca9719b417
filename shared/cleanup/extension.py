"""Extending a lab: its expiry tag moved later, never so that cleanup would delete it sooner."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from ..clock import Clock
from ..config import Settings
from ..errors import Conflict, InvalidInput, NotFound
from .inventory import LabInventory, arm_error, scope_locked
from .planner import DELETE, INVALID_EXPIRY, MANAGED, PROTECTED, Group, Rules, decide, expiry_of, iso
from .records import Filters
from .scope import ensure_enabled, rules_of, subscriptions_of

log = logging.getLogger("dockmaster.cleanup")


@dataclasses.dataclass
class LabExtension:
    settings: Settings
    inventory: LabInventory
    clock: Clock

    def extend(
        self,
        group: str,
        hours: float,
        subscription: str | None = None,
        issued_for: dt.datetime | None = None,
    ) -> dt.datetime:
        """Push a lab's expiry out by `hours` (from its expiry, or from now if that has passed); the new
        expiry may be at most CLEANUP_MAX_EXTENSION_HOURS from now. With `issued_for` (an extend link's),
        refused unless the lab still has that expiry. Returns the new expiry."""
        ensure_enabled(self.settings)
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            raise InvalidInput("hours must be a positive number")
        if hours > self.settings.cleanup_max_extension_hours:  # also keeps the date arithmetic in range
            limit = self.settings.cleanup_max_extension_hours
            raise InvalidInput(f"hours must be at most {limit:g} (CLEANUP_MAX_EXTENSION_HOURS)")
        only = Filters(subscriptions=(subscription,)) if subscription else None
        sub = subscriptions_of(self.settings, only)[0]
        rules = rules_of(self.settings)
        found = self._lab(sub, group, rules)
        if issued_for is not None:
            self._still_expiring(found, rules, issued_for)
        new = self._extended_expiry(found, rules, hours)
        try:
            self.inventory.merge_tags(found, {rules.expiry_tag: iso(new)})
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
            found = self.inventory.group(subscription, group)
        except ResourceNotFoundError as exc:
            raise NotFound(f"resource group '{group}' was not found in subscription {subscription}") from exc
        except AzureError as exc:
            raise arm_error(exc, f"reading {group}") from exc
        if not rules.is_lab(found):
            raise InvalidInput(f"'{group}' is not a lab (no lab tag, no matching name pattern)")
        if found.state.lower() == "deleting":
            raise Conflict(f"'{group}' is already being deleted")
        return found

    def _still_expiring(self, found: Group, rules: Rules, issued_for: dt.datetime) -> None:
        current = expiry_of(found, rules, self.clock.now()).at
        if current != issued_for:
            now = iso(current) if current else "no valid expiry"
            raise Conflict(
                f"'{found.name}' has {now} now, not the expiry {iso(issued_for)} this link was sent for: "
                "it was extended or changed since; use the API or a newer link"
            )

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
