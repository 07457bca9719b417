"""oras-py, a standard OCI client from outside the project, logged in to a devstack registry as a user logs
in to ACR, and the referrers API read through it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import oras.auth.utils
import oras.provider
import requests

from devstack.emulator.acr.names import NULL_GUID_USER

INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Oras:
    """oras-py logged in to the registry, and where it keeps its files."""

    client: oras.provider.Registry
    host: str
    config: str  # the Docker config its login wrote
    files: Path

    def reference(self, repository: str, ref: str) -> str:
        return f"{self.host}/{repository}{ref if ref.startswith('@') else ':' + ref}"

    def authorize(self, repository: str, actions: str = "pull,push") -> None:
        """oras-py keeps the first token it gets and asks for another only on a 403, while ACR answers a
        token without the scope a request needs with 401 and its challenge: a token for every action the
        test takes on `repository` is asked for up front, through oras-py's own token request."""
        challenge = {
            "realm": f"https://{self.host}/oauth2/token",
            "service": self.host,
            "scope": f"repository:{repository}:{actions}",
        }
        token = self.client.auth.request_token(oras.auth.utils.authHeader(challenge))
        assert token, "the token endpoint refused the login's credentials"
        self.client.auth.set_token_auth(token)


def login(host: str, arm: str, ca: str, home: Path) -> Oras:
    """As a user logs in to ACR with `az acr login --expose-token`: the null-GUID user and an ACR refresh
    token (an Entra token exchanged at `/oauth2/exchange`), trusting devstack's CA."""
    from azure.identity import DefaultAzureCredential

    entra = DefaultAzureCredential().get_token(f"{arm}/.default").token
    exchanged = requests.post(
        f"https://{host}/oauth2/exchange",
        data={"grant_type": "access_token", "service": host, "access_token": entra},
        verify=ca,
        timeout=30,
    )
    assert exchanged.status_code == 200, exchanged.text
    config = str(home / "config.json")
    logged_in = oras.provider.Registry(hostname=host, tls_verify=ca)
    answer = logged_in.login(
        NULL_GUID_USER, exchanged.json()["refresh_token"], hostname=host, config_path=config
    )
    assert answer == {"Status": "Login Succeeded"}
    return Oras(logged_in, host, config, home)


def discover(
    oras_: Oras, repository: str, digest: str, artifact_type: str | None = None
) -> list[dict[str, Any]]:
    """Every page of `/v2/<repository>/referrers/<digest>`, through oras-py's authenticated request,
    following each `Link`: the pages' descriptors, one list per page."""
    url: str | None = f"https://{oras_.host}/v2/{repository}/referrers/{digest}"
    if artifact_type:
        url = f"{url}?{urlencode({'artifactType': artifact_type})}"
    pages: list[dict[str, Any]] = []
    while url is not None:
        answer = oras_.client.do_request(url, "GET")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == INDEX
        assert answer.headers.get("OCI-Filters-Applied") == ("artifactType" if artifact_type else None)
        body = answer.json()
        assert (body["schemaVersion"], body["mediaType"]) == (2, INDEX)
        pages.append({"manifests": body["manifests"]})
        url = urljoin(url, answer.links["next"]["url"]) if "next" in answer.links else None
    return pages


def digests(pages: list[dict[str, Any]]) -> list[str]:
    return sorted(m["digest"] for page in pages for m in page["manifests"])
