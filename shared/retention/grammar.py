"""Pure grammar for retention rules: durations, `acr purge` arguments, semantic versions.

Durations are `acr purge --ago`'s: an optional whole number of days followed by `d`, then a Go duration
(`time.ParseDuration`: decimal numbers with a unit ns, us, µs, ms, s, m, h, e.g. `2d3h6m`, `1.5h`, `0d`;
acr-cli's `parseDuration` in cmd/acr/purge.go). acr-cli reads a malformed value leniently (`1.5d` as one
day, a sign as a future cutoff); here any text outside the grammar is refused. Like acr-cli, a duration
is capped at 150 years.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from dataclasses import dataclass
from functools import total_ordering

MAX_DURATION = dt.timedelta(days=150 * 365)  # acr-cli's maxAgoDurationYears
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DAYS = re.compile(r"([0-9]+)d(.*)", re.DOTALL)


def _go_duration(text: str) -> float:
    """Seconds of a Go duration without a sign; ValueError outside the grammar."""
    if text == "0":
        return 0.0
    if not text:
        raise ValueError("empty duration")
    seconds, at = 0.0, 0
    while at < len(text):
        found = _GO_PART.match(text, at)
        if found is None:
            raise ValueError(f"'{text}' is not a Go duration (like 3h6m, 1.5h, 90s)")
        seconds += float(found.group(1)) * _GO_UNITS[found.group(2)]
        at = found.end()
    return seconds


def parse_duration(text: str) -> dt.timedelta:
    """`2d3h6m`, `7d`, `0d`, `36h`, `90m`: acr purge's `--ago` grammar, capped at 150 years."""
    if not isinstance(text, str):
        raise ValueError("a duration is a string such as 7d, 36h or 2d3h6m")
    value = text.strip()
    days, rest = 0, value
    found = _DAYS.fullmatch(value)
    if found is not None:
        days, rest = int(found.group(1)), found.group(2)
        seconds = _go_duration(rest) if rest else 0.0
    elif "d" in value:
        raise ValueError(f"'{text}': days come first and once, as a whole number (2d3h6m)")
    else:
        seconds = _go_duration(rest)
    if days > MAX_DURATION.days:
        return MAX_DURATION
    return min(dt.timedelta(days=days, seconds=seconds), MAX_DURATION)


def compile_regex(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: invalid regular expression {pattern!r}: {exc}") from exc


def split_filter(text: str) -> tuple[str, str]:
    """('repository regex', 'tag regex') of a `--filter` value: split at the one colon that is not part
    of a group's flags (`(?i:...)`) or a character class, as acr-cli's GetRepositoryAndTagRegex."""
    parts = _colon_split(text)
    if len(parts) != 2:
        raise ValueError(
            f"filter '{text}': unable to correctly parse filter flag (write repo-regex:tag-regex)"
        )
    repository, tag = parts
    if not repository:
        raise ValueError(f"filter '{text}': missing repository name/expression")
    if not tag:
        raise ValueError(f"filter '{text}': missing tag name/expression")
    compile_regex(f"^{repository}$", f"filter '{text}' repository")
    compile_regex(tag, f"filter '{text}' tag")
    return repository, tag


def _colon_split(text: str) -> list[str]:
    """Split at colons outside `(?flags:` groups and `[...]` classes."""
    parts, current, depth_class, at = [], [], False, 0
    while at < len(text):
        char = text[at]
        if char == "\\" and at + 1 < len(text):
            current.append(text[at : at + 2])
            at += 2
            continue
        if char == "[" and not depth_class:
            depth_class = True
        elif char == "]" and depth_class:
            depth_class = False
        elif char == ":" and not depth_class and not re.search(r"\(\?[imsxaLu-]*$", "".join(current)):
            parts.append("".join(current))
            current = []
            at += 1
            continue
        current.append(char)
        at += 1
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class PurgeArgs:
    """The arguments of an `acr purge` command line that decide what it deletes."""

    filters: tuple[tuple[str, str], ...]
    ago: dt.timedelta
    ago_text: str
    keep: int = 0
    untagged: bool = False


# Flags acr purge takes that change how it runs, not what it deletes: accepted and ignored here (the
# registry is Dockmaster's configured one; dry run is RETENTION_DRY_RUN and the API's dryRun).
_IGNORED_WITH_VALUE = {
    "-r",
    "--registry",
    "--concurrency",
    "--repository-page-size",
    "--filter-timeout-seconds",
}
_IGNORED = {"--dry-run"}


def parse_purge(text: str) -> PurgeArgs:
    """An `acr purge` command line (with or without `acr purge` in front) → its filters, age, keep, untagged.

    `--include-locked` is refused: retention never deletes a locked image, nor unlocks one."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"purge: {exc}") from exc
    if words[:2] == ["acr", "purge"]:
        words = words[2:]
    filters: list[tuple[str, str]] = []
    ago: str | None = None
    keep, untagged, at = 0, False, 0
    while at < len(words):
        word = words[at]
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        needs_value = name in ("--filter", "-f", "--ago", "--keep") or name in _IGNORED_WITH_VALUE
        value = inline if eq else None
        if needs_value and value is None:
            if at + 1 >= len(words):
                raise ValueError(f"purge: {name} needs a value")
            value, at = words[at + 1], at + 1
        at += 1
        if name in ("--filter", "-f"):
            filters.append(split_filter(str(value)))
        elif name == "--ago":
            ago = str(value)
        elif name == "--keep":
            if not str(value).isascii() or not str(value).isdigit():
                raise ValueError(f"purge: --keep {value}: a whole number, 0 or more")
            keep = int(str(value))
        elif name == "--untagged":
            untagged = _flag(name, value if eq else None)
        elif name == "--include-locked":
            raise ValueError(
                "purge: --include-locked is refused: retention never deletes or unlocks a locked image"
            )
        elif name in _IGNORED_WITH_VALUE or name in _IGNORED:
            continue
        else:
            raise ValueError(f"purge: unknown argument '{word}'")
    if not filters:
        raise ValueError("purge: --filter is required (acr purge marks it required)")
    if ago is None:
        raise ValueError("purge: --ago is required (acr purge marks it required)")
    return PurgeArgs(tuple(filters), parse_duration(ago), ago, keep, untagged)


def _flag(name: str, value: str | None) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise ValueError(f"purge: {name}={value}: true or false")


# Semantic Versioning 2.0.0, with an optional leading `v` (as tags often carry); build metadata is
# parsed and ignored for precedence (semver.org §10-11).
SEMVER = re.compile(
    r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version ordered by SemVer precedence: a pre-release sorts before its release,
    numeric identifiers numerically and before alphanumeric ones, a longer pre-release after its prefix."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return self.major, self.minor, self.patch, 0 if self.pre else 1, pre

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def parse_semver(tag: str) -> Version | None:
    found = SEMVER.fullmatch(tag)
    if found is None:
        return None
    pre = tuple(found.group(4).split(".")) if found.group(4) else ()
    return Version(int(found.group(1)), int(found.group(2)), int(found.group(3)), pre)


def human(delta: dt.timedelta) -> str:
    """A duration as the rules write it: 30d, 36h, 2d3h6m, 0s."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n
    )
    return text or "0s"
