"""Creation stamps from ARM's resource write events: parsing, the caller from the claims, what is written.

The events have the shape of the documented sample of Microsoft.Resources.ResourceWriteSuccess
(learn.microsoft.com/azure/event-grid/event-schema-subscriptions), for a resource group's write.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.cleanup import Group, Lock
from shared.cleanup.stamps import UPN_CLAIM, Stamper, caller, group_write
from shared.errors import AccessDenied, InvalidInput, Retryable
from tests.support.cleanup import MemoryInventory, arm_failure

SUB = "00000000-0000-0000-0000-000000000001"
GROUP_ID = f"/subscriptions/{SUB}/resourceGroups/lab-1"

# The documented sample's fields, for a resource group created by a user.
SAMPLE: dict[str, Any] = {
    "subject": GROUP_ID,
    "eventType": "Microsoft.Resources.ResourceWriteSuccess",
    "eventTime": "2018-07-19T18:38:04.6117357Z",
    "id": "4db48cba-50a2-455a-93b4-de41a3b5b7f6",
    "data": {
        "authorization": {
            "scope": GROUP_ID,
            "action": "Microsoft.Resources/subscriptions/resourceGroups/write",
            "evidence": {"role": "Subscription Admin"},
        },
        "claims": {
            "aud": "https://management.core.windows.net/",
            "appid": "11111111-1111-1111-1111-111111111111",
            "name": "Ada Lovelace",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": "ada@example.com",
            UPN_CLAIM: "ada@example.com",
            "ver": "1.0",
        },
        "correlationId": "22222222-2222-2222-2222-222222222222",
        "resourceProvider": "Microsoft.Resources",
        "resourceUri": GROUP_ID,
        "operationName": "Microsoft.Resources/subscriptions/resourceGroups/write",
        "status": "Succeeded",
        "subscriptionId": SUB,
        "tenantId": "33333333-3333-3333-3333-333333333333",
    },
    "dataVersion": "2",
    "metadataVersion": "1",
    "topic": f"/subscriptions/{SUB}",
}


def event(**data: Any) -> dict[str, Any]:
    built = copy.deepcopy(SAMPLE)
    built["data"].update(data)
    return built


def stamper(*groups: Group, locked: dict[str, list[Lock]] | None = None) -> tuple[Stamper, MemoryInventory]:
    inventory = MemoryInventory({g.name: g for g in groups}, locked=locked or {})
    return Stamper(inventory, (SUB,), ("createdAt", "creationTimestamp")), inventory


def test_the_documented_sample_is_a_group_write_by_its_upn() -> None:
    write = group_write(SAMPLE)
    assert write is not None
    assert (write.subscription, write.group, write.by) == (SUB, "lab-1", "ada@example.com")
    assert write.at.isoformat() == "2018-07-19T18:38:04.611735+00:00"


def test_a_cloudevents_delivery_reads_the_same() -> None:
    cloud = {
        "id": SAMPLE["id"],
        "type": SAMPLE["eventType"],
        "time": SAMPLE["eventTime"],
        "data": SAMPLE["data"],
    }
    assert group_write(cloud) == group_write(SAMPLE)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({UPN_CLAIM: "ada@example.com", "name": "Ada", "appid": "app"}, "ada@example.com"),
        ({"name": "Ada", "appid": "app"}, "Ada"),
        ({"appid": "11111111-1111-1111-1111-111111111111"}, "11111111-1111-1111-1111-111111111111"),
        ({UPN_CLAIM: " ", "appid": "app"}, "app"),
        ({}, None),
        ("not claims", None),
    ],
)
def test_the_caller_is_the_upn_else_the_name_else_the_app(claims: Any, expected: str | None) -> None:
    assert caller(claims) == expected


@pytest.mark.parametrize(
    "other",
    [
        {"eventType": "Microsoft.Resources.ResourceDeleteSuccess"},
        {"eventType": "Microsoft.Resources.ResourceWriteFailure"},
        {"data": {**SAMPLE["data"], "operationName": "Microsoft.Storage/storageAccounts/write"}},
        {"data": "not an object"},
    ],
)
def test_anything_but_a_group_write_is_ignored(other: dict[str, Any]) -> None:
    assert group_write({**SAMPLE, **other}) is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"resourceUri": f"{GROUP_ID}/providers/Microsoft.Storage/storageAccounts/s"},
            "not a resource group's id",
        ),
        ({"resourceUri": "/subscriptions/x/resourceGroups/lab-1"}, "not a subscription id"),
        ({"resourceUri": f"/subscriptions/{SUB}/resourceGroups/lab%2F1"}, "not a valid resource group name"),
        ({"resourceUri": f"/subscriptions/{SUB}/resourceGroups/lab."}, "not a valid resource group name"),
        (
            {"resourceUri": f"/subscriptions/{SUB}/resourceGroups/{'a' * 91}"},
            "not a valid resource group name",
        ),
        ({"resourceUri": None}, "data.resourceUri is missing"),
        ({"subscriptionId": "00000000-0000-0000-0000-000000000002"}, "not the group's subscription"),
    ],
)
def test_a_group_write_that_does_not_hold_together_is_refused(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        group_write(event(**data))


def test_a_bad_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not ISO 8601"):
        group_write({**SAMPLE, "eventTime": "yesterday"})


def test_a_new_group_is_stamped_and_a_redelivery_writes_nothing() -> None:
    stamps, inventory = stamper(Group(SUB, "lab-1", {"owner": "ada"}))
    assert stamps.handle(SAMPLE) == {"createdAt": "2018-07-19T18:38:04Z", "createdBy": "ada@example.com"}
    assert inventory.groups["lab-1"].tags == {
        "owner": "ada",
        "createdAt": "2018-07-19T18:38:04Z",
        "createdBy": "ada@example.com",
    }
    assert stamps.handle(SAMPLE) == {}
    assert [call for call, _ in inventory.calls].count("merge_tags") == 1


def test_present_tags_are_never_overwritten_in_any_case() -> None:
    stamps, inventory = stamper(Group(SUB, "lab-1", {"CreatedAt": "2020-01-01T00:00:00Z"}))
    assert stamps.handle(SAMPLE) == {"createdBy": "ada@example.com"}
    assert inventory.groups["lab-1"].tags["CreatedAt"] == "2020-01-01T00:00:00Z"


def test_another_creation_tag_keeps_created_at_out() -> None:
    stamps, inventory = stamper(
        Group(SUB, "lab-1", {"creationTimestamp": "2020-01-01T00:00:00Z", "createdBy": "bob"})
    )
    assert stamps.handle(SAMPLE) == {}
    assert ("merge_tags", "lab-1") not in inventory.calls


def test_a_gone_or_read_only_group_is_acknowledged() -> None:
    stamps, inventory = stamper(Group(SUB, "lab-1"), locked={"lab-1": [Lock("frozen", "ReadOnly", "")]})
    assert stamps.handle(SAMPLE) == {}
    assert inventory.groups["lab-1"].tags == {}
    assert stamps.handle(event(resourceUri=f"/subscriptions/{SUB}/resourceGroups/gone")) == {}


def test_an_uncovered_subscription_is_not_touched() -> None:
    other = "00000000-0000-0000-0000-000000000009"
    stamps, inventory = stamper(Group(other, "lab-1"))
    assert (
        stamps.handle(event(resourceUri=f"/subscriptions/{other}/resourceGroups/lab-1", subscriptionId=other))
        == {}
    )
    assert inventory.calls == []


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (arm_failure(429, "TooManyRequests", "slow down"), Retryable),
        (arm_failure(503, "ServiceUnavailable", "later"), Retryable),
        (arm_failure(403, "AuthorizationFailed", "no"), AccessDenied),
        (ServiceRequestError("unreachable"), Retryable),
    ],
)
def test_throttling_outages_and_refusals_fail_the_invocation(failure: BaseException, raised: type) -> None:
    stamps, inventory = stamper(Group(SUB, "lab-1"))
    inventory.failures[("merge_tags", "lab-1")] = failure
    with pytest.raises(raised):
        stamps.handle(SAMPLE)
