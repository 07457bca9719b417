"""The policy file and the pure checks it drives."""

from __future__ import annotations

import pytest

from shared import checks, oci
from shared.errors import ConfigurationError
from shared.policy import parse_policy

POLICY = """
version: "2026.11.1"
default:
  forbidRootUser: true
  requiredLabels: [org.opencontainers.image.source]
  smokeRun: {timeoutSeconds: 60}
rules:
  - match: "prod/*"
    tagSemver: true
    forbidLatest: true
    onPass: lock
    onFail: quarantine
  - match: "tools/*"
    forbidRootUser: false
    requiredLabels: []
    smokeRun: {enabled: false}
"""


def test_first_match_wins_and_rules_inherit_the_default() -> None:
    policy = parse_policy(POLICY)
    assert policy.version == "2026.11.1"
    prod = policy.rule_for("prod/api")
    assert (prod.tag_semver, prod.on_pass, prod.on_fail, prod.forbid_root_user) == (
        True,
        "lock",
        "quarantine",
        True,
    )
    assert prod.smoke_run.timeout_seconds == 60
    tools = policy.rule_for("tools/jq")
    assert (tools.forbid_root_user, tools.smoke_run.enabled) == (False, False)
    other = policy.rule_for("team/app")
    assert (other.on_pass, other.required_labels) == ("none", ["org.opencontainers.image.source"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: [", "not valid YAML"),
        ("- a", "mapping"),
        ("default: {}", "version"),
        ("version: '1'\ndefault: {forbidRootUser: maybe}", "forbidRootUser"),
        ("version: '1'\ndefault: {unknownKey: 1}", "unknownKey"),
        ("version: '1'\nrules: [{tagSemver: true}]", "match"),
        ("version: '1'\ndefault: {tagPattern: '('}", "tag"),
        ("version: '1'\ndefault: {requiredPlatforms: [amd64]}", "linux/amd64"),
        ("version: '1'\ndefault: {smokeRun: {timeoutSeconds: 1}}", "timeoutSeconds"),
        ("version: 'has space'", "version"),
    ],
)
def test_policy_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_policy(text, "policy.yaml")


def config(
    user: str = "1000", env: list[str] | None = None, labels: dict[str, str] | None = None
) -> oci.ImageConfig:
    return oci.image_config(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": user,
                "Env": env or ["PATH=/bin"],
                "Labels": {"org.opencontainers.image.source": "https://example.invalid/repo"}
                if labels is None
                else labels,
            },
        }
    )


def statuses(results: list[checks.CheckResult]) -> dict[str, str]:
    return {r.name: r.status for r in results}


def test_config_checks() -> None:
    rule = parse_policy(POLICY).rule_for("team/app")
    assert checks.outcome(checks.check_config(rule, config(), 100)) == "passed"
    root = statuses(checks.check_config(rule, config(user=""), 100))
    assert root["user"] == "failed"
    secrets = checks.check_config(rule, config(env=["DB_PASSWORD=x", "API_KEY=y", "HOME=/"]), 100)
    env = next(r for r in secrets if r.name == "env")
    assert env.status == "failed"
    assert "DB_PASSWORD" in env.reason
    assert "API_KEY" in env.reason
    assert statuses(checks.check_config(rule, config(labels={}), 100))["labels"] == "failed"
    assert statuses(checks.check_config(rule, config(), 10**9)) == {"config-size": "failed"}


def test_tag_checks() -> None:
    prod = parse_policy(POLICY).rule_for("prod/api")
    assert checks.outcome(checks.check_tag(prod, "1.2.3")) == "passed"
    assert checks.outcome(checks.check_tag(prod, "v1.2.3-rc.1")) == "passed"
    assert statuses(checks.check_tag(prod, "latest")) == {"tag-latest": "failed", "tag-naming": "failed"}
    assert checks.outcome(checks.check_tag(prod, "feature-x")) == "failed"


IMAGE = "application/vnd.oci.image.manifest.v1+json"


def descriptor(media_type: str, digest: str = "sha256:" + "a" * 64, **more: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": 10, **more}


def test_manifest_checks() -> None:
    rule = parse_policy(
        "version: '1'\ndefault: {requiredPlatforms: [linux/amd64, linux/arm64]}"
    ).default_rule()
    index = {"manifests": [descriptor(IMAGE, platform={"os": "linux", "architecture": "amd64"})]}
    results = checks.check_manifest(rule, "application/vnd.oci.image.index.v1+json", index)
    assert statuses(results) == {"media-type": "passed", "platforms": "failed"}
    artifact = {"config": descriptor("application/vnd.cncf.helm.config.v1+json")}
    results = checks.check_manifest(rule, "application/vnd.oci.image.manifest.v1+json", artifact)
    assert statuses(results)["image"] == "failed"
    image = {"config": descriptor("application/vnd.oci.image.config.v1+json")}
    assert statuses(checks.check_manifest(rule, "text/plain", image))["media-type"] == "failed"
    with pytest.raises(oci.Malformed, match="config: Field required"):
        checks.check_manifest(rule, IMAGE, {})


@pytest.mark.parametrize(
    ("status", "error", "log", "expected"),
    [
        ("Succeeded", None, "ok", "passed"),
        ("Failed", "failed during container, err: exit status 1", "", "failed"),
        ("Timeout", "run timed out", "", "failed"),
        ("Error", "agent restarted", "", "failed"),
    ],
)
def test_smoke_run_outcomes(status: str, error: str | None, log: str, expected: str) -> None:
    rule = parse_policy(POLICY).rule_for("team/app")
    assert checks.check_smoke_run(rule, status, error, log).status == expected


def test_smoke_run_expectations() -> None:
    rule = parse_policy(
        "version: '1'\ndefault: {smokeRun: {expectExitCode: 3, expectOutput: 'ready on port \\d+'}}"
    ).default_rule()
    assert checks.check_smoke_run(rule, "Failed", "err: exit status 3", "ready on port 80").status == "passed"
    assert checks.check_smoke_run(rule, "Failed", "err: exit status 3", "crashed").status == "failed"
    assert checks.check_smoke_run(rule, "Succeeded", None, "ready on port 80").status == "failed"
