"""docker-registry notifications → ACR's ImagePushed / ImageDeleted, in Azure's exact shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.eventgrid.model import EVENTGRID_SCHEMA, KIND_SYSTEM_TOPIC
from devstack.emulator.eventgrid.notifications import RegistryNotifications, acr_event, notification_token
from devstack.emulator.store import Store

REGISTRY_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/MyReg01"
DIGEST = "sha256:862175f00c9b81154ce5fbc0d414cceb95e219564154313802e900d08c50bc3b"
REGISTRY = {
    "id": REGISTRY_ID,
    "name": "MyReg01",
    "location": "westeurope",
    "properties": {"loginServer": "127.0.0.1:4443", "provisioningState": "Succeeded"},
}
REQUEST = {
    "id": "f6436f17-4171-4c55-a76e-0df7028aabc9",
    "addr": "127.0.0.1:47790",
    "host": "127.0.0.1:5998",
    "method": "PUT",
    "useragent": "Buildah/1.28.2",
}
SOURCE = {"addr": "vm:5998", "instanceID": "524bf457-b026-4b5f-85f5-7aacfb8411f3"}


def manifest_push(tag: str | None = "v1", event_id: str = "1c41e429") -> dict[str, Any]:
    """A manifest push as docker-registry 2.8 announces it."""
    target: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 503,
        "digest": DIGEST,
        "length": 503,
        "repository": "myreg01/sample/hello",
        "url": f"http://127.0.0.1:5998/v2/myreg01/sample/hello/manifests/{DIGEST}",
        "references": [{"mediaType": "application/vnd.oci.image.config.v1+json", "size": 504}],
    }
    if tag:
        target["tag"] = tag
    return {
        "id": event_id,
        "timestamp": "2026-11-29T08:05:27.160828119Z",
        "action": "push",
        "target": target,
        "request": REQUEST,
        "actor": {},
        "source": SOURCE,
    }


def blob_push() -> dict[str, Any]:
    event = manifest_push(tag=None, event_id="blob-1")
    event["target"] = {
        "mediaType": "application/octet-stream",
        "size": 1083607,
        "digest": "sha256:b4ce",
        "length": 1083607,
        "repository": "myreg01/sample/hello",
        "url": "http://127.0.0.1:5998/v2/myreg01/sample/hello/blobs/sha256:b4ce",
    }
    return event


def manifest_delete(event_id: str = "ea01f800") -> dict[str, Any]:
    return {
        "id": event_id,
        "timestamp": "2026-11-29T08:05:32.816362053Z",
        "action": "delete",
        "target": {"digest": DIGEST, "repository": "myreg01/sample/hello"},
        "request": {**REQUEST, "method": "DELETE", "host": "localhost:5998"},
        "actor": {},
        "source": SOURCE,
    }


def tag_delete() -> dict[str, Any]:
    event = manifest_delete("a1a110b5")
    event["target"] = {"repository": "myreg01/sample/hello", "tag": "v1"}
    return event


def test_a_tagged_manifest_push_is_an_image_pushed_event() -> None:
    event = acr_event(manifest_push(), REGISTRY, "sample/hello", None)
    assert event is not None
    assert list(event) == [
        "id",
        "topic",
        "subject",
        "eventType",
        "eventTime",
        "data",
        "dataVersion",
        "metadataVersion",
    ]
    assert event["topic"] == REGISTRY_ID
    assert event["subject"] == "sample/hello:v1"
    assert event["eventType"] == "Microsoft.ContainerRegistry.ImagePushed"
    assert (event["dataVersion"], event["metadataVersion"]) == ("1.0", "1")
    assert event["eventTime"].endswith("Z")
    assert event["id"] != "1c41e429"
    assert event["data"] == {
        "id": "1c41e429",
        "timestamp": "2026-11-29T08:05:27.160828119Z",
        "action": "push",
        "location": "westeurope",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 503,
            "digest": DIGEST,
            "length": 503,
            "repository": "sample/hello",
            "tag": "v1",
        },
        "request": {**REQUEST, "host": "127.0.0.1:4443"},
        "actor": {},
        "source": SOURCE,
    }


def test_a_manifest_delete_is_an_image_deleted_event() -> None:
    media_type = "application/vnd.docker.distribution.manifest.v2+json"
    event = acr_event(manifest_delete(), REGISTRY, "sample/hello", media_type)
    assert event is not None
    assert event["eventType"] == "Microsoft.ContainerRegistry.ImageDeleted"
    assert event["subject"] == "sample/hello"
    assert event["data"]["action"] == "delete"
    assert event["data"]["target"] == {
        "mediaType": media_type,
        "digest": DIGEST,
        "repository": "sample/hello",
    }
    assert event["data"]["request"]["method"] == "DELETE"
    assert event["data"]["request"]["host"] == "127.0.0.1:4443"


@pytest.mark.parametrize(
    "notification",
    [blob_push(), manifest_push(tag=None), tag_delete(), {**manifest_push(), "action": "pull"}],
    ids=["blob-push", "untagged-manifest-push", "tag-delete", "pull"],
)
def test_what_acr_raises_no_event_for(notification: dict[str, Any]) -> None:
    assert acr_event(notification, REGISTRY, "sample/hello", None) is None


def test_the_notification_token_is_derived_from_the_signing_key() -> None:
    assert notification_token("a" * 48) == notification_token("a" * 48)
    assert notification_token("a" * 48) != notification_token("b" * 48)


class FakeGrid:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], str]] = []

    def publish(self, topic_id: str, events: list[dict[str, Any]], schema: str) -> int:
        self.published += [(topic_id, e, schema) for e in events]
        return len(events)


class FakeEmulator:
    """The store, Event Grid's fan-out and docker-registry's storage the notifications are given."""

    def __init__(self, home: Path) -> None:
        self.store = Store(home / "emulator.sqlite")
        self.registry_storage = home / "registry"
        self.eventgrid = FakeGrid()

    def notifications(self) -> RegistryNotifications:
        return RegistryNotifications(self.store, self.eventgrid.publish, self.registry_storage)


@pytest.fixture
def emu(tmp_path: Path) -> FakeEmulator:
    fake = FakeEmulator(tmp_path)
    fake.store.put("registry", REGISTRY_ID, "/subscriptions/s/resourceGroups/g", REGISTRY)
    topic_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/systemTopics/acr"
    topic = {"id": topic_id, "properties": {"source": REGISTRY_ID.lower(), "provisioningState": "Succeeded"}}
    fake.store.put(KIND_SYSTEM_TOPIC, topic_id, "/subscriptions/s/resourceGroups/g", topic)
    return fake


def test_events_go_to_the_registrys_system_topic_once(emu: FakeEmulator) -> None:
    handler = emu.notifications()
    assert handler.handle(blob_push()) == 0
    assert handler.handle(manifest_push()) == 1
    assert handler.handle(manifest_push()) == 0  # docker-registry redelivered it: same event id
    assert len(emu.eventgrid.published) == 1
    topic_id, event, schema = emu.eventgrid.published[0]
    assert topic_id.endswith("/systemTopics/acr")
    assert schema == EVENTGRID_SCHEMA
    assert event["subject"] == "sample/hello:v1"


def test_a_delete_carries_the_media_type_seen_at_push(emu: FakeEmulator) -> None:
    handler = emu.notifications()
    handler.handle(manifest_push(tag=None, event_id="by-digest"))  # no event, but the type is remembered
    assert emu.eventgrid.published == []
    handler.handle(manifest_delete())
    handler.handle(tag_delete())
    [(_, event, _)] = emu.eventgrid.published
    assert event["data"]["target"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_a_delete_of_a_manifest_pushed_earlier_reads_its_type_from_storage(emu: FakeEmulator) -> None:
    hexdigest = DIGEST.split(":")[1]
    blob = emu.registry_storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    blob.parent.mkdir(parents=True)
    blob.write_text(json.dumps({"mediaType": "application/vnd.docker.distribution.manifest.v2+json"}))
    emu.notifications().handle(manifest_delete())
    [(_, event, _)] = emu.eventgrid.published
    assert event["data"]["target"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_other_namespaces_are_ignored(emu: FakeEmulator) -> None:
    other = manifest_push()
    other["target"]["repository"] = "someoneelse/app"
    assert emu.notifications().handle(other) == 0
    assert emu.eventgrid.published == []
