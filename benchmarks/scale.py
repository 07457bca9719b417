"""Scale: the emulator's cost per request as the subscription grows, and cleanup's plan at 1,000 to
50,000 groups against a peer that reads one lock listing per candidate group.

One devstack; the subscription grows to each size in turn (one group in twenty a stale lab, one stale lab
in ten locked). At each size: the time of one resource-group GET, one page of the group listing (also
filtered by a tag one group in twenty has, and by one none has), one page of the subscription's lock
listing and one group's lock listing (median of `SAMPLES`, keep-alive); then a
whole cleanup plan (every group listed: a name pattern is set, so no server-side filter) by our page-wise
survey and by the peer — a survey that lists the groups the same way and then each candidate's locks
(`list_at_resource_group_level`, 8 at a time as the previous code did; Cloud Custodian's `resource-lock`
filter does the same, 3 at a time) — each without and with 50 ms of latency added to every ARM request
(the fault API's latency kind), since Azure is not on loopback. ARM requests are counted by the clients.

Run with `python -m benchmarks.scale`; prints figures, asserts nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from benchmarks.__main__ import devstack
from benchmarks.cleanup import cleanup_service, counted_clients
from benchmarks.summary import save_samples, summary
from shared.cleanup.inventory import ArmInventory, Survey
from shared.cleanup.parallel import each
from shared.cleanup.planner import Lock, Rules, iso

SIZES = (100, 1_000, 10_000, 50_000)
PLANNED = (1_000, 10_000, 50_000)
SAMPLES = 50
LATENCY_MS = 50
GROUPS_VERSION = "2025-04-01"
LOCKS_VERSION = "2020-05-01"
PLAN_TARGET_S = 2.0


class PerCandidateInventory(ArmInventory):
    """The peer: the same group listing, then one lock listing per candidate lab (the previous code)."""

    def survey(self, subscriptions: Iterable[str], rules: Rules) -> Survey:
        wanted = list(dict.fromkeys(subscriptions))
        listings = [self._groups(sub, rules) for sub in wanted]
        labs = [lab for listing in listings for lab in listing.labs]

        def locks_of(lab: Any) -> list[Lock]:
            return self.locks(lab.subscription, lab.name)

        held = each(locks_of, labs, self.concurrency)
        return Survey(
            labs=labs,
            locks=dict(zip((lab.key for lab in labs), held, strict=True)),
            scanned=sum(listing.scanned for listing in listings),
            pages=sum(listing.pages for listing in listings),
            lock_pages=len(labs),
        )


class Arm:
    """Raw ARM requests on keep-alive connections, for growing the subscription and timing one request."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        from azure.identity import ManagedIdentityCredential

        self.base = str(endpoints["armEndpoint"])
        self.sub = f"/subscriptions/{endpoints['subscriptionId']}"
        token = ManagedIdentityCredential().get_token(f"{self.base}/.default").token
        self.context = ssl.create_default_context(cafile=str(endpoints["caBundle"]))
        self.headers = {"Authorization": f"Bearer {token}"}
        self.admin = {"X-Devstack-Admin-Key": str(endpoints["identityHeader"])}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, verify=self.context, headers=self.headers, timeout=60)

    def grow(self, start: int, end: int, marker: str, expired: str) -> None:
        """Groups `start`..`end`: one in twenty a stale lab, one stale lab in ten locked."""

        def create(numbers: range) -> None:
            with self.client() as client:
                for n in numbers:
                    tags = {"owner": "bench"}
                    if n % 20 == 0:
                        tags.update({"purpose": marker, "expiresOn": expired})
                    path = f"{self.sub}/resourcegroups/scale-{n:06d}"
                    body = {"location": "eastus", "tags": tags}
                    client.put(path, params={"api-version": GROUPS_VERSION}, json=body).raise_for_status()
                    if n % 200 == 0:
                        lock = f"{path}/providers/Microsoft.Authorization/locks/keep"
                        level = {"properties": {"level": "CanNotDelete"}}
                        client.put(lock, params={"api-version": LOCKS_VERSION}, json=level).raise_for_status()

        slices = [range(start + k, end, 8) for k in range(8)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, slices))

    def median_ms(self, path: str, version: str, params: dict[str, str] | None = None) -> float:
        with self.client() as client:
            query = {"api-version": version, **(params or {})}
            client.get(path, params=query).raise_for_status()  # warm: connection, caches
            times = []
            for _ in range(SAMPLES):
                started = time.perf_counter()
                client.get(path, params=query).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def latency(self, delay_ms: int) -> Callable[[], None]:
        """Adds `delay_ms` to every ARM request until the returned function is called."""
        with httpx.Client(base_url=self.base, verify=self.context, headers=self.admin) as admin:
            rule = {"target": "arm", "kind": "latency", "delay_ms": delay_ms, "count": None}
            created = admin.post("/_devstack/faults", json=rule)
            created.raise_for_status()
            rule_id = created.json()["id"]

        def remove() -> None:
            with httpx.Client(base_url=self.base, verify=self.context, headers=self.admin) as admin:
                admin.delete(f"/_devstack/faults/{rule_id}").raise_for_status()

        return remove


def request_costs(arm: Arm, size: int, marker: str) -> dict[str, float]:
    """One GET of a group, of a group listing page (the first, the next by its skip token, the first
    filtered by a tag one group in twenty has and by one none has), of the subscription's lock listing
    and of one group's lock listing: median ms."""
    group = f"{arm.sub}/resourcegroups/scale-{size // 2:06d}"
    with arm.client() as client:  # the second page's skip token, as a caller following nextLink sends
        pages = client.get(f"{arm.sub}/resourcegroups", params={"api-version": GROUPS_VERSION}).json()
        deep = httpx.URL(pages["nextLink"]).params.get("$skiptoken") if "nextLink" in pages else None
    costs = {
        "group GET": arm.median_ms(group, GROUPS_VERSION),
        "group list, first page": arm.median_ms(f"{arm.sub}/resourcegroups", GROUPS_VERSION),
        "locks of the subscription, first page": arm.median_ms(
            f"{arm.sub}/providers/Microsoft.Authorization/locks", LOCKS_VERSION
        ),
        "locks of one group": arm.median_ms(
            f"{group}/providers/Microsoft.Authorization/locks", LOCKS_VERSION
        ),
    }
    if deep:
        costs["group list, next page"] = arm.median_ms(
            f"{arm.sub}/resourcegroups", GROUPS_VERSION, {"$skiptoken": deep}
        )
    for label, value in (("5% of groups", marker), ("no group", "nobody")):
        tag = {"$filter": f"tagName eq 'purpose' and tagValue eq '{value}'"}
        costs[f"tag filter ({label})"] = arm.median_ms(f"{arm.sub}/resourcegroups", GROUPS_VERSION, tag)
    return costs


def plans(endpoints: dict[str, Any], arm: Arm, marker: str, size: int) -> dict[str, tuple[float, int]]:
    """(seconds, ARM requests) of a plan by each survey, without and with the added latency."""
    counter, resources, locks = counted_clients(endpoints)
    results: dict[str, tuple[float, int]] = {}
    for label, inventory_type in (("page-wise", ArmInventory), ("per candidate", PerCandidateInventory)):
        svc = cleanup_service(
            endpoints, resources, locks, "benchscale", f"purpose={marker}", CLEANUP_NAME_PATTERNS="none-*"
        )
        svc.inventory = inventory_type(lambda _: resources, lambda _: locks)
        svc.plan()  # warm: tokens, the table, first-sight stamps of new labs
        for latency in (0, LATENCY_MS):
            remove = arm.latency(latency) if latency else None
            try:
                counter.count = 0
                started = time.perf_counter()
                plan = svc.plan()
                elapsed = time.perf_counter() - started
            finally:
                if remove:
                    remove()
            results[f"{label}, +{latency} ms"] = (elapsed, counter.count)
            if latency == 0 and label == "page-wise":
                print(f"  plan at {plan.scanned:,} groups: {plan.counts()}")
    return results


def main() -> None:
    logging.getLogger("dockmaster").setLevel(logging.ERROR)
    marker = uuid.uuid4().hex[:6]
    expired = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=6))
    table: dict[int, dict[str, float]] = {}
    planned: dict[int, dict[str, tuple[float, int]]] = {}
    with devstack() as endpoints:
        arm = Arm(endpoints)
        grown = 0
        for size in SIZES:
            started = time.perf_counter()
            arm.grow(grown, size, marker, expired)
            took = time.perf_counter() - started
            print(f"grew the subscription to {size:,} groups ({size - grown:,} in {took:.1f}s)")
            grown = size
            table[size] = request_costs(arm, size, marker)
            if size in PLANNED:
                planned[size] = plans(endpoints, arm, marker, size)
                for label, (seconds, sent) in planned[size].items():
                    print(f"  plan, {label}: {seconds:6.2f} s, {sent:,} ARM requests")
    report(table, planned)


def report(table: dict[int, dict[str, float]], planned: dict[int, dict[str, tuple[float, int]]]) -> None:
    columns = list(dict.fromkeys(column for costs in table.values() for column in costs))
    print("\nemulator cost of one request (median of 50, ms) as the subscription grows:")
    print("| groups | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for size, costs in table.items():
        print(f"| {size:,} | " + " | ".join(f"{costs.get(c, float('nan')):.1f}" for c in columns) + " |")
    first, last = table[SIZES[0]], table[SIZES[-1]]
    ratios = ", ".join(f"{c} {last[c] / first[c]:.2f}x" for c in columns if c in last and c in first)
    print(f"{SIZES[-1]:,} / {SIZES[0]:,} groups: {ratios}")
    print("\ncleanup plan (500 stale labs per 10,000 groups), ours (page-wise) vs the per-candidate peer:")
    for size, results in planned.items():
        ours, peer = results["page-wise, +0 ms"], results["per candidate, +0 ms"]
        slow_ours, slow_peer = (
            results[f"page-wise, +{LATENCY_MS} ms"],
            results[f"per candidate, +{LATENCY_MS} ms"],
        )
        print(
            f"  {size:>6,} groups: ours {ours[0]:.2f} s / {ours[1]:,} requests, peer {peer[0]:.2f} s / "
            f"{peer[1]:,} requests ({peer[0] / ours[0]:.1f}x time); "
            f"+{LATENCY_MS} ms: ours {slow_ours[0]:.1f} s, peer {slow_peer[0]:.1f} s "
            f"({slow_peer[0] / slow_ours[0]:.1f}x)"
        )
    ours, peer = planned[10_000]["page-wise, +0 ms"], planned[10_000]["per candidate, +0 ms"]
    met = "met" if ours[0] <= PLAN_TARGET_S else "NOT met"
    summary(
        "Cleanup plan, 10,000 groups (500 stale labs) through the emulator: page-wise locks vs per candidate",
        f"{ours[0]:.2f} s, {ours[1]} requests",
        f"{peer[0]:.2f} s, {peer[1]} requests",
        f"{peer[0] / ours[0]:.1f}x time, {peer[1] / ours[1]:.1f}x requests; "
        f"target ≤ {PLAN_TARGET_S:.0f} s {met}",
    )
    slow_ours, slow_peer = (
        planned[10_000][f"page-wise, +{LATENCY_MS} ms"],
        planned[10_000][f"per candidate, +{LATENCY_MS} ms"],
    )
    summary(
        f"Same, {LATENCY_MS} ms added to every ARM request",
        f"{slow_ours[0]:.1f} s",
        f"{slow_peer[0]:.1f} s",
        f"{slow_peer[0] / slow_ours[0]:.1f}x time "
        "(group pages are sequential: each needs the previous one's link)",
    )
    get = [table[s]["group GET"] for s in SIZES]
    locks = [table[s]["locks of the subscription, first page"] for s in SIZES]
    summary(
        f"Emulator: one group GET / one lock listing page at {SIZES[0]:,} → {SIZES[-1]:,} groups",
        f"{get[0]:.1f} → {get[-1]:.1f} ms / {locks[0]:.1f} → {locks[-1]:.1f} ms",
        "—",
        f"{get[-1] / get[0]:.2f}x / {locks[-1] / locks[0]:.2f}x over {SIZES[-1] // SIZES[0]:,}x the data",
    )
    save_samples(
        "scale",
        {
            "sizes": list(SIZES),
            "costs": {c: [table[s].get(c) for s in SIZES] for c in columns},
            "plans": {
                str(size): {k: list(v) for k, v in results.items()} for size, results in planned.items()
            },
        },
    )


if __name__ == "__main__":
    main()
