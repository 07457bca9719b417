"""The heads-up before a lab is deleted, on Microsoft Teams and Slack incoming webhooks.

A message names the group, its expiry, its owner (the owner tag, else `createdBy`), what it holds (a
count of its resources by type) and a one-click extend link (links.py). Payloads follow each service's
documented format:
- Slack, "Sending messages using incoming webhooks": a JSON body with `text` (the fallback shown in
  notifications) and Block Kit `blocks`; a section's text is at most 3000 characters, a message at most 50
  blocks, a button's `plain_text` at most 75 characters and its `url` at most 3000.
- Teams, "Create an Incoming Webhook" (Send Adaptive Cards): `{"type": "message", "attachments": [{
  "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}`,
  at most 28 KB; the card is an Adaptive Card 1.4 with an `Action.OpenUrl`; a UPN owner is @-mentioned
  through `msteams.entities` (Teams reads a UPN or an Entra object id as the mentioned id).
Only the configured webhook URLs are ever contacted, with no credential and no redirect followed; a URL
holds the webhook's secret, so none is ever logged or written in a note. A channel delivered is recorded
(table `cleanupruns`, partition `warning-sent`) so a retry sends only what failed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from ..config import Settings
from ..errors import DockmasterError
from .links import ExtendLink, link_key
from .planner import Group, PlanItem, iso
from .records import Held

log = logging.getLogger("dockmaster.cleanup")

SLACK_SECTION_CHARS = 3000
SLACK_MAX_BLOCKS = 50
SLACK_BUTTON_TEXT_CHARS = 75
SLACK_URL_CHARS = 3000
TEAMS_MAX_BYTES = 28_000  # "28 KB", read as the stricter 28,000 bytes
ADAPTIVE_CARD_VERSION = "1.4"
SENT_PARTITION = "warning-sent"
TIMEOUT = (5, 15)  # connect, read (seconds)
MAX_TYPES_LISTED = 20


@dataclasses.dataclass(frozen=True)
class Notice:
    """What a warning says, whatever the channel."""

    subscription: str
    group: str
    expiry: dt.datetime
    owner: str | None
    holdings: tuple[tuple[str, int], ...]  # (resource type, count), most first
    link: str | None

    @property
    def resources(self) -> int:
        return sum(count for _, count in self.holdings)

    def holdings_lines(self) -> list[str]:
        lines = [f"{count} × {kind}" for kind, count in self.holdings[:MAX_TYPES_LISTED]]
        rest = self.holdings[MAX_TYPES_LISTED:]
        if rest:
            lines.append(f"and {sum(c for _, c in rest)} more of {len(rest)} other types")
        return lines or ["no resources"]

    def summary(self) -> str:
        who = f" (owner: {self.owner})" if self.owner else ""
        return f"Lab {self.group}{who} will be deleted after {iso(self.expiry)}"


def owner_of(group: Group, owner_tag: str) -> str | None:
    """The lab's owner: its owner tag if set, else the `createdBy` stamp."""
    for name in (owner_tag, "createdBy"):
        found = group.tag(name) if name else None
        if found and found[1].strip():
            return found[1].strip()
    return None


def holdings_of(held: Sequence[Held]) -> tuple[tuple[str, int], ...]:
    counts = collections.Counter(item.type for item in held)
    return tuple(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0].lower())))


# Slack ------------------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (Formatting text: &, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(notice: Notice) -> dict[str, Any]:
    head = f"*Lab `{_mrkdwn(notice.group)}` will be deleted after {iso(notice.expiry)}*"
    owner = f"Owner: {_mrkdwn(notice.owner)}" if notice.owner else "Owner: not tagged"
    facts = f"{owner}\nSubscription: {notice.subscription}"
    holds = f"It holds {notice.resources} resources:\n" + "\n".join(
        f"• {_mrkdwn(line)}" for line in notice.holdings_lines()
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_SECTION_CHARS)}}
        for text in (head, facts, holds)
    ]
    if notice.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Extend this lab"},
                        "url": notice.link,
                        "style": "primary",
                    }
                ],
            }
        )
    return {"text": _clip(notice.summary(), SLACK_SECTION_CHARS), "blocks": blocks}


# Teams ------------------------------------------------------------------------------------------------


def _owner_mention(owner: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The owner's text in the card and the mention entity Teams needs for it (a UPN only)."""
    if not owner:
        return "not tagged", []
    if "@" not in owner or any(c in owner for c in "<> "):
        return owner, []
    text = f"<at>{owner}</at>"
    return text, [{"type": "mention", "text": text, "mentioned": {"id": owner, "name": owner}}]


def teams_payload(notice: Notice) -> dict[str, Any]:
    owner, mentions = _owner_mention(notice.owner)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"Lab {notice.group} will be deleted after {iso(notice.expiry)}",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [
                {"title": "Owner", "value": owner},
                {"title": "Subscription", "value": notice.subscription},
                {"title": "Resources", "value": str(notice.resources)},
            ],
        },
        {
            "type": "TextBlock",
            "text": "\n".join(f"- {line}" for line in notice.holdings_lines()),
            "wrap": True,
        },
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
    }
    if notice.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Extend this lab", "url": notice.link}]
    if mentions:
        card["msteams"] = {"entities": mentions}
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


def encoded(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


PAYLOADS = {"teams": teams_payload, "slack": slack_payload}
NAMES = {"teams": "Teams", "slack": "Slack"}


# Sending ----------------------------------------------------------------------------------------------


class SentNotices:
    """The channels a warning reached, one entity each, so a retry skips them."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @staticmethod
    def row(channel: str, notice: Notice) -> str:
        # Hashed: a RowKey may not hold '/', '\\', '#' or '?', and the key reads no better spelled out.
        raw = f"{channel}|{notice.subscription}|{notice.group}|{iso(notice.expiry)}".lower()
        return hashlib.sha256(raw.encode()).hexdigest()

    def sent(self, channel: str, notice: Notice) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        from ..clients import ensure_table

        ensure_table(self._table, "cleanup runs")
        try:
            self._table.get_entity(SENT_PARTITION, self.row(channel, notice))
        except ResourceNotFoundError:
            return False
        return True

    def record(self, channel: str, notice: Notice) -> None:
        entity = {
            "PartitionKey": SENT_PARTITION,
            "RowKey": self.row(channel, notice),
            "channel": channel,
            "group": notice.group,
            "expiry": iso(notice.expiry),
        }
        self._table.upsert_entity(entity, mode="replace")


@dataclasses.dataclass
class Notifier:
    """Sends a lab's warning to each configured webhook. `channels`: name → URL (empty: none)."""

    settings: Settings
    inventory: Any  # LabInventory: the group's resources
    channels: dict[str, str]
    sent: SentNotices | None
    session: Any = None

    @classmethod
    def configured(cls, settings: Settings, inventory: Any) -> Notifier:
        urls = {
            "teams": settings.cleanup_teams_webhook_url.get_secret_value(),
            "slack": settings.cleanup_slack_webhook_url.get_secret_value(),
        }
        channels = {name: url for name, url in urls.items() if url}
        if not channels:
            return cls(settings, inventory, {}, None)
        from .. import clients
        from ..transport import EnvironmentOnce
        from .records import RUNS_TABLE

        return cls(
            settings, inventory, channels, SentNotices(clients.storage_table(RUNS_TABLE)), EnvironmentOnce()
        )

    def link(self, group: Group, expiry: dt.datetime) -> str | None:
        key, base = self.settings.cleanup_link_key.get_secret_value(), self.settings.public_url
        if not key or not base:
            return None
        hours = min(self.settings.cleanup_link_hours, self.settings.cleanup_max_extension_hours)
        return ExtendLink.issue(group.subscription, group.name, expiry, hours).url(link_key(key), base)

    def notice(self, group: Group, expiry: dt.datetime) -> Notice:
        held = self.inventory.resources(group.subscription, group.name)
        owner = owner_of(group, self.settings.cleanup_owner_tag)
        return Notice(
            group.subscription, group.name, expiry, owner, holdings_of(held), self.link(group, expiry)
        )

    def send(self, group: Group, item: PlanItem) -> tuple[bool, list[str]]:
        """Whether every channel has the warning now, and a note of each that did or did not."""
        if not self.channels or self.sent is None or item.expiry is None:
            return True, []
        from azure.core.exceptions import AzureError

        try:
            notice = self.notice(group, item.expiry)
        except AzureError as exc:
            return False, [
                f"Teams/Slack warning not sent: listing the resources failed ({type(exc).__name__})"
            ]
        results = [self._deliver(channel, url, notice) for channel, url in self.channels.items()]
        notes = [note for _, note in results]
        if notice.link is None:
            notes.append(
                "no extend link in the warning: CLEANUP_LINK_KEY or DOCKMASTER_PUBLIC_URL is not set"
            )
        return all(done for done, _ in results), notes

    def _deliver(self, channel: str, url: str, notice: Notice) -> tuple[bool, str]:
        """Whether the channel has the warning now (sent before, or now), and a note saying which."""
        from azure.core.exceptions import AzureError

        name, sent = NAMES[channel], self.sent
        if sent is None:
            raise ValueError("a channel needs the sent-notices table")
        try:
            if sent.sent(channel, notice):
                return True, f"{name} warning already sent"
            status = self._post(url, encoded(PAYLOADS[channel](notice)))
            if not 200 <= status < 300:
                log.warning("cleanup: the %s webhook answered %d for %s", name, status, notice.group)
                return False, f"{name} warning not delivered (HTTP {status}); tried again next run"
            sent.record(channel, notice)
        except OSError as exc:  # requests' errors are OSErrors; their text may hold the URL: not logged
            log.warning("cleanup: the %s webhook failed for %s (%s)", name, notice.group, type(exc).__name__)
            return False, f"{name} warning not delivered ({type(exc).__name__}); tried again next run"
        except (AzureError, DockmasterError) as exc:
            return (
                False,
                f"{name} warning not sent or not recorded ({type(exc).__name__}); tried again next run",
            )
        return True, f"{name} warning sent"

    def _post(self, url: str, body: bytes) -> int:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        answer = self.session.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        answer.close()
        return int(answer.status_code)
