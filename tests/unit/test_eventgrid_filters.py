"""Event Grid's advanced filters (string operators) as learn.microsoft.com/azure/event-grid/event-filtering
documents them: keys, case, missing keys, arrays, limits; the other operators refused."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.emulator.errors import ArmError
from devstack.emulator.eventgrid.filters import matches_advanced, parse_advanced_filters
from devstack.emulator.eventgrid.subscriptions import parse_filter

GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
EVENT: dict[str, Any] = {
    "id": "1",
    "topic": "/subscriptions/s",
    "subject": "/subscriptions/s/resourceGroups/lab-1",
    "eventType": "Microsoft.Resources.ResourceWriteSuccess",
    "data": {"operationName": GROUP_WRITE, "status": "Succeeded", "count": 3, "tags": ["a", "B"]},
}


def one(operator: str, key: str, *values: str, arrays: bool = False) -> dict[str, Any]:
    advanced = [{"operatorType": operator, "key": key, "values": list(values)}]
    return {"advancedFilters": parse_advanced_filters(advanced), "enableAdvancedFilteringOnArrays": arrays}


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (one("StringIn", "data.operationName", GROUP_WRITE.upper()), True),  # case ignored
        (one("StringIn", "data.operationName", "Microsoft.Storage/storageAccounts/write"), False),
        (one("StringIn", "Data.operationName", GROUP_WRITE), True),  # envelope names ignore case
        (one("StringIn", "EventType", "microsoft.resources.resourcewritesuccess"), True),
        (one("StringIn", "data.OperationName", GROUP_WRITE), False),  # data names exact (stricter)
        (one("StringNotIn", "data.operationName", GROUP_WRITE), False),
        (one("StringNotIn", "data.missing", "x"), True),  # a missing key matches StringNotIn only
        (one("StringIn", "data.missing", "x"), False),
        (one("StringNotContains", "data.missing", "x"), False),
        (one("StringBeginsWith", "Subject", "/SUBSCRIPTIONS/s/resourceGroups/"), True),
        (one("StringEndsWith", "subject", "LAB-1"), True),
        (one("StringContains", "data.operationName", "resourcegroups"), True),
        (one("StringNotBeginsWith", "subject", "/subscriptions/s/resourceGroups/"), False),
        (one("StringIn", "data.count", "3"), False),  # another type is ignored
        (one("StringNotIn", "data.count", "3"), True),
        (one("StringIn", "data.tags", "b"), False),  # arrays only when enabled
        (one("StringIn", "data.tags", "b", arrays=True), True),
        ({}, True),
    ],
)
def test_string_operators_match_as_documented(filter_: dict[str, Any], expected: bool) -> None:
    assert matches_advanced(filter_, EVENT) is expected


def test_filters_are_and_their_values_or() -> None:
    both = parse_advanced_filters(
        [
            {"operatorType": "StringIn", "key": "data.operationName", "values": ["x", GROUP_WRITE]},
            {"operatorType": "StringIn", "key": "data.status", "values": ["Failed"]},
        ]
    )
    assert matches_advanced({"advancedFilters": both[:1]}, EVENT)
    assert not matches_advanced({"advancedFilters": both}, EVENT)


@pytest.mark.parametrize(
    ("advanced", "fragment"),
    [
        ([{"operatorType": "BoolEquals", "key": "data.x", "value": True}], "not supported"),
        ([{"operatorType": "NumberIn", "key": "data.x", "values": [1]}], "not supported"),
        ([{"operatorType": "StringIn", "values": ["a"]}], "key must be"),
        ([{"operatorType": "StringIn", "key": "data..x", "values": ["a"]}], "key must be"),
        ([{"operatorType": "StringIn", "key": "data.x", "values": []}], "non-empty list of strings"),
        ([{"operatorType": "StringIn", "key": "data.x", "values": [1]}], "non-empty list of strings"),
        ([{"operatorType": "StringIn", "key": "data.x", "values": ["a" * 513]}], "limit is 512"),
        (
            [{"operatorType": "StringIn", "key": f"data.k{i}", "values": ["a"]} for i in range(26)],
            "limit of 25",
        ),
        ([{"operatorType": "StringIn", "key": "data.x", "values": ["a"] * 26}], "limit is 25"),
        ("not a list", "must be a list"),
    ],
)
def test_what_azure_or_devstack_refuses_is_a_400(advanced: Any, fragment: str) -> None:
    with pytest.raises(ArmError) as caught:
        parse_filter({"advancedFilters": advanced})
    assert caught.value.status == 400
    assert fragment in caught.value.message
