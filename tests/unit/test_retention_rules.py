"""Retention's grammar and rules: acr purge's `--ago` and `--filter` (with acr-cli's own examples),
semantic-version precedence, and the policy file's retention section (strict, errors naming the field)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.errors import ConfigurationError
from shared.policy import parse_policy
from shared.retention.grammar import MAX_DURATION, parse_duration, parse_purge, parse_semver, split_filter
from shared.retention.rules import Limits, limits_of, ruleset_for

D = dt.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", D(days=1)),  # acr purge's examples (cmd/acr/purge.go)
        ("7d", D(days=7)),
        ("5d", D(days=5)),
        ("2d3h6m", D(days=2, hours=3, minutes=6)),
        ("0d", D(0)),
        ("0", D(0)),
        ("36h", D(hours=36)),
        ("1.5h", D(minutes=90)),
        ("90m", D(minutes=90)),
        ("1h30m15s", D(hours=1, minutes=30, seconds=15)),
        ("300ms", D(milliseconds=300)),
        ("3d.5h", D(days=3, minutes=30)),
        ("100000d", MAX_DURATION),  # acr-cli caps at 150 years
    ],
)
def test_durations_are_acr_purges_ago(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "d", "1.5d", "-1d", "-1h", "+1h", "3h2d", "1d1d", "7", "1 d", "1w", "1dh", "1y"]
)
def test_durations_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|days come first"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "repository", "tag"),
    [
        ("hello-world:.*", "hello-world", ".*"),
        (".*:.*", ".*", ".*"),
        ("hello-world:^hello.*", "hello-world", "^hello.*"),
        (r"hello-world:\w*test\w*", "hello-world", r"\w*test\w*"),
        ("samples/(?i:Hello):v1", "samples/(?i:Hello)", "v1"),
        ("repo:v[0-9:]+", "repo", "v[0-9:]+"),
    ],
)
def test_purge_filters_split_as_acr_cli_does(text: str, repository: str, tag: str) -> None:
    assert split_filter(text) == (repository, tag)


@pytest.mark.parametrize(
    ("text", "error"),
    [("repo", "unable"), (":v1", "missing repository"), ("repo:", "missing tag"), ("a:b:c", "unable")],
)
def test_bad_purge_filters_name_the_problem(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        split_filter(text)


def test_a_purge_command_line_moves_over_unchanged() -> None:
    args = parse_purge(
        "acr purge -r example --filter 'hello-world:^hello.*' -f 'other:v1' --ago 7d --keep 2 --untagged"
    )
    assert args.filters == (("hello-world", "^hello.*"), ("other", "v1"))
    assert (args.ago, args.keep, args.untagged) == (D(days=7), 2, True)
    assert parse_purge("--filter=x:.* --ago=2d3h6m --dry-run").ago == D(days=2, hours=3, minutes=6)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("--ago 1d", "--filter is required"),
        ("--filter a:b", "--ago is required"),
        ("--filter a:b --ago 1d --include-locked", "never deletes or unlocks"),
        ("--filter a:b --ago 1d --keep -1", "whole number"),
        ("--filter a:b --ago 1d --everything", "unknown argument"),
        ("--filter a:b --ago", "needs a value"),
    ],
)
def test_purge_command_lines_outside_acr_purge_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_purge(text)


def test_semver_precedence_with_prereleases_and_a_v_prefix() -> None:
    ordered = [
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "v1.0.0",
        "1.0.1",
        "1.10.0",
        "v2.0.0",
    ]
    versions = [parse_semver(tag) for tag in ordered]
    assert all(v is not None for v in versions)
    assert sorted(versions) == versions  # type: ignore[type-var]
    assert parse_semver("1.0.0+build.5") == parse_semver("v1.0.0")  # build metadata has no precedence
    for tag in ("latest", "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "V1.0.0", "1.0.0.0"):
        assert parse_semver(tag) is None, tag


POLICY = """
version: "1"
retention:
  minAge: 48h
  maxDeletions: 20
  rules:
    - match: "prod/*"
      keep:
        - latest: 3
          by: semver
        - tagPattern: "^(latest|stable)$"
      delete:
        - tagsOlderThan: 30d
        - untaggedOlderThan: 7d
    - purge: "acr purge --filter 'legacy/.*:^build-' --filter 'legacy/a:^ci-' --ago 2d --keep 1 --untagged"
"""


def test_the_first_rule_that_applies_is_the_repositorys() -> None:
    policy = parse_policy(POLICY).retention
    prod = ruleset_for(policy, "prod/api")
    assert prod is not None
    assert prod.source == "retention.rules[0] (match prod/*)"
    assert [k.name for k in prod.keep] == ["retention.rules[0].keep[0]", "retention.rules[0].keep[1]"]
    assert prod.delete_untagged[0].older_than == D(days=7)
    legacy = ruleset_for(policy, "legacy/a")
    assert legacy is not None
    assert legacy.delete_tags[0].pattern is not None
    assert legacy.delete_tags[0].pattern.pattern == "^build-|^ci-"  # acr-cli joins a repository's filters
    assert legacy.delete_tags[0].keep_latest == 1
    assert legacy.delete_untagged
    assert ruleset_for(policy, "legacy") is None  # the repository regex is anchored
    assert ruleset_for(policy, "dev/api") is None


def test_the_policy_can_only_make_the_limits_stricter() -> None:
    from shared.config import Settings

    policy = parse_policy(POLICY).retention
    settings = Settings(
        RETENTION_MAX_DELETIONS=100, RETENTION_MAX_DELETION_PERCENT=50, RETENTION_MIN_AGE_HOURS=24
    )
    assert limits_of(settings, policy) == Limits(D(hours=48), 20, 50)
    loose = parse_policy(
        'version: "1"\nretention: {minAge: 1h, maxDeletions: 1000, maxDeletionPercent: 90}'
    ).retention
    assert limits_of(settings, loose) == Limits(D(hours=24), 100, 50)
    assert Limits(D(0), 100, 50).cap(7) == 3
    assert Limits(D(0), 2, 50).cap(100) == 2


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("rules: [{match: a, keep: [{latest: 0}]}]", "retention.rules.0.keep.0.latest"),
        ("rules: [{match: a, keep: [{by: semver}]}]", "retention.rules.0.keep.0"),
        ("rules: [{match: a, delete: [{tagsOlderThan: 1.5d}]}]", "retention.rules.0.delete.0.tagsOlderThan"),
        (
            "rules: [{match: a, delete: [{tagsOlderThan: 1d, untaggedOlderThan: 1d}]}]",
            "retention.rules.0.delete.0",
        ),
        (
            "rules: [{match: a, delete: [{untaggedOlderThan: 1d, tagPattern: x}]}]",
            "retention.rules.0.delete.0",
        ),
        ("rules: [{keep: [{latest: 1}]}]", "retention.rules.0"),
        ("rules: [{match: a, purge: '--filter a:( --ago 1d'}]", "retention.rules.0.purge"),
        ("rules: [{match: a, purge: {filter: ['a:b'], ago: 1d, keepp: 1}}]", "retention.rules.0.purge.keepp"),
        (
            "rules: [{match: a, delete: [{tagsOlderThan: 1d, tagPattern: '('}]}]",
            "retention.rules.0.delete.0.tagPattern",
        ),
        ("maxDeletionPercent: 150", "retention.maxDeletionPercent"),
        ("unknown: 1", "retention.unknown"),
    ],
)
def test_a_bad_retention_section_names_the_field(section: str, field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_policy(f'version: "1"\nretention:\n  {section}\n', "policy.yaml")
    assert field in caught.value.message


def test_the_shipped_policy_file_parses() -> None:
    from pathlib import Path

    policy = parse_policy(Path("policy.yaml").read_text())
    assert policy.retention.rules, "policy.yaml ships an example retention rule"
