"""The retention planner's decisions on small repositories: rule order, untag versus delete, indexes,
referrers, locks (verification's own), young images, verifications in progress, and the cap."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.policy import RetentionPolicy
from shared.retention.planner import (
    DEFERRED,
    DELETE,
    EMPTY_CONFIG,
    KEEP,
    PROTECTED,
    UNTAG,
    Manifest,
    PlanItem,
    Repository,
    Tag,
    plan_repository,
)
from shared.retention.rules import Limits, ruleset_for

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=100)
OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def d(i: int) -> str:
    return f"sha256:{i:064x}"


def repo(
    tags: dict[str, int], manifests: dict[int, dict[str, Any]] | None = None, **kw: object
) -> Repository:
    found = {name: Tag(name, d(i), OLD) for name, i in tags.items()}
    specs = dict(manifests or {})
    for i in {*tags.values(), *specs}:
        spec = specs.get(i, {})
        found_tags = tuple(n for n, j in tags.items() if j == i)
        specs[i] = {"digest": d(i), "media_type": OCI, "updated": OLD, "tags": found_tags, **spec}
    built = {d(i): Manifest(**s) for i, s in specs.items()}
    return Repository("lab", "app", found, built, **kw)  # type: ignore[arg-type]


def plan(
    r: Repository,
    rule: dict[str, Any],
    limits: Limits | None = None,
    subjects: dict[str, str] | None = None,
) -> dict[str, PlanItem]:
    rules = ruleset_for(RetentionPolicy.model_validate({"rules": [rule]}), r.name)
    items = plan_repository(r, rules, limits or ROOMY, NOW, lambda m: (subjects or {}).get(m.digest))
    return {item.name: item for item in items}


ROOMY = Limits(dt.timedelta(hours=24), 100, 100.0)  # a cap that stops nothing here
EVERYTHING = {"match": "app", "delete": [{"tagsOlderThan": "1d"}, {"untaggedOlderThan": "1d"}]}


def test_keep_rules_beat_delete_rules_and_name_the_rule() -> None:
    items = plan(
        repo({"1.0.0": 1, "1.1.0": 2, "v2.0.0-rc.1": 3, "latest": 4}),
        {
            "match": "app",
            "keep": [{"latest": 2, "by": "semver"}, {"tagPattern": "^latest$"}],
            "delete": [{"tagsOlderThan": "30d"}],
        },
    )
    assert (items["1.1.0"].decision, items["1.1.0"].rule) == (KEEP, "retention.rules[0].keep[0]")
    assert items["v2.0.0-rc.1"].decision == KEEP  # a pre-release is a version: 2.0.0-rc.1 > 1.1.0
    assert (items["latest"].decision, items["latest"].rule) == (KEEP, "retention.rules[0].keep[1]")
    assert (items["1.0.0"].decision, items["1.0.0"].rule) == (DELETE, "retention.rules[0].delete[0]")
    assert items[d(1)].decision == DELETE
    assert items[d(2)].decision == PROTECTED


def test_a_tag_whose_manifest_stays_is_only_untagged() -> None:
    items = plan(
        repo({"old": 1, "keep-me": 1}),
        {"match": "app", "keep": [{"tagPattern": "^keep"}], "delete": [{"tagsOlderThan": "1d"}]},
    )
    assert items["old"].decision == UNTAG
    assert "a kept tag points to it" in items["old"].reason
    assert (items[d(1)].decision, items[d(1)].rule) == (PROTECTED, "kept-tag")


def test_verifications_lock_keeps_an_image_and_says_so() -> None:
    r = repo({"1.0.0": 1}, {1: {"write_enabled": False, "delete_enabled": False}})
    items = plan(r, EVERYTHING)
    assert items[d(1)].decision == PROTECTED
    assert items[d(1)].reason.startswith(
        "locked: deleteEnabled=false, writeEnabled=false (Dockmaster's verification lock or a person's)"
    )
    assert items["1.0.0"].decision == UNTAG  # the tag itself is not locked: ACR lets it go
    locked_tag = repo({"1.0.0": 1})
    locked_tag = Repository(
        "lab", "app", {"1.0.0": Tag("1.0.0", d(1), OLD, write_enabled=False)}, locked_tag.manifests
    )
    items = plan(locked_tag, EVERYTHING)
    assert items["1.0.0"].decision == PROTECTED
    assert items[d(1)].decision == PROTECTED


def test_young_images_and_images_being_verified_are_not_touched() -> None:
    young = repo({"a": 1}, {1: {"updated": NOW - dt.timedelta(hours=2)}})
    items = plan(young, {"purge": "--filter 'app:.*' --ago 0d --untagged"})
    assert items[d(1)].rule == "min-age"
    assert items["a"].decision == PROTECTED
    verifying = repo({"a": 1}, verifying=frozenset({d(1)}))
    items = plan(verifying, EVERYTHING)
    assert items[d(1)].rule == "verifying"
    assert items["a"].decision == PROTECTED


def test_a_multi_arch_index_keeps_its_children_and_goes_before_them() -> None:
    index = {1: {}, 2: {}, 3: {"media_type": INDEX, "references": (d(1), d(2))}}
    kept = plan(
        repo({"v1": 3}, index),
        {"match": "app", "keep": [{"tagPattern": "v1"}], "delete": [{"untaggedOlderThan": "1d"}]},
    )
    assert kept[d(1)].decision == PROTECTED
    assert kept[d(1)].rule == "index"
    gone = plan(repo({"v1": 3}, index), EVERYTHING)
    assert {gone[d(i)].decision for i in (1, 2, 3)} == {DELETE}


def test_a_referrer_goes_with_its_subject_never_alone() -> None:
    items = plan(
        repo({"a": 1}, {2: {}}),
        {"match": "app", "keep": [{"tagPattern": "a"}], "delete": [{"untaggedOlderThan": "1d"}]},
        subjects={d(2): d(1)},
    )
    assert items[d(2)].decision == PROTECTED
    assert items[d(2)].rule == "referrer"


def test_purge_keep_spares_the_most_recently_updated() -> None:
    r = repo({"build-1": 1, "build-2": 2, "build-3": 3})
    r = Repository(
        "lab",
        "app",
        {n: Tag(n, t.digest, OLD + dt.timedelta(hours=i)) for i, (n, t) in enumerate(r.tags.items())},
        r.manifests,
    )
    items = plan(r, {"purge": "--filter 'app:^build-' --ago 7d --keep 1"})
    assert [items[n].decision for n in ("build-1", "build-2", "build-3")] == [DELETE, DELETE, KEEP]


def test_a_purge_of_everything_is_stopped_by_the_cap_oldest_first_and_says_so() -> None:
    r = repo({f"t{i}": i for i in range(10)}, {i: {"updated": OLD - dt.timedelta(days=i)} for i in range(10)})
    items = plan(r, {"purge": "--filter 'app:.*' --ago 0d"}, Limits(dt.timedelta(hours=24), 100, 50))
    deleted = sorted(n for n, i in items.items() if i.kind == "tag" and i.decision == DELETE)
    assert deleted == ["t5", "t6", "t7", "t8", "t9"]  # the five oldest: 50% of 10 manifests
    assert items["t0"].decision == DEFERRED
    cap = "over the cap of 5 deletions per repository (the smaller of 100 and 50% of its 10 manifests"
    assert cap in items[d(0)].reason


def test_the_artifacts_attached_to_images_do_not_count_in_the_repositorys_size() -> None:
    """Four images, each with a verdict referrer (the empty config): half the repository is two images, not
    four (each image's referrer goes with it)."""
    referrers = {10 + i: {"tags": (), "config_media_type": EMPTY_CONFIG} for i in range(4)}
    images = {i: {"updated": OLD - dt.timedelta(days=i)} for i in range(4)}
    r = repo({f"t{i}": i for i in range(4)}, {**images, **referrers})
    assert (len(r.manifests), r.size) == (8, 4)
    items = plan(r, EVERYTHING, Limits(dt.timedelta(hours=24), 100, 50), {d(10 + i): d(i) for i in range(4)})
    assert sorted(n for n, i in items.items() if i.kind == "manifest" and i.decision == DELETE) == [
        d(2),
        d(3),
    ]
    assert {items[d(10 + i)].decision for i in range(4)} == {DEFERRED}, "untagged, but the cap is reached"
    untagged = {"match": "app", "delete": [{"untaggedOlderThan": "1d"}]}
    roomy = plan(r, untagged, ROOMY, {d(10 + i): d(i) for i in range(4)})
    assert {(roomy[d(10 + i)].decision, roomy[d(10 + i)].rule) for i in range(4)} == {(PROTECTED, "referrer")}


def test_without_a_rule_nothing_goes() -> None:
    items = plan_repository(repo({"a": 1}, {2: {}}), None, Limits(), NOW, lambda m: None)
    assert not [i for i in items if i.decision in (DELETE, UNTAG, DEFERRED)]
