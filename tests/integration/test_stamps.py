"""Creation stamps end to end: a group written through ARM with the SDK raises ResourceWriteSuccess on the
subscription's system topic (devstack's Event Grid, with the advanced filter the app's subscription uses),
delivered to on_resource_event on the local Functions host, which merges createdAt and createdBy."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import devapp
from tests.support.api import local_host
from tests.support.stack import Devstack, unique

LOCATION = "westeurope"
DEADLINE_SECONDS = 30


@dataclass
class Stamping:
    url: str
    eventgrid_key: str
    log_path: Path
    subscription: str

    @property
    def webhook(self) -> str:
        return (
            f"{self.url}/runtime/webhooks/eventgrid?functionName=on_resource_event&code={self.eventgrid_key}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(what: str, check: Any, stamping: Stamping) -> Any:
    """Poll `check` until it returns something truthy, failing at the deadline with the host's log."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen:\n{stamping.log()[-4000:]}"
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def stamping(
    devstack: Devstack, credential: Any, resource_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stamping]:
    """The app on its host, and the subscription's resource events wired to it as infra/ does."""
    from azure.mgmt.eventgrid import EventGridManagementClient

    group = unique("stamps-app-")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    tmp = tmp_path_factory.mktemp("stamps")
    eventgrid = EventGridManagementClient(credential, devstack.subscription, **devstack.arm_kwargs())
    settings = {
        "DOCKMASTER_REGISTRIES": "",
        "DOCKMASTER_RUNS_QUEUE": f"stamps-runs-{uuid.uuid4().hex[:8]}",  # the queue trigger needs one
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "CLEANUP_SCHEDULE": "0 0 0 1 1 *",  # yearly: no cleanup while the tests run (it is off anyway)
    }
    with local_host(devstack, tmp, settings) as (url, _, log):
        key = json.loads((tmp / "state" / "keys.json").read_text())["systemKeys"]["eventgrid_extension"]
        webhook = f"{url}/runtime/webhooks/eventgrid?functionName=on_resource_event&code={key}"
        devapp.wire_resource_events({"eventgrid": eventgrid}, group, devstack.subscription, webhook)
        try:
            yield Stamping(url, key, log, devstack.subscription)
        finally:
            # One system topic per source: the next test module that wants the subscription's events
            # needs this one gone.
            eventgrid.system_topics.begin_delete(group, devapp.RESOURCE_EVENTS_TOPIC).result()
            resource_client.resource_groups.begin_delete(group, polling=False)


def tags_of(resource_client: Any, name: str) -> dict[str, str]:
    return dict(resource_client.resource_groups.get(name).tags or {})


def test_a_new_group_is_stamped_from_its_write_event(stamping: Stamping, resource_client: Any) -> None:
    name = unique("stamps-new-")
    before = time.time()
    resource_client.resource_groups.create_or_update(name, {"location": LOCATION, "tags": {"owner": "ada"}})
    try:
        tags = wait_for(
            "the stamp", lambda: (t := tags_of(resource_client, name)).get("createdAt") and t, stamping
        )
        assert tags["owner"] == "ada"
        # The caller of the write, from its token's claims: devstack's managed identity has no UPN or
        # name, so its app id.
        assert tags["createdBy"] == "devstack-client"
        created = dt.datetime.fromisoformat(tags["createdAt"]).timestamp()
        assert before - 1 <= created <= time.time()
    finally:
        resource_client.resource_groups.begin_delete(name, polling=False)


def test_a_present_creation_time_is_never_overwritten(stamping: Stamping, resource_client: Any) -> None:
    name = unique("stamps-kept-")
    given = {"createdAt": "2020-01-01T00:00:00Z"}
    resource_client.resource_groups.create_or_update(name, {"location": LOCATION, "tags": given})
    try:
        tags = wait_for(
            "createdBy", lambda: (t := tags_of(resource_client, name)).get("createdBy") and t, stamping
        )
        assert tags["createdAt"] == "2020-01-01T00:00:00Z"
    finally:
        resource_client.resource_groups.begin_delete(name, polling=False)


def test_a_redelivered_event_changes_nothing(stamping: Stamping, resource_client: Any) -> None:
    name = unique("stamps-again-")
    resource_client.resource_groups.create_or_update(name, {"location": LOCATION})
    try:
        stamped = wait_for(
            "the stamp", lambda: (t := tags_of(resource_client, name)).get("createdAt") and t, stamping
        )
        group_id = f"/subscriptions/{stamping.subscription}/resourceGroups/{name}"
        event_id = str(uuid.uuid4())
        event = {
            "id": event_id,
            "topic": f"/subscriptions/{stamping.subscription}",
            "subject": group_id,
            "eventType": "Microsoft.Resources.ResourceWriteSuccess",
            "eventTime": "2030-01-01T00:00:00Z",  # later than the first: still no overwrite
            "data": {
                "operationName": devapp.GROUP_WRITE,
                "resourceUri": group_id,
                "claims": {"name": "Someone Else"},
                "status": "Succeeded",
            },
            "dataVersion": "2",
            "metadataVersion": "1",
        }
        answer = httpx.post(
            stamping.webhook, json=[event], headers={"aeg-event-type": "Notification"}, timeout=60
        )
        assert answer.status_code == 202, answer.text
        assert f"event={event_id}: " in stamping.log()  # the host answers once the function has run
        assert tags_of(resource_client, name) == stamped
    finally:
        resource_client.resource_groups.begin_delete(name, polling=False)
