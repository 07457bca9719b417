"""The verification policy: a versioned YAML file of rules matched by repository pattern.

The first rule whose `match` fits the repository wins; the `default` rule applies
otherwise. Each rule only overrides the settings it names.

The file's `retention` section holds the image retention rules (`RetentionPolicy`, applied by
shared/retention): not part of a verdict, so changing it needs no new `version`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigurationError
from .retention.grammar import compile_regex, parse_duration, parse_purge, split_filter

IMAGE_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
]
LOCK = "lock"  # the actions a rule can take on a verdict
QUARANTINE = "quarantine"
SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


class SmokeRun(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = True
    args: list[str] = Field(default_factory=list)
    timeout_seconds: int = Field(300, alias="timeoutSeconds", ge=5, le=28800)
    expect_exit_code: int = Field(0, alias="expectExitCode")
    expect_output: str | None = Field(None, alias="expectOutput")

    @field_validator("expect_output")
    @classmethod
    def _output(cls, value: str | None) -> str | None:
        return _regex(value) if value is not None else None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    media_types: list[str] = Field(default_factory=lambda: list(IMAGE_TYPES), alias="mediaTypes")
    required_platforms: list[str] = Field(default_factory=list, alias="requiredPlatforms")
    max_config_bytes: int = Field(64 * 1024, alias="maxConfigBytes", gt=0)
    required_labels: list[str] = Field(default_factory=list, alias="requiredLabels")
    forbid_root_user: bool = Field(False, alias="forbidRootUser")
    forbidden_env: list[str] = Field(
        default_factory=lambda: [r"(?i)(secret|passw(or)?d|token|api_?key|private_?key)"],
        alias="forbiddenEnv",
    )
    tag_pattern: str | None = Field(None, alias="tagPattern")
    tag_semver: bool = Field(False, alias="tagSemver")
    forbid_latest: bool = Field(False, alias="forbidLatest")
    smoke_run: SmokeRun = Field(default_factory=SmokeRun, alias="smokeRun")
    on_pass: Literal["lock", "none"] = Field("none", alias="onPass")
    on_fail: Literal["quarantine", "report"] = Field("report", alias="onFail")

    @field_validator("forbidden_env")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [_regex(pattern) for pattern in value]

    @field_validator("tag_pattern")
    @classmethod
    def _tag_regex(cls, value: str | None) -> str | None:
        return _regex(value) if value is not None else None

    @field_validator("required_platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        for platform in value:
            if not re.fullmatch(r"[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?", platform):
                raise ValueError(f"platform '{platform}' must look like linux/amd64")
        return value


class MatchedRule(Rule):
    match: str


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _tag_regex_or_none(value: str | None) -> str | None:
    if value is not None:
        compile_regex(value, "tagPattern")
    return value


class RetentionKeep(BaseModel):
    """Keep the latest N tags (by semantic version or by push time), or every tag matching a pattern, or
    the latest N among those matching it. A pattern is searched in the tag (anchor it with ^…$)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    latest: int | None = Field(None, ge=1, le=100_000)
    by: Literal["semver", "pushed"] | None = None
    tag_pattern: str | None = Field(None, alias="tagPattern", max_length=512)

    _pattern = field_validator("tag_pattern")(_tag_regex_or_none)

    @model_validator(mode="after")
    def _something_kept(self) -> RetentionKeep:
        if self.latest is None and self.tag_pattern is None:
            raise ValueError("a keep rule names `latest` or `tagPattern` (or both)")
        if self.by is not None and self.latest is None:
            raise ValueError("`by` orders `latest`: give `latest` too")
        return self


class RetentionDelete(BaseModel):
    """Delete tags older than an age (optionally only those matching a pattern), or untagged manifests
    older than an age. Ages are acr purge's `--ago` durations: 30d, 36h, 2d3h6m."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tags_older_than: str | None = Field(None, alias="tagsOlderThan", max_length=64)
    tag_pattern: str | None = Field(None, alias="tagPattern", max_length=512)
    untagged_older_than: str | None = Field(None, alias="untaggedOlderThan", max_length=64)

    _durations = field_validator("tags_older_than", "untagged_older_than")(_duration)
    _pattern = field_validator("tag_pattern")(_tag_regex_or_none)

    @model_validator(mode="after")
    def _one_kind(self) -> RetentionDelete:
        if (self.tags_older_than is None) == (self.untagged_older_than is None):
            raise ValueError("a delete rule names exactly one of `tagsOlderThan` and `untaggedOlderThan`")
        if self.tag_pattern is not None and self.tags_older_than is None:
            raise ValueError("`tagPattern` selects tags: it goes with `tagsOlderThan`")
        return self


class RetentionPurge(BaseModel):
    """An `acr purge` job, unchanged: the command line as a string, or its parts."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    filter: list[str] = Field(min_length=1, max_length=64)
    ago: str = Field(max_length=64)
    keep: int = Field(0, ge=0, le=100_000)
    untagged: bool = False

    @model_validator(mode="before")
    @classmethod
    def _command_line(cls, value: Any) -> Any:
        if isinstance(value, str):
            args = parse_purge(value)
            return {"filter": [f"{r}:{t}" for r, t in args.filters], "ago": args.ago_text,
                    "keep": args.keep, "untagged": args.untagged}  # fmt: skip
        if isinstance(value, dict) and isinstance(value.get("filter"), str):
            return {**value, "filter": [value["filter"]]}
        return value

    @field_validator("filter")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        for item in value:
            split_filter(item)
        return value

    _ago = field_validator("ago")(_duration)


class RetentionRule(BaseModel):
    """The rules of the repositories `match` (a glob) selects, or, without `match`, those a purge
    filter's repository expression selects. The first rule that applies to a repository is its rule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match: str | None = Field(None, min_length=1, max_length=256)
    keep: list[RetentionKeep] = Field(default_factory=list, max_length=64)
    delete: list[RetentionDelete] = Field(default_factory=list, max_length=64)
    purge: RetentionPurge | None = None

    @model_validator(mode="after")
    def _applies_somewhere(self) -> RetentionRule:
        if self.match is None and self.purge is None:
            raise ValueError("a retention rule needs `match` (a repository glob) or `purge`")
        return self


class RetentionPolicy(BaseModel):
    """The retention section. Its limits can only make the settings stricter: the larger minimum age and
    the smaller caps win."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    min_age: str | None = Field(None, alias="minAge", max_length=64)
    max_deletions: int | None = Field(None, alias="maxDeletions", ge=0)
    max_deletion_percent: float | None = Field(None, alias="maxDeletionPercent", ge=0, le=100)
    rules: list[RetentionRule] = Field(default_factory=list, max_length=256)

    _min_age = field_validator("min_age")(_duration)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    default: dict[str, Any] = Field(default_factory=dict)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)

    def model_post_init(self, context: Any) -> None:
        self._default = Rule.model_validate(self.default)
        self._rules: list[MatchedRule] = []
        for index, raw in enumerate(self.rules):
            if "match" not in raw:
                raise ValueError(f"rules[{index}] needs a 'match' repository pattern")
            # A rule overrides only what it names; everything else comes from the default rule.
            merged = {**self._default.model_dump(by_alias=True), **raw}
            self._rules.append(MatchedRule.model_validate(merged))

    def default_rule(self) -> Rule:
        return self._default

    def rule_for(self, repository: str) -> Rule:
        for rule in self._rules:
            if fnmatch.fnmatchcase(repository, rule.match):
                return rule
        return self._default


def parse_policy(text: str, source: str = "policy") -> Policy:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: the policy must be a mapping with 'version'")
    try:
        return Policy.model_validate(document)
    except (ValidationError, ValueError, re.error) as exc:
        raise ConfigurationError(f"{source}: {exc}") from exc


@functools.cache
def load_policy(path: str) -> Policy:
    """Read and validate the policy file once per process; errors name the file and the field."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"policy file '{path}' does not exist (DOCKMASTER_POLICY_PATH)")
    return parse_policy(file.read_text(), str(file))
