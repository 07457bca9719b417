"""The policy's retention section compiled for one repository: ordered keep and delete rules, and the
limits (minimum age, cap) with the settings. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
from dataclasses import dataclass

from ..config import Settings
from ..policy import RetentionPolicy, RetentionPurge, RetentionRule
from .grammar import parse_duration, split_filter


@dataclass(frozen=True)
class KeepRule:
    name: str  # where it is written, e.g. retention.rules[0].keep[1]
    latest: int | None = None
    by: str = "pushed"  # semver | pushed
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class DeleteTags:
    name: str
    older_than: dt.timedelta
    pattern: re.Pattern[str] | None = None
    keep_latest: int = 0  # acr purge's --keep: the N most recently updated of those it would delete stay


@dataclass(frozen=True)
class DeleteUntagged:
    name: str
    older_than: dt.timedelta


@dataclass(frozen=True)
class Ruleset:
    """One repository's rules, in the order they are evaluated."""

    source: str
    keep: tuple[KeepRule, ...] = ()
    delete_tags: tuple[DeleteTags, ...] = ()
    delete_untagged: tuple[DeleteUntagged, ...] = ()


@dataclass(frozen=True)
class Limits:
    """The minimum age no image younger than is touched, and the cap of deletions per repository."""

    min_age: dt.timedelta = dt.timedelta(hours=24)
    max_deletions: int = 100
    max_percent: float = 50.0

    def cap(self, manifests: int) -> int:
        """Deletions allowed in a repository of `manifests` manifests: the smaller of the two limits."""
        return max(0, min(self.max_deletions, math.floor(manifests * self.max_percent / 100)))

    def describe(self, manifests: int) -> str:
        return (
            f"the cap of {self.cap(manifests)} deletions per repository (the smaller of "
            f"{self.max_deletions} and {self.max_percent:g}% of its {manifests} manifests, attached "
            "artifacts aside)"
        )


def limits_of(settings: Settings, policy: RetentionPolicy) -> Limits:
    """The settings, made stricter by the policy where it says so (never looser)."""
    min_age = dt.timedelta(hours=settings.retention_min_age_hours)
    if policy.min_age is not None:
        min_age = max(min_age, parse_duration(policy.min_age))
    count = settings.retention_max_deletions
    if policy.max_deletions is not None:
        count = min(count, policy.max_deletions)
    percent = settings.retention_max_deletion_percent
    if policy.max_deletion_percent is not None:
        percent = min(percent, policy.max_deletion_percent)
    return Limits(min_age, count, percent)


def _search(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern is not None else None


def describe_purge(purge: RetentionPurge) -> str:
    filters = " ".join(f"--filter '{f}'" for f in purge.filter)
    keep = f" --keep {purge.keep}" if purge.keep else ""
    return f"purge {filters} --ago {purge.ago}{keep}{' --untagged' if purge.untagged else ''}"


def _purge_tags(purge: RetentionPurge, repository: str) -> str | None:
    """The tag expression acr purge would use in `repository`: the tag regexes of every filter whose
    repository regex matches it in full, joined with | (acr-cli's CollectTagFilters)."""
    tags = []
    for text in purge.filter:
        repo, tag = split_filter(text)
        if re.fullmatch(repo, repository):
            tags.append(tag)
    return "|".join(tags) if tags else None


def _applies(rule: RetentionRule, repository: str) -> bool:
    if rule.match is not None:
        return fnmatch.fnmatchcase(repository, rule.match)
    return rule.purge is not None and _purge_tags(rule.purge, repository) is not None


def ruleset_for(policy: RetentionPolicy, repository: str) -> Ruleset | None:
    """The first rule that applies to `repository`, compiled; None when no rule does (nothing goes)."""
    for index, rule in enumerate(policy.rules):
        if _applies(rule, repository):
            return compile_rule(rule, index, repository)
    return None


def compile_rule(rule: RetentionRule, index: int, repository: str) -> Ruleset:
    at = f"retention.rules[{index}]"
    keep = tuple(
        KeepRule(f"{at}.keep[{i}]", k.latest, k.by or "pushed", _search(k.tag_pattern))
        for i, k in enumerate(rule.keep)
    )
    tags: list[DeleteTags] = []
    untagged: list[DeleteUntagged] = []
    for i, d in enumerate(rule.delete):
        if d.tags_older_than is not None:
            tags.append(
                DeleteTags(f"{at}.delete[{i}]", parse_duration(d.tags_older_than), _search(d.tag_pattern))
            )
        elif d.untagged_older_than is not None:
            untagged.append(DeleteUntagged(f"{at}.delete[{i}]", parse_duration(d.untagged_older_than)))
    if rule.purge is not None:
        expression = _purge_tags(rule.purge, repository)
        ago = parse_duration(rule.purge.ago)
        name = f"{at}: {describe_purge(rule.purge)}"
        if expression is not None:
            tags.append(DeleteTags(name, ago, re.compile(expression), rule.purge.keep))
            if rule.purge.untagged:
                untagged.append(DeleteUntagged(name, ago))
    source = (
        f"{at} (match {rule.match})"
        if rule.match
        else f"{at} ({describe_purge(rule.purge)})"
        if rule.purge
        else at
    )
    return Ruleset(source, keep, tuple(tags), tuple(untagged))
