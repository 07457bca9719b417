"""ACR events in both schemas, and everything that must be refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.config import RegistryRef
from shared.errors import InvalidInput
from shared.events import DELETED, PUSHED, UnknownRegistry, parse

SAMPLE = json.loads((Path(__file__).parent.parent / "data" / "imagepushed.eventgrid.json").read_text())
REF = RegistryRef.parse(SAMPLE["topic"])
REGISTRIES = {REF.key: REF}


def cloud(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }


@pytest.mark.parametrize("shape", [lambda e: e, cloud], ids=["eventgrid", "cloudevents"])
def test_pushed_in_both_schemas(shape: Any) -> None:
    event = parse(shape(copy.deepcopy(SAMPLE)), REGISTRIES)
    assert event.pushed
    assert (event.registry, event.repository, event.tag) == (REF, "sample/hello-world", "v1")
    assert event.digest == SAMPLE["data"]["target"]["digest"]
    assert event.event_time.tzinfo is not None


def test_deleted_has_no_tag() -> None:
    raw = copy.deepcopy(SAMPLE)
    raw["eventType"] = DELETED
    raw["data"]["target"] = {
        "mediaType": "x",
        "digest": SAMPLE["data"]["target"]["digest"],
        "repository": "a/b",
    }
    event = parse(raw, REGISTRIES)
    assert not event.pushed
    assert event.tag is None


def test_registry_comes_from_the_topic_not_the_request_host() -> None:
    assert parse(copy.deepcopy(SAMPLE), REGISTRIES).registry.name == "dockmasterlab"
    other = copy.deepcopy(SAMPLE)
    other["topic"] = other["topic"].replace("dockmasterlab", "someoneelse")
    with pytest.raises(UnknownRegistry):
        parse(other, REGISTRIES)


def mutate(path: str, value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(SAMPLE)
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (mutate("eventType", "Microsoft.Storage.BlobCreated"), "unsupported event type"),
        (mutate("id", None), "no id"),
        (mutate("data", None), "data.target"),
        (mutate("topic", None), "topic/source"),
        (mutate("data.target.repository", "Upper/Case"), "repository name"),
        (mutate("data.target.repository", "../etc"), "repository name"),
        (mutate("data.target.tag", "bad tag!"), "not a valid OCI tag"),
        (mutate("data.target.tag", None), "without a tag"),
        (mutate("data.target.digest", "sha256:xyz"), "sha256 digest"),
        (mutate("eventTime", "yesterday"), "ISO 8601"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_events_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(raw, REGISTRIES)


def test_pushed_constant() -> None:
    assert SAMPLE["eventType"] == PUSHED
