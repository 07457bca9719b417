"""The HTTP transport of the app's SDK clients: requests' session, with the environment read once.

With `trust_env` on (its default) requests reads the environment on every request: it looks for a netrc
file, scans every environment variable for proxies and `no_proxy`, and reads the CA bundle's variables.
On a verification (five or six requests) that was about a fifth of the app's CPU (benchmarks/REPORT.md).
`EnvironmentOnce` applies the same rules (requests' own `get_environ_proxies`, `REQUESTS_CA_BUNDLE` then
`CURL_CA_BUNDLE`) once per scheme and host for the life of the client, and never reads a netrc file:
no credential kept in a file of the home directory is sent to a host, whatever the host.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

Environment = tuple[dict[str, str], str | None]  # the proxies for a host, the CA bundle


class EnvironmentOnce(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no netrc, no per-request scan: merge_environment_settings below
        self._seen: dict[tuple[str, str], Environment] = {}
        self._lock = threading.Lock()
        # As azure-core mounts its own: the pipeline's RetryPolicy retries, the adapter never does.
        adapter = HTTPAdapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        for scheme in ("http://", "https://"):
            self.mount(scheme, adapter)

    def _environment(self, url: str) -> Environment:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._seen.get(key)
        if found is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = (dict(get_environ_proxies(url, no_proxy=None)), bundle)
            with self._lock:
                self._seen[key] = found
        return found

    def merge_environment_settings(
        self, url: str, proxies: Mapping[str, str] | None, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        env_proxies, bundle = self._environment(url)
        merged = dict(proxies or {})
        for scheme, proxy in env_proxies.items():
            merged.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = bundle or verify
        return dict(super().merge_environment_settings(url, merged, stream, verify, cert))


def transport() -> Any:
    """A transport for one SDK client (each client owns its session and its connection pool)."""
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(session=EnvironmentOnce(), session_owner=True)
