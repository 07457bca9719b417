"""ArmInventory's survey over fakes of the SDK's paged listings: what it asks ARM, how many at once, and
how it maps a subscription's locks to the groups they keep."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from shared.cleanup.inventory import ArmInventory, placed
from shared.cleanup.planner import Lock, Rules, key_of

SUBS = ["sub-a", "sub-b", "sub-c"]
LOCKS = "/providers/Microsoft.Authorization/locks"


class Pages:
    """A paged listing whose every page is one request: counted, and held at `gate` while it is sent."""

    def __init__(self, arm: FakeArm, pages: list[list[Any]]) -> None:
        self.arm, self.pages = arm, pages

    def by_page(self) -> Iterator[list[Any]]:
        for page in self.pages:
            self.arm.request()
            yield page


class FakeArm:
    def __init__(self, gate: threading.Barrier | None = None) -> None:
        self.gate = gate
        self.sent = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.guard = threading.Lock()
        self.groups: dict[str, list[list[Any]]] = {}
        self.locks: dict[str, list[list[Any]]] = {}

    def request(self) -> None:
        with self.guard:
            self.sent += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.gate is not None:
            self.gate.wait()  # every worker must be in flight at once, or this times out
        with self.guard:
            self.in_flight -= 1

    def resource_client(self, subscription: str) -> Any:
        listing = Pages(self, self.groups[subscription])
        return SimpleNamespace(resource_groups=SimpleNamespace(list=lambda filter=None: listing))

    def lock_client(self, subscription: str) -> Any:
        def per_group(name: str) -> None:
            raise AssertionError("a survey reads no group's locks one by one")

        listing = Pages(self, self.locks[subscription])
        return SimpleNamespace(
            management_locks=SimpleNamespace(
                list_at_subscription_level=lambda: listing, list_at_resource_group_level=per_group
            )
        )


def group(name: str, **tags: str) -> Any:
    properties = SimpleNamespace(provisioning_state="Succeeded")
    return SimpleNamespace(name=name, tags={"purpose": "lab", **tags}, managed_by=None, properties=properties)


def lock(scope: str, name: str, level: str = "CanNotDelete") -> Any:
    return SimpleNamespace(id=f"{scope}{LOCKS}/{name}", name=name, level=level)


RULES = Rules(lab_tag=("purpose", "lab"))


def test_a_survey_reads_every_page_and_no_lock_per_group() -> None:
    arm = FakeArm()
    for sub in SUBS:
        arm.groups[sub] = [[group(f"lab-{n}") for n in range(p * 3, p * 3 + 3)] for p in range(3)]
        arm.locks[sub] = [[], []]
    a, b = (f"/subscriptions/{sub}" for sub in SUBS[:2])
    arm.locks["sub-a"] = [
        [lock(f"{a}/resourceGroups/LAB-0", "on-group")],
        [lock(f"{a}/resourceGroups/lab-1/providers/Microsoft.Storage/storageAccounts/st", "on-account")],
    ]
    arm.locks["sub-b"] = [[lock(b, "everything", "ReadOnly")]]
    inventory = ArmInventory(arm.resource_client, arm.lock_client, concurrency=4)
    survey = inventory.survey(SUBS, RULES)
    assert (survey.scanned, survey.pages, survey.lock_pages) == (27, 9, 5)
    assert arm.sent == survey.pages + survey.lock_pages
    assert survey.locks[key_of("sub-a", "lab-0")] == [Lock("on-group", "CanNotDelete")]
    assert survey.locks[key_of("sub-a", "lab-1")] == [
        Lock("on-account", "CanNotDelete", "Microsoft.Storage/storageAccounts/st")
    ]
    assert survey.locks[key_of("sub-a", "lab-2")] == []
    everything = Lock("everything", "ReadOnly", "the subscription")
    assert all(survey.locks[key_of("sub-b", f"lab-{n}")] == [everything] for n in range(9))
    assert all(survey.locks[key_of("sub-c", f"lab-{n}")] == [] for n in range(9))


@pytest.mark.parametrize("concurrency", [1, 2, 3, 6])
def test_at_most_the_configured_requests_are_in_flight(concurrency: int) -> None:
    arm = FakeArm(threading.Barrier(concurrency, timeout=10) if concurrency > 1 else None)
    for sub in SUBS:
        # 6 listings of 4 pages, so that every worker always has a page to send and the gate fills.
        arm.groups[sub] = [[group(f"lab-{p}")] for p in range(4)]
        arm.locks[sub] = [[] for _ in range(4)]
    ArmInventory(arm.resource_client, arm.lock_client, concurrency=concurrency).survey(SUBS, RULES)
    assert arm.sent == 24
    assert arm.most_in_flight == concurrency


@pytest.mark.parametrize(
    ("lock_id", "where"),
    [
        ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/locks/l", ("s", "rg", "")),
        (
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Web/sites/app/slots/x"
            "/providers/Microsoft.Authorization/locks/l",
            ("s", "rg", "Microsoft.Web/sites/app/slots/x"),
        ),
        ("/subscriptions/s/providers/Microsoft.Authorization/locks/l", ("s", None, "the subscription")),
        ("/subscriptions/s/providers/microsoft.authorization/LOCKS/l", ("s", None, "the subscription")),
    ],
)
def test_where_a_lock_sits_is_read_from_its_id(lock_id: str, where: tuple[str, str | None, str]) -> None:
    assert placed(lock_id) == where
