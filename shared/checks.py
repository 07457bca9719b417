"""Pure checks of an image against a policy rule: manifest, config, tag, smoke-run outcome."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from . import oci
from .oci import INDEX_TYPES
from .policy import SEMVER, Rule

EXIT_STATUS = re.compile(r"exit status (\d+)")
UID = re.compile(r"[0-9]+")
# A verdict is one Table entity (64 KiB a property): each reason is bounded, names are listed up to a count.
MAX_REASON = 1024
MAX_NAMES = 10
RUNNER_PLATFORM = "linux/amd64"  # where ACR Tasks runs the smoke run (tasks.LINUX_AMD64)

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def bounded(reason: str, limit: int = MAX_REASON) -> str:
    if len(reason) <= limit:
        return reason
    more = f" … ({len(reason) - limit} characters more)"
    return reason[: limit - len(more)] + more


def names(items: list[str]) -> str:
    """Up to MAX_NAMES of `items`, then how many more."""
    shown = ", ".join(items[:MAX_NAMES])
    return shown + (f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else "")


def passed(name: str, reason: str = "ok") -> CheckResult:
    return CheckResult(name, "passed", bounded(reason))


def failed(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "failed", bounded(reason))


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "skipped", bounded(reason))


def check_tag(rule: Rule, tag: str) -> list[CheckResult]:
    results = []
    if rule.forbid_latest and tag == "latest":
        results.append(failed("tag-latest", "the tag 'latest' is forbidden for this repository"))
    if rule.tag_semver and not SEMVER.match(tag):
        results.append(failed("tag-naming", f"tag '{tag}' is not a semantic version"))
    elif rule.tag_pattern and not re.fullmatch(rule.tag_pattern, tag):
        results.append(failed("tag-naming", f"tag '{tag}' does not match {rule.tag_pattern}"))
    return results or [passed("tag-naming")]


def check_manifest(rule: Rule, media_type: str, document: dict[str, Any]) -> list[CheckResult]:
    """The manifest itself: its media type; an index's platforms, an image's config type. Raises
    oci.Malformed when the document is not what its media type says."""
    results = []
    if media_type not in rule.media_types:
        results.append(failed("media-type", f"media type '{media_type}' is not allowed"))
    else:
        results.append(passed("media-type", media_type))
    if media_type in INDEX_TYPES:
        platforms = {platform_of(m) for m in index_children(document) if m.platform}
        missing = [p for p in rule.required_platforms if p not in platforms]
        if missing:
            results.append(failed("platforms", f"the index lacks {', '.join(missing)}"))
        else:
            results.append(passed("platforms", ", ".join(sorted(platforms)) or "none required"))
        return results
    return results + check_image_manifest(document)


def check_image_manifest(document: dict[str, Any]) -> list[CheckResult]:
    """An image manifest's config must be an image config (else it is some other artifact)."""
    config = oci.image_manifest(document).config
    if config.media_type not in oci.IMAGE_CONFIG_TYPES:
        return [failed("image", f"the manifest is not a container image (config type {config.media_type})")]
    return []


def tag_result(results: list[CheckResult]) -> dict[str, str]:
    """A tag's own result (Verdict.tag_results) from its check_tag results."""
    return {"status": outcome(results), "reason": bounded("; ".join(r.reason for r in results))}


def index_children(document: dict[str, Any]) -> list[oci.Descriptor]:
    """The images an index lists: each is checked (buildx's attestation entries are not images)."""
    return [m for m in oci.index(document).manifests if not m.attestation]


def platform_of(descriptor: oci.Descriptor) -> str:
    platform = descriptor.platform
    return f"{platform.os}/{platform.architecture}" if platform else "no platform"


def runner_child(children: list[oci.Descriptor]) -> oci.Descriptor | None:
    """The image of an index the smoke run runs: the one for ACR Tasks' platform."""
    return next((c for c in children if platform_of(c) == RUNNER_PLATFORM), None)


def user_to_resolve(config: oci.ImageConfig) -> str | None:
    """The user name the image's /etc/passwd must resolve for `User`, if its uid is not in `User` itself."""
    user = (config.runtime.user or "").split(":", 1)[0]
    if user in ("", "root") or UID.fullmatch(user):
        return None
    return user


def check_user(spec: str | None, users: dict[str, int] | str | None) -> CheckResult:
    """Root or not by the numeric uid, as the runtime decides: `user[:group]`, the user part a uid or a
    name of the image's /etc/passwd (`users`: its name → uid, or why it could not be read)."""
    spec = spec or ""
    user = spec.split(":", 1)[0]
    shown = f"User '{spec}'" if spec else "User unset"
    if user in ("", "root"):
        return failed("user", f"the image runs as root ({shown})")
    if UID.fullmatch(user):
        uid = int(user)
    elif isinstance(users, str):
        return failed("user", f"cannot tell which uid {shown} runs as: {users}")
    elif users is None or user not in users:
        return failed("user", f"{shown}: '{user}' is not a user of the image's /etc/passwd")
    else:
        uid = users[user]
    if uid == 0:
        return failed("user", f"the image runs as root ({shown} is uid 0)")
    return passed("user", f"runs as uid {uid} ({shown})")


def check_config(
    rule: Rule,
    config: oci.ImageConfig,
    size: int,
    users: dict[str, int] | str | None = None,
    *,
    in_index: bool = False,
) -> list[CheckResult]:
    """An image's config against the rule (`users`: see check_user). An image of an index is not judged
    on the rule's platforms: the index is."""
    results = []
    if size > rule.max_config_bytes:
        return [
            failed("config-size", f"the config is {size} bytes, over the limit of {rule.max_config_bytes}")
        ]
    results.append(passed("config-size", f"{size} bytes"))
    runtime = config.runtime
    labels = runtime.labels or {}
    missing = [label for label in rule.required_labels if not labels.get(label)]
    if missing:
        results.append(failed("labels", f"missing labels: {names(missing)}"))
    elif rule.required_labels:
        results.append(passed("labels", "all required labels present"))
    if rule.forbid_root_user:
        results.append(check_user(runtime.user, users))
    secret_like = []
    for entry in runtime.env or []:
        name = entry.split("=", 1)[0]
        if any(re.search(pattern, name) for pattern in rule.forbidden_env):
            secret_like.append(name)
    if secret_like:
        results.append(failed("env", f"environment names that look like secrets: {names(secret_like)}"))
    else:
        results.append(passed("env", "no secret-like environment names"))
    if rule.required_platforms and not in_index:
        platform = f"{config.os}/{config.architecture}"
        if platform not in rule.required_platforms or len(rule.required_platforms) > 1:
            results.append(
                failed("platforms", f"single-platform image {platform}; required {rule.required_platforms}")
            )
        else:
            results.append(passed("platforms", platform))
    return results


def merge_images(per_image: list[tuple[str, list[CheckResult]]]) -> list[CheckResult]:
    """The checks of an index's images as one list: a check fails if it fails on any image (an index is
    as good as its worst image), each reason naming the images it is about."""
    merged: dict[str, list[tuple[str, CheckResult]]] = {}
    for label, results in per_image:
        for result in results:
            merged.setdefault(result.name, []).append((label, result))
    out = []
    for name, found in merged.items():
        bad = [(label, r) for label, r in found if r.status == "failed"]
        shown = bad or found
        reason = "; ".join(f"{label}: {r.reason}" for label, r in shown)
        out.append(failed(name, reason) if bad else passed(name, reason))
    return out


def exit_status(status: str, error: str | None) -> int | None:
    """The command's exit status, as far as ACR Tasks tells it: 0 when the run succeeded, else the
    status its error names; None when it names none."""
    if status == "Succeeded":
        return 0
    found = EXIT_STATUS.search(error or "")
    return int(found.group(1)) if found else None


def run_result(status: str, error: str | None, log: str) -> dict[str, Any]:
    """How a smoke run ended, as the verdict keeps it: the log itself stays with ACR Tasks, its digest
    lets a reader check the copy they fetch."""
    return {
        "status": status,
        "exitStatus": exit_status(status, error),
        "logDigest": "sha256:" + hashlib.sha256(log.encode()).hexdigest(),
    }


def check_smoke_run(rule: Rule, status: str, error: str | None, log: str) -> CheckResult:
    """Judge a finished ACR Tasks run against the rule's expectations."""
    smoke = rule.smoke_run
    if status == "Timeout":
        return failed("smoke-run", f"the run timed out after {smoke.timeout_seconds}s")
    if status in ("Canceled", "Error"):
        return failed("smoke-run", f"the run ended {status}: {error or 'no detail'}")
    exit_code = exit_status(status, error)
    if exit_code is None:
        return failed("smoke-run", f"the run failed: {error or 'no detail'}")
    if exit_code != smoke.expect_exit_code:
        return failed("smoke-run", f"exit status {exit_code}, expected {smoke.expect_exit_code}")
    if smoke.expect_output and not re.search(smoke.expect_output, log):
        return failed("smoke-run", f"the output does not match {smoke.expect_output!r}")
    return passed("smoke-run", f"exit status {exit_code}")


def outcome(results: list[CheckResult]) -> Literal["passed", "failed"]:
    return "failed" if any(r.status == "failed" for r in results) else "passed"
