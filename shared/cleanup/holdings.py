"""What a lab held right before its delete, and what of it is known to block the delete or outlive it.

ARM's listing (Resources_ListByResourceGroup) names each resource's type, not its settings, so a known type
is reported as what it may do; a lock on a resource inside the group is certain to refuse the delete.
"""

from __future__ import annotations

from .planner import Lock
from .records import MAX_HELD, Held

# By resource type (ARM compares them without case): what such a resource does to a group's delete.
KNOWN_RESIDUE = {
    # "Delete an Azure Backup Recovery Services vault": a vault with protected items or registered
    # servers cannot be deleted, and with it the group's delete fails.
    "microsoft.recoveryservices/vaults": "a Recovery Services vault fails the group's delete while it holds "
    "protected items or registered servers",
    # "Azure Key Vault soft-delete overview": a deleted vault stays soft-deleted, its name reserved, for its
    # retention period (7–90 days); with purge protection it cannot be purged before then.
    "microsoft.keyvault/vaults": "a Key Vault outlives the delete as a soft-deleted vault (its name "
    "reserved) for its retention period, and with purge protection cannot be purged before then",
}


def kept(held: list[Held]) -> tuple[tuple[Held, ...], int]:
    """The resources a run record keeps (the first MAX_HELD by id) and how many there were."""
    return tuple(sorted(held, key=lambda h: h.id.lower())[:MAX_HELD]), len(held)


def residue(held: list[Held], locks: list[Lock]) -> tuple[str, ...]:
    """Why the delete would fail or leave something behind: locks on resources inside the group (ARM
    refuses the group's delete for them), and each resource type known to block or survive it."""
    notes = [
        f"lock {lock.name} ({lock.level}) on {lock.on} refuses the group's delete"
        for lock in locks
        if lock.on and lock.on != "the subscription"
    ]
    types = sorted({h.type.lower() for h in held} & KNOWN_RESIDUE.keys())
    notes += [KNOWN_RESIDUE[t] for t in types]
    return tuple(notes)
