"""Cleanup figures: plan time at 10,000 groups (the pure planner) and its curve from 1,000 to 20,000, the
listing and a whole plan through the emulator at a smaller scale with its curve from 100 to 2,000 groups,
and at 10,000 groups (500 stale labs) through the emulator: a plan, and 500 deletions with the cap lifted,
with the ARM pages and requests counted.

Run with `python -m benchmarks.cleanup`; prints figures, asserts nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.__main__ import CountingPolicy, devstack
from benchmarks.summary import save_samples, summary
from shared.cleanup import ArmInventory, CleanupService
from shared.cleanup.planner import DELETE, WARN, Group, Lock, Rules, iso, needs_locks, plan_labs
from shared.cleanup.records import Filters, Plan, _pack

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PLANNER_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000)
EMULATOR_SIZES = (100, 250, 500, 1_000, 2_000)


def generated(count: int, seed: int = 7) -> list[Group]:
    """A subscription of `count` groups: about half labs (by tag or name), with every kind of expiry."""
    rng = random.Random(seed)
    groups = []
    for n in range(count):
        tags: dict[str, str] = {"owner": f"team{n % 40}", "costCenter": str(n % 13)}
        kind = rng.random()
        name = f"az204-lab-{n:05d}" if kind < 0.3 else f"rg-{n:05d}"
        if 0.3 <= kind < 0.55:
            tags["purpose"] = "lab"
        roll = rng.random()
        hours = rng.uniform(-200, 200)
        if roll < 0.35:
            tags["expiresOn"] = iso(NOW + dt.timedelta(hours=hours))
        elif roll < 0.45:
            tags["expiresOn"] = f"{rng.randint(1, 96)}h"
        elif roll < 0.5:
            tags["expiresOn"] = "someday"
        elif roll < 0.7:
            tags["createdAt"] = iso(NOW + dt.timedelta(hours=hours - 72))
        elif roll < 0.85:
            tags["dockmaster-first-seen"] = iso(NOW + dt.timedelta(hours=hours - 24))
        if rng.random() < 0.03:
            tags["do-not-delete"] = "yes"
        managed = "/subscriptions/x/providers/Microsoft.Web/sites/y" if rng.random() < 0.02 else None
        groups.append(Group(SUBSCRIPTION, name, tags, managed))
    return groups


def rules(**more: Any) -> Rules:
    base: dict[str, Any] = {
        "lab_tag": ("purpose", "lab"),
        "name_patterns": ("az204-*",),
        "app_group": "rg-dockmaster",
        "protected_groups": ("rg-keep-*",),
        "max_deletions": 10,
    }
    return Rules(**{**base, **more})


def timed(work: Callable[[], Any], rounds: int = 7) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def planner_inputs(count: int) -> tuple[list[Group], Rules, list[Group], dict[Any, list[Lock]]]:
    """Generated groups, the rules, the lock candidates and their locks (one in ten locked)."""
    groups = generated(count)
    r = rules()
    rng = random.Random(3)
    candidates = [g for g in groups if r.is_lab(g) and needs_locks(g, r, NOW)]
    locks = {g.key: [Lock("keep", "CanNotDelete")] if rng.random() < 0.1 else [] for g in candidates}
    return groups, r, candidates, locks


def planner_curve() -> list[tuple[int, float]]:
    """Pure plan time (median of 5) at each of PLANNER_SIZES: (groups, ms)."""
    curve = []
    for count in PLANNER_SIZES:
        groups, r, _, locks = planner_inputs(count)
        seconds, _ = timed(functools.partial(plan_labs, groups, r, NOW, locks), rounds=5)
        curve.append((count, seconds * 1000))
    points = "; ".join(f"{count:,} → {ms:.1f} ms" for count, ms in curve)
    print(f"pure planner vs groups (median of 5): {points}")
    return curve


def pure_planner(count: int = 10_000) -> None:
    groups, r, candidates, locks = planner_inputs(count)
    seconds, items = timed(lambda: plan_labs(groups, r, NOW, locks))
    counts: dict[str, int] = {}
    for item in items:
        counts[item.decision] = counts.get(item.decision, 0) + 1
    print(f"pure planner, {count:,} groups → {len(items):,} labs: {seconds * 1000:8.1f} ms (median of 7)")
    print(f"  {count / seconds:,.0f} groups/s; decisions {dict(sorted(counts.items()))}")
    summary(
        f"Cleanup plan, pure planner, {count:,} groups",
        f"{seconds * 1000:.0f} ms",
        "—",
        f"{count / seconds:,.0f} groups/s, {len(items):,} labs",
    )
    select_s, _ = timed(lambda: [g for g in groups if r.is_lab(g)])
    locks_s, _ = timed(lambda: [g for g in groups if r.is_lab(g) and needs_locks(g, r, NOW)])
    print(
        f"  selection alone: {select_s * 1000:.1f} ms; "
        f"lock candidates: {len(candidates):,} ({locks_s * 1000:.1f} ms)"
    )
    plan = Plan("plan-bench", NOW, Filters(), True, 10, (SUBSCRIPTION,), items, count, count // 100)
    packed_s, chunks = timed(lambda: _pack(plan.public()), rounds=3)
    size = sum(len(c) for c in chunks)
    print(
        f"  plan record: {size / 1024:,.0f} KiB gzip in {len(chunks)} properties of one entity "
        f"({packed_s * 1000:.0f} ms)"
    )


def counted_clients(endpoints: dict[str, Any]) -> tuple[CountingPolicy, Any, Any]:
    """Resource and lock clients on devstack that count every ARM request they send."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.resource.locks import ManagementLockClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    arm = str(endpoints["armEndpoint"])
    subscription = str(endpoints["subscriptionId"])
    counter = CountingPolicy()
    kwargs: dict[str, Any] = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
    credential = ManagedIdentityCredential()
    resources = ResourceManagementClient(credential, subscription, per_retry_policies=[counter], **kwargs)
    locks = ManagementLockClient(credential, subscription, per_retry_policies=[counter], **kwargs)
    return counter, resources, locks


def cleanup_service(
    endpoints: dict[str, Any], resources: Any, locks: Any, table: str, lab_tag: str, **settings: Any
) -> CleanupService:
    """The cleanup service on the counted ARM clients, dry run unless `settings` say otherwise."""
    from azure.data.tables import TableClient

    from shared.cleanup import RunStore
    from shared.clock import SystemClock
    from shared.config import Settings
    from shared.publisher import Publisher

    values = {
        "AZURE_SUBSCRIPTION_ID": str(endpoints["subscriptionId"]),
        "AZURE_RESOURCE_MANAGER_ENDPOINT": str(endpoints["armEndpoint"]),
        "CLEANUP_ENABLED": True,
        "CLEANUP_DRY_RUN": True,
        "CLEANUP_LAB_TAG": lab_tag,
        "CLEANUP_NAME_PATTERNS": "",
        **settings,
    }
    runs = TableClient.from_connection_string(str(endpoints["storageConnectionString"]), table)
    return CleanupService(
        Settings.model_validate(values),
        ArmInventory(lambda _: resources, lambda _: locks),
        RunStore(runs),
        Publisher(None),
        SystemClock(),
    )


def through_the_emulator(endpoints: dict[str, Any], count: int = 1_000) -> list[tuple[int, float, int]]:
    counter, resources, locks = counted_clients(endpoints)

    marker = uuid.uuid4().hex[:6]
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(11)

    def create(n: int) -> None:
        tags = {"owner": "bench"}
        if n % 10 == 0:
            tags["purpose"] = marker
            tags["expiresOn"] = iso(now + dt.timedelta(hours=rng.uniform(-48, 200)))
        resources.resource_groups.create_or_update(f"bench-{n:05d}", {"location": "eastus", "tags": tags})

    def service(**settings: Any) -> CleanupService:
        return cleanup_service(endpoints, resources, locks, "benchcleanup", f"purpose={marker}", **settings)

    # The curve: groups are added in steps (one in ten a lab) and a whole plan is timed at each size.
    curve: list[tuple[int, float, int]] = []
    created, creating = 0, 0.0

    def grow_and_plan(size: int) -> None:
        nonlocal created, creating
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(created, size)))
        creating += time.perf_counter() - started
        created = size
        svc = service(CLEANUP_NAME_PATTERNS="bench-0000*")
        svc.plan()  # warm, and the new labs get their first-sight stamp outside the timing
        counter.count = 0
        seconds, plan = timed(svc.plan, rounds=3)
        curve.append((plan.scanned, seconds * 1000, counter.count // 3))

    for size in (s for s in EMULATOR_SIZES if s <= count):
        grow_and_plan(size)
    print(f"created {count:,} groups in the emulator in {creating:.1f}s (8 threads)")

    page_size = os.environ.get("DEVSTACK_PAGE_SIZE", "100")
    for label, settings in (
        ("list all, filter here (a name pattern is set)", {"CLEANUP_NAME_PATTERNS": "bench-0000*"}),
        ("server-side $filter (one tag)", {}),
    ):
        svc = service(**settings)
        counter.count = 0
        started = time.perf_counter()
        survey = svc.inventory.survey(svc.subscriptions(), svc.rules())
        elapsed = time.perf_counter() - started
        print(
            f"survey, {label}: {survey.scanned:,} groups in {survey.pages} pages of ≤{page_size} and "
            f"{survey.lock_pages} lock pages ({counter.count} requests), {len(survey.labs)} labs, "
            f"{elapsed * 1000:.0f} ms"
        )

    # A whole plan (list every page, lock checks, stamps, the record) with labs found by tag or pattern.
    svc = service(CLEANUP_NAME_PATTERNS="bench-0000*")
    svc.plan()  # warm: table created, tokens cached, first sight stamped
    counter.count = 0
    started = time.perf_counter()
    plan = svc.plan()
    elapsed, requests = time.perf_counter() - started, counter.count
    print(
        f"whole plan through the emulator, {plan.scanned:,} groups: {elapsed * 1000:.0f} ms, "
        f"{requests} ARM requests ({plan.pages} group pages, the rest lock pages), {plan.counts()}"
    )
    listing, _ = timed(lambda: svc.inventory.survey(svc.subscriptions(), svc.rules()), rounds=3)
    print(f"  survey of {plan.scanned:,} groups: {listing * 1000:.0f} ms (median of 3)")
    summary(
        f"Cleanup plan through the emulator, {plan.scanned:,} groups",
        f"{elapsed * 1000:.0f} ms",
        "—",
        f"{requests} ARM requests ({plan.pages} group pages, the rest lock pages)",
    )
    for size in (s for s in EMULATOR_SIZES if s > count):
        grow_and_plan(size)
    points = "; ".join(f"{groups:,} → {ms:.0f} ms ({sent} requests)" for groups, ms, sent in curve)
    print(f"whole plan through the emulator vs groups (median of 3): {points}")
    return curve


def at_scale(endpoints: dict[str, Any], count: int = 10_000, stale: int = 500) -> None:
    """A plan over `count` groups of which `stale` are expired labs, then one run deleting them all."""

    counter, resources, locks = counted_clients(endpoints)
    marker = uuid.uuid4().hex[:6]
    expired = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=6))
    every = count // stale

    def create(n: int) -> None:
        tags = {"owner": "bench"}
        if n % every == 0:
            tags.update({"purpose": marker, "expiresOn": expired})
        resources.resource_groups.create_or_update(f"scale-{n:05d}", {"location": "eastus", "tags": tags})

    existing = sum(1 for _ in resources.resource_groups.list())
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    total = existing + count
    print(f"created {count:,} more groups ({stale} stale labs) in {time.perf_counter() - started:.1f}s")

    def service(**settings: Any) -> CleanupService:
        # A name pattern is set, so every page is listed and filtered here (no server-side $filter).
        patterns = {"CLEANUP_NAME_PATTERNS": "no-such-group-*", **settings}
        return cleanup_service(endpoints, resources, locks, "benchscale", f"purpose={marker}", **patterns)

    svc = service()
    svc.inventory.survey(svc.subscriptions(), svc.rules())  # warm: token cached
    counter.count = 0
    started = time.perf_counter()
    plan = svc.plan()
    elapsed = time.perf_counter() - started
    candidates = sum(len(plan.having(d)) for d in (DELETE, WARN, "deferred", "blocked"))
    print(
        f"plan through the emulator, {plan.scanned:,} groups ({total:,} in the subscription), "
        f"{candidates} stale labs: {elapsed:.1f}s, {counter.count} ARM requests"
    )
    print(
        f"  = {plan.pages} group pages + {counter.count - plan.pages} lock pages, nothing per candidate; "
        f"{plan.counts()}"
    )

    svc = service(CLEANUP_DRY_RUN=False, CLEANUP_MAX_DELETIONS=stale)
    counter.count = 0
    started = time.perf_counter()
    run = svc.execute(confirm=True, trigger="bench")
    elapsed = time.perf_counter() - started
    deleted = len(run.deleted)
    print(
        f"execute, cap {stale}, dry run off: {deleted} deletions issued in {elapsed:.1f}s "
        f"(plan included), {counter.count} ARM requests; {run.counts()}"
    )
    print(f"  = the plan's pages + {deleted} × (get, locks, delete): the last-moment re-check per deletion")


def main() -> None:
    logging.getLogger("dockmaster").setLevel(logging.ERROR)  # warnings without a topic are logged
    pure_planner()
    planner = planner_curve()
    with devstack() as endpoints:
        emulator = through_the_emulator(endpoints)
        save_samples("cleanup", {"planner": planner, "emulator": emulator})
        at_scale(endpoints)


if __name__ == "__main__":
    main()
