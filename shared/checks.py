"""Pure checks of an image against a policy rule: manifest, config, tag, smoke-run outcome."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .policy import SEMVER, Rule

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
IMAGE_CONFIG_TYPES = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
ROOT_USERS = {"", "root", "0", "0:0", "root:root", "root:0", "0:root"}
EXIT_STATUS = re.compile(r"exit status (\d+)")

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def passed(name: str, reason: str = "ok") -> CheckResult:
    return CheckResult(name, "passed", reason)


def failed(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "failed", reason)


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "skipped", reason)


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
    results = []
    if media_type not in rule.media_types:
        results.append(failed("media-type", f"media type '{media_type}' is not allowed"))
    else:
        results.append(passed("media-type", media_type))
    if media_type in INDEX_TYPES:
        platforms = {
            "/".join(
                p for p in (m.get("platform", {}).get("os"), m.get("platform", {}).get("architecture")) if p
            )
            for m in document.get("manifests") or []
            if isinstance(m, dict)
        }
        missing = [p for p in rule.required_platforms if p not in platforms]
        if missing:
            results.append(failed("platforms", f"the index lacks {', '.join(missing)}"))
        else:
            results.append(passed("platforms", ", ".join(sorted(platforms)) or "none required"))
        return results
    config = document.get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIG_TYPES:
        kind = config.get("mediaType") if isinstance(config, dict) else "none"
        results.append(failed("image", f"the manifest is not a container image (config type {kind})"))
    return results


def config_descriptor(document: dict[str, Any]) -> tuple[str, int] | None:
    config = document.get("config")
    if isinstance(config, dict) and config.get("mediaType") in IMAGE_CONFIG_TYPES:
        return str(config.get("digest", "")), int(config.get("size", 0))
    return None


def check_config(rule: Rule, config: dict[str, Any], size: int) -> list[CheckResult]:
    results = []
    if size > rule.max_config_bytes:
        return [
            failed("config-size", f"the config is {size} bytes, over the limit of {rule.max_config_bytes}")
        ]
    results.append(passed("config-size", f"{size} bytes"))
    runtime = config.get("config") or {}
    labels = runtime.get("Labels") or {}
    missing = [label for label in rule.required_labels if not labels.get(label)]
    if missing:
        results.append(failed("labels", f"missing labels: {', '.join(missing)}"))
    elif rule.required_labels:
        results.append(passed("labels", "all required labels present"))
    if rule.forbid_root_user:
        user = str(runtime.get("User") or "")
        if user in ROOT_USERS:
            results.append(failed("user", f"the image runs as root (User '{user or 'unset'}')"))
        else:
            results.append(passed("user", f"runs as '{user}'"))
    secret_like = []
    for entry in runtime.get("Env") or []:
        name = str(entry).split("=", 1)[0]
        if any(re.search(pattern, name) for pattern in rule.forbidden_env):
            secret_like.append(name)
    if secret_like:
        results.append(failed("env", f"environment names that look like secrets: {', '.join(secret_like)}"))
    else:
        results.append(passed("env", "no secret-like environment names"))
    if rule.required_platforms:
        platform = f"{config.get('os')}/{config.get('architecture')}"
        if platform not in rule.required_platforms or len(rule.required_platforms) > 1:
            results.append(
                failed("platforms", f"single-platform image {platform}; required {rule.required_platforms}")
            )
        else:
            results.append(passed("platforms", platform))
    return results


def check_smoke_run(rule: Rule, status: str, error: str | None, log: str) -> CheckResult:
    """Judge a finished ACR Tasks run against the rule's expectations."""
    smoke = rule.smoke_run
    if status == "Timeout":
        return failed("smoke-run", f"the run timed out after {smoke.timeout_seconds}s")
    if status in ("Canceled", "Error"):
        return failed("smoke-run", f"the run ended {status}: {error or 'no detail'}")
    if status == "Succeeded":
        exit_code = 0
    else:
        found = EXIT_STATUS.search(error or "")
        if not found:
            return failed("smoke-run", f"the run failed: {error or 'no detail'}")
        exit_code = int(found.group(1))
    if exit_code != smoke.expect_exit_code:
        return failed("smoke-run", f"exit status {exit_code}, expected {smoke.expect_exit_code}")
    if smoke.expect_output and not re.search(smoke.expect_output, log):
        return failed("smoke-run", f"the output does not match {smoke.expect_output!r}")
    return passed("smoke-run", f"exit status {exit_code}")


def outcome(results: list[CheckResult]) -> Literal["passed", "failed"]:
    return "failed" if any(r.status == "failed" for r in results) else "passed"
