"""The heads-up on Teams and Slack: payloads checked against each service's documented message format,
the owner and holdings they name, and a channel that fails retried on the next run (and only it)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.cleanup.first_sight import FirstSight
from shared.cleanup.links import LINK_PATH, verify
from shared.cleanup.notify import (
    Notice,
    Notifier,
    SentNotices,
    holdings_of,
    owner_of,
    slack_payload,
    teams_payload,
)
from shared.cleanup.planner import WARN, WARNED_TAG, Group, PlanItem, iso
from shared.cleanup.records import Held
from shared.config import Settings
from shared.publisher import Publisher
from tests.support.cleanup import Grid, MemoryInventory, MemoryTable
from tests.support.webhooks import check_slack, check_teams

SUB = "00000000-0000-0000-0000-0000000000c1"
NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
EXPIRY = NOW + dt.timedelta(hours=6)
KEY = bytes(range(32))
TEAMS = "https://teams.example.test/webhook/secret-part"
SLACK = "https://slack.example.test/services/T/B/secret-part"


def notice(
    owner: str | None = "alice@contoso.com", types: int = 3, link: str | None = "https://x/e"
) -> Notice:
    held = [Held(f"Microsoft.Type{n % types}/things", f"r{n}", f"/r{n}") for n in range(types * 2)]
    return Notice(SUB, "lab-1", EXPIRY, owner, holdings_of(held), link)


@pytest.mark.parametrize("owner", ["alice@contoso.com", None, "Alice <script>&"])
@pytest.mark.parametrize("types", [1, 3, 400])
def test_payloads_follow_each_services_format(owner: str | None, types: int) -> None:
    check_slack(slack_payload(notice(owner, types)))
    check_teams(teams_payload(notice(owner, types)))


def test_the_message_names_group_expiry_owner_holdings_and_link() -> None:
    found = notice()
    slack = json.dumps(slack_payload(found), ensure_ascii=False)
    teams = teams_payload(found)
    for text in ("lab-1", iso(EXPIRY), "alice@contoso.com", "2 × Microsoft.Type0/things", "https://x/e"):
        assert text in slack
        assert text in json.dumps(teams, ensure_ascii=False)
    assert (
        teams["attachments"][0]["content"]["msteams"]["entities"][0]["mentioned"]["id"] == "alice@contoso.com"
    )


def test_slack_control_characters_are_escaped_and_no_link_no_button() -> None:
    payload = slack_payload(notice("Alice <script>&", link=None))
    assert "Alice &lt;script&gt;&amp;" in json.dumps(payload)
    assert [block["type"] for block in payload["blocks"]] == ["section"] * 3
    assert "actions" not in teams_payload(notice(link=None))["attachments"][0]["content"]


def test_the_owner_is_the_owner_tag_else_created_by() -> None:
    assert owner_of(Group(SUB, "g", {"Owner": "bob", "createdBy": "carol"}), "owner") == "bob"
    assert owner_of(Group(SUB, "g", {"createdBy": "carol"}), "owner") == "carol"
    assert owner_of(Group(SUB, "g", {}), "owner") is None


class Answer:
    def __init__(self, status: int) -> None:
        self.status_code = status

    def close(self) -> None:
        pass


class Webhooks:
    """A session that answers each configured URL with its status and keeps what was posted."""

    def __init__(self, **status: int) -> None:
        self.status = status
        self.posted: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, data: bytes, **options: Any) -> Answer:
        assert options["allow_redirects"] is False
        assert "auth" not in options
        name = "teams" if url == TEAMS else "slack"
        self.posted.append((name, json.loads(data)))
        return Answer(self.status.get(name, 200))


class World:
    def __init__(self, webhooks: Webhooks, **settings: Any) -> None:
        group = Group(
            SUB, "lab-1", {"purpose": "lab", "expiresOn": iso(EXPIRY), "createdBy": "alice@contoso.com"}
        )
        self.inventory = MemoryInventory(
            {"lab-1": group}, held={"lab-1": [Held("Microsoft.Web/sites", "w", "/w")]}
        )
        self.grid = Grid()
        values = {
            "AZURE_SUBSCRIPTION_ID": SUB,
            "CLEANUP_LINK_KEY": base64.b64encode(KEY).decode(),
            "DOCKMASTER_PUBLIC_URL": "https://dockmaster.example.test",
            **settings,
        }
        notifier = Notifier(
            Settings.model_validate(values),
            self.inventory,
            {"teams": TEAMS, "slack": SLACK},
            SentNotices(MemoryTable()),
            webhooks,
        )
        self.first_sight = FirstSight(self.inventory, Publisher(self.grid), notifier)

    def warn(self) -> PlanItem:
        group = self.inventory.groups["lab-1"]
        return self.first_sight.apply(group, PlanItem(SUB, "lab-1", WARN, "soon", expiry=EXPIRY, warn=True))


def test_a_warning_goes_to_both_webhooks_with_a_link_that_verifies() -> None:
    webhooks = Webhooks()
    world = World(webhooks)
    item = world.warn()
    assert [name for name, _ in webhooks.posted] == ["teams", "slack"]
    check_teams(webhooks.posted[0][1])
    check_slack(webhooks.posted[1][1])
    assert item.notes[-1] == f"warning published; {WARNED_TAG}={iso(EXPIRY)} stamped"
    assert "Teams warning sent" in item.notes
    assert "Slack warning sent" in item.notes
    (button,) = webhooks.posted[1][1]["blocks"][-1]["elements"]
    url = urlsplit(button["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "dockmaster.example.test", LINK_PATH)
    link = verify(KEY, parse_qs(url.query)["t"][0], NOW)
    assert (link.group, link.lab_expiry, link.expires, link.hours) == ("lab-1", EXPIRY, EXPIRY, 24)


def test_a_channel_that_fails_is_retried_next_run_and_only_it() -> None:
    webhooks = Webhooks(slack=500)
    world = World(webhooks)
    item = world.warn()
    assert "Slack warning not delivered (HTTP 500); tried again next run" in item.notes
    assert WARNED_TAG not in world.inventory.groups["lab-1"].tags, "not recorded: the next run warns again"
    assert not any(SLACK in note or TEAMS in note for note in item.notes), "a webhook URL is a secret"
    webhooks.status = {}
    item = world.warn()
    assert [name for name, _ in webhooks.posted] == ["teams", "slack", "slack"]
    assert "Teams warning already sent" in item.notes
    assert world.inventory.groups["lab-1"].tags[WARNED_TAG] == iso(EXPIRY)


def test_without_a_key_or_public_url_the_warning_has_no_link() -> None:
    webhooks = Webhooks()
    item = World(webhooks, CLEANUP_LINK_KEY="").warn()
    assert "actions" not in webhooks.posted[0][1]["attachments"][0]["content"]
    assert any("no extend link" in note for note in item.notes)
