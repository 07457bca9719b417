"""Replayed and forged Event Grid subscription validation at the app's webhook.

Threat: anyone who holds (or guesses) the webhook URL posts a SubscriptionValidationEvent whose
`validationUrl` points at a host of their choosing, hoping the app fetches it (SSRF, or completing a
subscription they created), or replays it as a Notification to reach the function. Guarantee: the
Event Grid system key is required (401 without it; the function key is not it); a validation is
answered only by echoing its `validationCode` (as the Functions host does), nothing ever connects to
`validationUrl`; replayed as a notification it reaches `on_image_event`, which acknowledges and
refuses it without storing anything and without a failed invocation.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.support.hostile import Target, Trap

VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


def validation_event(target: Target, trap: Trap, code: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": target.registry_id,
        "subject": "",
        "eventType": VALIDATION,
        "eventTime": "2026-11-29T08:00:00Z",
        "data": {
            "validationCode": code,
            "validationUrl": f"http://{trap.address}/validate?id={code}&t=2026-11-29T08:00:00Z&apiVersion=2025-02-15",
        },
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def as_cloud_event(event: dict[str, Any], *, data_as_string: bool) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": json.dumps(event["data"]) if data_as_string else event["data"],
    }


def test_validation_is_echoed_and_never_followed(target: Target, trap: Trap) -> None:
    stored = target.verdicts()
    mark = target.log_mark()
    code = uuid.uuid4().hex
    event = validation_event(target, trap, code)
    for body in (
        [event],
        as_cloud_event(event, data_as_string=False),
        as_cloud_event(event, data_as_string=True),
    ):
        answer = target.deliver(body, "SubscriptionValidation")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"validationResponse": code}  # nothing but the code: no URL, no echo
    # Answered by the host itself: the function never ran.
    assert "Functions.on_image_event" not in target.log_since(mark)
    assert trap.connections == []
    assert target.verdicts() == stored


def test_validation_replayed_as_a_notification_is_refused(target: Target, trap: Trap) -> None:
    stored = target.verdicts()
    mark = target.log_mark()
    event = validation_event(target, trap, uuid.uuid4().hex)
    bodies = [
        [event],
        as_cloud_event(event, data_as_string=False),
        [as_cloud_event(event, data_as_string=True)],  # a CloudEvents batch
    ]
    for body in bodies:
        answer = target.deliver(body, "Notification")
        assert answer.status_code == 202, answer.text  # acknowledged: redelivery would not help
    log = target.log_since(mark)
    assert log.count("Executed 'Functions.on_image_event' (Succeeded") == len(bodies), log
    assert "(Failed" not in log
    assert log.count(f"rejected: unsupported event type '{VALIDATION}'") == len(bodies), log
    assert trap.connections == []
    assert target.verdicts() == stored


def test_the_webhook_wants_the_event_grid_key(target: Target, trap: Trap) -> None:
    stored = target.verdicts()
    mark = target.log_mark()
    event = validation_event(target, trap, uuid.uuid4().hex)
    pushed = target.pushed("hostile/keyless", "v1")
    for key in ("", "wrong", target.api.key):  # none, a guess, and the function key (not a system key)
        for kind, body in (("SubscriptionValidation", [event]), ("Notification", [pushed])):
            answer = target.deliver(body, kind, key=key)
            assert (answer.status_code, answer.content) == (401, b""), (key, kind)
    assert "Functions.on_image_event" not in target.log_since(mark)
    assert trap.connections == []
    assert target.verdicts() == stored
