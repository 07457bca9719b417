"""What Slack and Teams incoming webhooks document for a message, as checks on a payload.

Slack, "Sending messages using incoming webhooks" and Block Kit's reference: `text`, `blocks` (at most 50;
a section's text at most 3000 characters; a button's `plain_text` at most 75 and its `url` at most 3000).
Teams, "Create an Incoming Webhook": a `message` with one Adaptive Card attachment, at most 28 KB.
"""

from __future__ import annotations

import json
from typing import Any

from shared.cleanup.notify import (
    SLACK_BUTTON_TEXT_CHARS,
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_CHARS,
    SLACK_URL_CHARS,
    TEAMS_MAX_BYTES,
    encoded,
)


def check_slack(payload: dict[str, Any]) -> None:
    """Slack incoming webhooks: `text` and Block Kit `blocks` (section/mrkdwn, actions/button)."""
    assert isinstance(payload["text"], str)
    assert payload["text"]
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    assert 0 < len(blocks) <= SLACK_MAX_BLOCKS
    for block in blocks:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
            assert 0 < len(block["text"]["text"]) <= SLACK_SECTION_CHARS
        else:
            assert block["type"] == "actions"
            assert 0 < len(block["elements"]) <= 25
            for element in block["elements"]:
                assert element["type"] == "button"
                assert element["text"]["type"] == "plain_text"
                assert 0 < len(element["text"]["text"]) <= SLACK_BUTTON_TEXT_CHARS
                assert element["url"].startswith("https://")
                assert len(element["url"]) <= SLACK_URL_CHARS
                assert element.get("style", "primary") in ("primary", "danger")


def check_teams(payload: dict[str, Any]) -> None:
    """Teams incoming webhooks: a message with one Adaptive Card attachment, 1.4 or later, <= 28 KB."""
    assert len(encoded(payload)) <= TEAMS_MAX_BYTES
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert tuple(int(part) for part in card["version"].split(".")) >= (1, 4)
    assert card["body"]
    assert all(element["type"] in ("TextBlock", "FactSet") for element in card["body"])
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl"
        assert action["title"]
        assert action["url"].startswith("https://")
    texts = json.dumps(card["body"])
    for mention in card.get("msteams", {}).get("entities", []):
        assert mention["type"] == "mention"
        assert mention["text"] in texts
        assert mention["mentioned"]["id"]
