"""Image retention end to end: podman pushes (semantic-version tags, a multi-arch index from `podman
manifest`, a locked image, a young image) to the registry front, verified by function_app on its host
(`nosmoke/*`: no smoke run, no lock on pass); then a plan, an execution, and the registry afterwards
holding exactly what the rules keep. A rule matching everything is stopped by the cap."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from shared.clock import FixedClock
from shared.config import Settings
from shared.policy import RetentionPolicy
from shared.publisher import Publisher
from shared.registry import RegistryClient
from shared.retention.inventory import RegistryInventory, parse_time
from shared.retention.planner import EMPTY_CONFIG
from shared.retention.records import DELETED, RetentionStore
from shared.retention.service import RetentionService
from shared.verdicts import VerdictStore
from tests.support.cleanup import MemoryTable
from tests.support.e2e import App, local_image, push
from tests.support.images import image_context


def retention(
    app: App,
    client: RegistryClient,
    rules: list[dict[str, Any]],
    at: dt.datetime,
    min_age: dt.timedelta,
    percent: str = "50",
) -> RetentionService:
    settings = Settings(
        DOCKMASTER_REGISTRIES=app.registry.id,
        RETENTION_ENABLED="true",
        RETENTION_DRY_RUN="false",
        RETENTION_MIN_AGE_HOURS=str(min_age.total_seconds() / 3600),
        RETENTION_MAX_DELETION_PERCENT=percent,
    )
    verdicts = VerdictStore(app.table)
    return RetentionService(
        settings,
        RetentionPolicy.model_validate({"rules": rules}),
        RegistryInventory(lambda _ref: client, lambda ref, repo: verdicts.history(ref.name, repo)),
        RetentionStore(MemoryTable()),
        Publisher(None),
        FixedClock(at),
    )


def test_retention_deletes_exactly_what_the_rules_say(
    app: App, hello_context: Path, tmp_path: Path, credential: Any
) -> None:
    repository = f"nosmoke/retention-{uuid.uuid4().hex[:6]}"
    images = {
        v: local_image(image_context(tmp_path, hello_context, f'["/bin/busybox", "echo", "{v}"]'))
        for v in ("1.0.0", "1.1.0", "2.0.0", "0.9.0", "multi", "young")
    }
    for version in ("1.0.0", "1.1.0", "2.0.0", "0.9.0"):
        push(app, images[version], f"{repository}:{version}")
    index = f"localhost/dockmaster-e2e/index-{uuid.uuid4().hex[:8]}"
    app.podman("manifest", "create", index)
    try:
        app.podman("manifest", "add", index, f"containers-storage:{images['multi']}")
        app.podman(
            "manifest", "push", "--all", index, f"docker://{app.registry.login_server}/{repository}:0.5.0"
        )
    finally:
        app.podman("manifest", "rm", index, check=False)
    for version in ("1.0.0", "1.1.0", "2.0.0", "0.9.0", "0.5.0"):
        app.verdict(repository, version)  # final: nothing is being verified when the plan is made
    client = RegistryClient(app.registry.login_server, credential, f"{app.devstack.arm}/.default")
    locked = client.digest_of(repository, "0.9.0")
    client.update_manifest(repository, locked, {"deleteEnabled": False, "writeEnabled": False})
    client.update_tag(repository, "0.9.0", {"deleteEnabled": False, "writeEnabled": False})
    push(app, images["young"], f"{repository}:young")  # pushed last: the one image under the minimum age
    app.verdict(repository, "young")
    times = {t["name"]: parse_time(t["lastUpdateTime"]) for t in client.list_tags(repository, 100).items}
    newest_old = max(t for n, t in times.items() if n != "young" and t is not None)
    young = times["young"]
    assert young is not None
    at = young + dt.timedelta(milliseconds=1)
    min_age = (young - newest_old) / 2
    manifests_before = {m["digest"]: m for m in client.list_manifests(repository, 100).items}
    index_digest = client.digest_of(repository, "0.5.0")
    children = {r["digest"] for r in manifests_before[index_digest].get("references") or []}

    rules = [
        {
            "match": "nosmoke/retention-*",
            "keep": [{"latest": 1, "by": "semver"}],
            "delete": [{"tagsOlderThan": "0d"}, {"untaggedOlderThan": "0d"}],
        }
    ]
    service = retention(app, client, rules, at, min_age, percent="100")  # the cap: the next test
    plan = service.plan({"repositories": [repository]})
    decided = {(i.kind, i.name): (i.decision, i.rule) for i in plan.items}
    assert decided[("tag", "2.0.0")] == ("keep", "retention.rules[0].keep[0]")
    assert decided[("tag", "0.9.0")][1] == "locked"
    assert decided[("manifest", locked)][1] == "locked"
    assert decided[("tag", "young")][1] == "min-age"
    assert {decided[("tag", v)][0] for v in ("1.0.0", "1.1.0", "0.5.0")} == {"delete"}
    # The index goes, and with it its children (none else refers to them).
    assert {decided[("manifest", c)] for c in children} == {("delete", "retention.rules[0].delete[1]")}, [
        i.reason for i in plan.items if i.name in children
    ]
    doomed = {i.digest for i in plan.deletions if i.kind == "manifest"}

    # The verdicts the app attached to the images to be deleted go with them (ACR deletes a subject's
    # referrers with it); retention itself never deleted one.
    attached = {d for d, m in manifests_before.items() if m.get("configMediaType") == EMPTY_CONFIG}
    assert attached, "each verified image has its verdict referrer"
    assert not attached & doomed
    went_along = {
        d for d in attached if client.get_manifest(repository, d).document["subject"]["digest"] in doomed
    }
    assert went_along
    run = service.execute(plan.plan_id, confirm=True)
    assert {o.result for o in run.outcomes} == {DELETED}, [o.reason for o in run.outcomes]
    assert {t["name"] for t in client.list_tags(repository, 100).items} == {"2.0.0", "0.9.0", "young"}
    after = {m["digest"] for m in client.list_manifests(repository, 100).items}
    assert after == set(manifests_before) - doomed - went_along
    assert locked in after


def test_a_rule_matching_everything_is_stopped_by_the_cap(
    app: App, hello_context: Path, tmp_path: Path, credential: Any
) -> None:
    repository = f"nosmoke/everything-{uuid.uuid4().hex[:6]}"
    for n in range(4):
        push(
            app,
            local_image(image_context(tmp_path, hello_context, f'["/bin/busybox", "echo", "{n}"]')),
            f"{repository}:t{n}",
        )
        app.verdict(repository, f"t{n}")
    client = RegistryClient(app.registry.login_server, credential, f"{app.devstack.arm}/.default")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    purge = [{"purge": "--filter 'nosmoke/everything-.*:.*' --ago 0d --untagged"}]
    service = retention(app, client, purge, at, dt.timedelta(hours=1))
    plan = service.plan({"repositories": [repository]})
    deleted = [i for i in plan.items if i.kind == "manifest" and i.decision == "delete"]
    deferred = [i for i in plan.items if i.kind == "manifest" and i.decision == "deferred"]
    # Half of 4 images (RETENTION_MAX_DELETION_PERCENT=50): their verdict referrers do not count.
    assert len(deleted) == 2
    assert len([i for i in deferred if i.tags]) == 2
    assert all("over the cap of 2 deletions per repository" in i.reason for i in deferred)
    service.execute(plan.plan_id, confirm=True)
    assert len(client.list_tags(repository, 100).items) == 2
