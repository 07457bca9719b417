"""An extend-link world: a lab in an in-memory inventory, the used-links table, a fixed clock, a key."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from azure.core.exceptions import ResourceExistsError

from shared.cleanup.extension import LabExtension
from shared.cleanup.links import ExtendLink, LinkExtension, UsedLinks
from shared.cleanup.planner import Group, iso
from shared.clock import FixedClock
from shared.config import Settings
from tests.support.cleanup import MemoryInventory, MemoryTable

SUB = "00000000-0000-0000-0000-0000000000c1"
NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
EXPIRY = NOW + dt.timedelta(hours=6)
KEY = bytes(range(32))
KEY_SETTING = base64.b64encode(KEY).decode()


class InsertTable(MemoryTable):
    """MemoryTable with TableClient's insert, which conflicts on an existing key."""

    def create_entity(self, entity: dict[str, Any]) -> None:
        if (entity["PartitionKey"], entity["RowKey"]) in self.rows:
            raise ResourceExistsError("The specified entity already exists.")
        self.rows[entity["PartitionKey"], entity["RowKey"]] = dict(entity)


class World:
    def __init__(self, *tags: tuple[str, str], state: str = "Succeeded", **settings: Any) -> None:
        group = Group(SUB, "lab1", {"purpose": "lab", "expiresOn": iso(EXPIRY), **dict(tags)}, state=state)
        self.inventory = MemoryInventory({"lab1": group})
        self.clock = FixedClock(NOW)
        self.table = InsertTable()
        values = {
            "AZURE_SUBSCRIPTION_ID": SUB,
            "CLEANUP_ENABLED": True,
            "CLEANUP_LINK_KEY": KEY_SETTING,
            "CLEANUP_MAX_EXTENSION_HOURS": 48,
            **settings,
        }
        config = Settings.model_validate(values)
        self.links = LinkExtension(
            config, LabExtension(config, self.inventory, self.clock), UsedLinks(self.table), self.clock
        )

    def token(self, hours: float = 24, expiry: dt.datetime = EXPIRY) -> str:
        return ExtendLink.issue(SUB, "lab1", expiry, hours).token(KEY)

    def expiry(self) -> str:
        return self.inventory.groups["lab1"].tags["expiresOn"]
