"""Names, scopes and references the registry front accepts, and its refusal of a disabled operation."""

from __future__ import annotations

import re

from ..errors import AcrError

SCOPE = re.compile(r"(repository|registry):(.+):([a-z_*,]+)")
REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # the distribution spec's, ASCII
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
# `/v2/<name>/referrers/<digest>` (OCI distribution spec v1.1): the last `/referrers/`, a digest after it.
REFERRERS_PATH = re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]*)")
V2_PATH = re.compile(r"(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags)(?:/(?P<ref>.*))?")
DENIED = "The operation is disallowed on this registry, repository or image."
# The user name ACR takes with a refresh token as the password (`az acr login --expose-token`).
NULL_GUID_USER = "00000000-0000-0000-0000-000000000000"


def denied() -> AcrError:
    return AcrError(403, "DENIED", DENIED)


def check_repository(name: str) -> None:
    if len(name) > 256 or not REPOSITORY.fullmatch(name):
        raise AcrError(400, "NAME_INVALID", "invalid repository name", detail={"name": name})
