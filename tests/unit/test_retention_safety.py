"""Safety of image retention, property-based: for any repository (tags → digests, indexes and their
children, locks on tags and on manifests, ages, referrers, verifications in progress) and any rules
(keep rules, delete-everything, acr purge expressions) and limits, no protected digest is ever among the
plan's deletions, no protected tag is untagged, the cap holds, and executing a reviewed plan deletes only
what both it and a fresh plan delete. What is protected is computed here from the generated state, not
by the planner."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.policy import RetentionPolicy
from shared.retention.planner import (
    DEFERRED,
    DELETE,
    EMPTY_CONFIG,
    MANIFEST,
    TAG,
    UNKNOWN,
    UNTAG,
    Manifest,
    PlanItem,
    Repository,
    Tag,
    plan_repository,
)
from shared.retention.records import KEPT, NOT_REVIEWED, Filters, Plan
from shared.retention.rules import Limits, ruleset_for
from shared.retention.service import reconcile

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAG_NAMES = ["1.0.0", "v1.2.0", "2.0.0-rc.1", "2.0.0", "latest", "stable", "build-7", "build-8", "ci-1", "x"]
AGES = [None, 0.5, 12, 30, 200, 2000, 20000]  # hours

RULES: list[dict[str, Any]] = [
    {"match": "*", "delete": [{"tagsOlderThan": "0d"}, {"untaggedOlderThan": "0d"}]},  # delete everything
    {"purge": "--filter '.*:.*' --ago 0d --untagged"},
    {"purge": "--filter 'app:.*' --ago 100000d --untagged"},  # a huge --ago
    {"purge": "--filter 'app:^build-' --ago 1d --keep 1"},
    {"match": "app", "keep": [{"latest": 2, "by": "semver"}], "delete": [{"tagsOlderThan": "1d"}]},
    {
        "match": "app",
        "keep": [{"tagPattern": "^(latest|stable)$"}, {"latest": 1}],
        "delete": [{"tagsOlderThan": "0d"}, {"untaggedOlderThan": "1d"}],
    },
]


def _digest(i: int) -> str:
    return f"sha256:{i:064x}"


CONFIG_TYPES = [None, "application/vnd.oci.image.config.v1+json", EMPTY_CONFIG]


def _time(age: float | None) -> dt.datetime | None:
    return None if age is None else NOW - dt.timedelta(hours=age)


@st.composite
def repositories(draw: st.DrawFn) -> tuple[Repository, dict[str, str | None]]:
    count = draw(st.integers(1, 10))
    digests = [_digest(i) for i in range(count)]
    kinds = draw(st.lists(st.sampled_from([OCI, OCI, INDEX, DOCKER]), min_size=count, max_size=count))
    tags: dict[str, Tag] = {}
    for name in draw(st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=8)):
        tags[name] = Tag(
            name,
            draw(st.sampled_from(digests)),
            _time(draw(st.sampled_from(AGES))),
            draw(st.booleans()) or draw(st.booleans()),
            draw(st.booleans()) or draw(st.booleans()),
        )
    manifests: dict[str, Manifest] = {}
    subjects: dict[str, str | None] = {}
    for i, digest in enumerate(digests):
        children: tuple[str, ...] = ()
        if kinds[i] == INDEX:
            children = tuple(
                draw(st.lists(st.sampled_from(digests[:i] or [digest]), unique=True, max_size=3))
            )
            children = tuple(c for c in children if c != digest)
        manifests[digest] = Manifest(
            digest,
            kinds[i],
            _time(draw(st.sampled_from(AGES))),
            tuple(t.name for t in tags.values() if t.digest == digest),
            draw(st.booleans()) or draw(st.booleans()),
            draw(st.booleans()) or draw(st.booleans()),
            children,
            draw(st.sampled_from(CONFIG_TYPES)),  # the empty config: an attached artifact
        )
        subjects[digest] = draw(st.sampled_from([None, None, UNKNOWN, _digest(99), *digests]))
        if subjects[digest] == digest:
            subjects[digest] = None
    verifying = frozenset(draw(st.lists(st.sampled_from(digests), max_size=2)))
    return Repository("lab", "app", tags, manifests, verifying), subjects


limits = st.builds(
    Limits,
    st.sampled_from([dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(hours=24), dt.timedelta(hours=48)]),
    st.integers(0, 12),
    st.sampled_from([0.0, 10.0, 50.0, 100.0]),
)


def _plan(
    repo: Repository, subjects: dict[str, str | None], rule: dict[str, Any], limit: Limits
) -> list[PlanItem]:
    policy = RetentionPolicy.model_validate({"rules": [rule]})
    return plan_repository(repo, ruleset_for(policy, repo.name), limit, NOW, lambda m: subjects[m.digest])


def _young(moment: dt.datetime | None, limit: Limits) -> bool:
    return moment is None or moment >= NOW - limit.min_age


@PROPERTIES
@given(repositories(), st.sampled_from(RULES), limits)
def test_no_protected_digest_or_tag_is_ever_deleted_and_the_cap_holds(
    state: tuple[Repository, dict[str, str | None]], rule: dict[str, Any], limit: Limits
) -> None:
    repo, subjects = state
    items = _plan(repo, subjects, rule, limit)
    deleted = {i.digest for i in items if i.kind == MANIFEST and i.decision == DELETE}
    untagged = {i.name for i in items if i.kind == TAG and i.decision == UNTAG}
    tag_decision = {i.name: i.decision for i in items if i.kind == TAG}

    assert sum(1 for i in items if i.acts) <= limit.cap(repo.size)
    assert len(items) == len(repo.tags) + len(repo.manifests)  # every tag and manifest has its decision
    for digest in deleted:
        manifest = repo.manifests[digest]
        on = [t for t in repo.tags.values() if t.digest == digest]
        assert not manifest.locked, "a locked manifest is deleted"
        assert all(not t.locked for t in on), "a manifest with a locked tag is deleted"
        assert not _young(manifest.updated, limit), "a young manifest is deleted"
        assert digest not in repo.verifying, "a manifest being verified is deleted"
        assert all(tag_decision[t.name] == DELETE for t in on), "a kept tag's digest is deleted"
        parents = [m.digest for m in repo.manifests.values() if digest in m.references]
        assert all(p in deleted for p in parents), "a child of an index that stays is deleted"
        if manifest.media_type != DOCKER:
            subject = subjects[digest]
            assert subject != UNKNOWN
            assert subject not in repo.manifests, "a referrer is deleted on its own"
    for name in untagged:
        tag = repo.tags[name]
        owner = repo.manifests[tag.digest]
        assert not tag.locked, "a locked tag is untagged"
        assert not _young(tag.updated, limit), "a young tag is untagged"
        assert not _young(owner.updated, limit)
        assert owner.digest not in repo.verifying
        assert owner.digest not in deleted
    for item in items:
        if item.decision == DEFERRED:
            assert "over the cap" in item.reason


@PROPERTIES
@given(repositories(), st.sampled_from([r for r in RULES if "purge" not in r or "0d" in str(r)]))
def test_delete_everything_rules_are_stopped_by_the_cap(
    state: tuple[Repository, dict[str, str | None]], rule: dict[str, Any]
) -> None:
    repo, subjects = state
    limit = Limits(dt.timedelta(0), 100, 50.0)
    items = _plan(repo, subjects, rule, limit)
    assert sum(1 for i in items if i.acts) <= repo.size // 2  # attached artifacts go with their images


@PROPERTIES
@given(repositories(), st.sampled_from(RULES), st.sampled_from(RULES), limits, limits, st.data())
def test_executing_a_reviewed_plan_deletes_only_what_both_plans_delete(
    state: tuple[Repository, dict[str, str | None]],
    rule_before: dict[str, object],
    rule_now: dict[str, object],
    limit_before: Limits,
    limit_now: Limits,
    data: st.DataObject,
) -> None:
    repo, subjects = state
    reviewed_items = _plan(repo, subjects, rule_before, limit_before)
    # The world moved: some tags were re-pointed or locked meanwhile.
    moved = dict(repo.tags)
    for name in data.draw(st.lists(st.sampled_from(sorted(moved) or ["-"]), max_size=3)):
        if name in moved:
            moved[name] = replace(
                moved[name],
                digest=data.draw(st.sampled_from(sorted(repo.manifests))),
                delete_enabled=data.draw(st.booleans()),
            )
    now_repo = replace(repo, tags=moved)
    fresh_items = _plan(now_repo, subjects, rule_now, limit_now)
    reviewed = Plan("plan-20261129T080000Z-00000000", NOW, Filters(), True, reviewed_items)
    fresh = Plan("plan-20261129T080100Z-00000001", NOW, Filters(), True, fresh_items)
    todo, refused = reconcile(reviewed, fresh)
    before = {(i.key, i.decision, i.digest) for i in reviewed.deletions}
    after = {(i.key, i.decision, i.digest) for i in fresh.deletions}
    assert {(i.key, i.decision, i.digest) for i in todo} <= before & after
    assert all(i.acts for i in todo)
    accounted = {(o.item.key, o.item.decision, o.item.digest) for o in refused} | {
        (i.key, i.decision, i.digest) for i in todo
    }
    assert (before | after) <= accounted, "a deletion of either plan is neither made nor explained"
    assert {o.result for o in refused} <= {KEPT, NOT_REVIEWED}
