"""Parsing and validating what callers send: names, ids, build options. Pure functions, InvalidInput.

Repository, tag and digest names go through shared/events.py's validators, as event data does.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..events import validate_digest, validate_repository, validate_tag

# Names are checked with fullmatch, never match + `$`: `$` also matches before a trailing newline.
REGISTRY_NAME = re.compile(r"[A-Za-z0-9]{5,50}")  # ACR's rule for a registry name
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,49}")
# ARM's rule (resources.json: `^[-\w\._\(\)]+$`, 1-90 characters, \w Unicode), and no trailing period.
RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]")
BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PLATFORM = re.compile(
    r"(?P<os>linux|windows)/(?P<arch>amd64|arm64|arm|386|ppc64le|s390x|riscv64)(?:/(?P<variant>v[5-8]))?"
)
# The policy file's rule for its version (shared/policy.py, Policy.version): also a safe Table key part
# (Table storage refuses / \ # ? and control characters in PartitionKey and RowKey).
POLICY_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_BUILD_ARGS = 32
MAX_BUILD_ARG_VALUE = 4096
MAX_DOCKERFILE = 256
MAX_SOURCE_URL = 2048
MAX_VERIFICATION_ID = 1024
ID_SEPARATOR = "|"  # cannot occur in a registry, repository or digest


def registry_name(value: str) -> str:
    if not REGISTRY_NAME.fullmatch(value):
        raise InvalidInput(f"'{value[:64]}' is not a registry name (5-50 letters and digits)")
    return value


def repository(value: str) -> str:
    return validate_repository(value)


def tag(value: str) -> str:
    return validate_tag(value)


def digest(value: str) -> str:
    return validate_digest(value)


def run_id(value: str) -> str:
    if not RUN_ID.fullmatch(value):
        raise InvalidInput(f"'{value[:64]}' is not a run id")
    return value


def resource_group(value: str) -> str:
    if not RESOURCE_GROUP.fullmatch(value):
        raise InvalidInput(
            f"'{value[:90]}' is not a resource group name: 1-90 letters, digits and -._(), not ending in '.'"
        )
    return value


def platform(value: str) -> dict[str, str]:
    """`linux/amd64`, `linux/arm/v7`, … as ACR's PlatformProperties."""
    found = PLATFORM.fullmatch(value.lower())
    if found is None:
        raise InvalidInput(
            f"'{value[:64]}' is not a platform: write os/architecture[/variant], e.g. linux/amd64"
        )
    result = {"os": found["os"].capitalize(), "architecture": found["arch"]}
    if found["variant"]:
        result["variant"] = found["variant"]
    return result


def dockerfile(value: str) -> str:
    """A path inside the build context: relative, no `..`, no control characters."""
    parts = value.split("/")
    if (
        not value
        or len(value) > MAX_DOCKERFILE
        or value.startswith("/")
        or "\\" in value
        or CONTROL.search(value)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise InvalidInput(
            f"'{value[:64]}' is not a Dockerfile path: a relative path inside the context, "
            f"at most {MAX_DOCKERFILE} characters, without '..'"
        )
    return value


def build_args(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_BUILD_ARGS:
        raise InvalidInput(f"at most {MAX_BUILD_ARGS} build arguments")
    for name, value in values.items():
        if not BUILD_ARG_NAME.fullmatch(name):
            raise InvalidInput(f"'{name[:64]}' is not a build argument name")
        if len(value) > MAX_BUILD_ARG_VALUE or CONTROL.search(value):
            raise InvalidInput(
                f"build argument {name}: at most {MAX_BUILD_ARG_VALUE} characters, no control characters"
            )
    return values


def build_arg_pairs(pairs: list[str]) -> dict[str, str]:
    """`NAME=VALUE` query values, as `az acr build --build-arg`."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise InvalidInput(f"build argument '{pair[:64]}' is not NAME=VALUE")
        if name in result:
            raise InvalidInput(f"build argument {name[:64]} is given twice")
        result[name] = value
    return build_args(result)


def source_url(value: str) -> str:
    """A build context the registry fetches itself: an https URL (tarball or git repository)."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  # urlsplit checks the port only when asked
    except ValueError:
        raise InvalidInput(f"sourceUrl has an invalid port: '{value[:64]}'") from None
    if (
        len(value) > MAX_SOURCE_URL
        or parts.scheme != "https"
        or not parts.hostname
        or CONTROL.search(value)
        or " " in value
    ):
        raise InvalidInput(f"sourceUrl must be an https URL of at most {MAX_SOURCE_URL} characters")
    return value


# Verification ids ---------------------------------------------------------------------------------------
# A verdict is keyed by registry, repository, digest and policy version; its id carries all four,
# base64url-encoded (URL-safe, no padding), so it can be read back without a lookup table.


def verification_id(registry: str, repository: str, digest: str, policy_version: str) -> str:
    raw = ID_SEPARATOR.join((registry.lower(), repository, digest, policy_version))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_verification_id(value: str) -> tuple[str, str, str, str]:
    """(registry, repository, digest, policy version), each validated."""
    invalid = InvalidInput(f"'{value[:64]}' is not a verification id")
    if not value or len(value) > MAX_VERIFICATION_ID or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    parts = raw.split(ID_SEPARATOR, 3)
    # The policy version becomes part of a RowKey: one Table storage refuses would fail the read, an
    # outage (503) any caller could trigger; it must be a version a policy file can have.
    if len(parts) != 4 or not POLICY_VERSION.fullmatch(parts[3]):
        raise invalid
    name, repo, sha, policy_version = parts
    try:
        return registry_name(name), repository(repo), digest(sha), policy_version
    except InvalidInput:
        raise invalid from None
