"""The identity-based AzureWebJobsStorage connection: which endpoint the app's queue and table clients use.

Functions documents `__blobServiceUri`, `__queueServiceUri` and `__tableServiceUri`, or instead
`__accountName`, valid only in public Azure; the host derives `<account>.<service>.core.windows.net`
from the account name before it looks at any service URI. The app must reach the account the host's
queue trigger reads, in any cloud.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared import clients
from shared.clients import _storage_endpoint
from shared.config import Settings
from shared.errors import ConfigurationError

PUBLIC = "https://management.azure.com"
US_GOV = "https://management.usgovcloudapi.net"
CHINA = "https://management.chinacloudapi.cn"


def settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


def uris(account: str, suffix: str, slash: str = "") -> dict[str, str]:
    return {
        f"AzureWebJobsStorage__{service}ServiceUri": f"https://{account}.{service}.{suffix}{slash}"
        for service in ("blob", "queue", "table")
    }


@pytest.mark.parametrize(
    ("cloud", "suffix"), [(US_GOV, "core.usgovcloudapi.net"), (CHINA, "core.chinacloudapi.cn")]
)
def test_the_service_uris_are_used_in_a_sovereign_cloud(cloud: str, suffix: str) -> None:
    # As infra/ sets them, from the account's own primaryEndpoints (with their trailing slash).
    found = settings(AZURE_RESOURCE_MANAGER_ENDPOINT=cloud, **uris("dmstore", suffix, "/"))
    for service in ("blob", "queue", "table"):
        assert _storage_endpoint(found, service) == f"https://dmstore.{service}.{suffix}"


def test_a_custom_domain_is_used_as_given() -> None:
    found = settings(
        AzureWebJobsStorage__queueServiceUri="https://dmstore.z12.queue.storage.azure.net",
        AzureWebJobsStorage__tableServiceUri="https://dmstore.z12.table.storage.azure.net",
    )
    assert _storage_endpoint(found, "queue") == "https://dmstore.z12.queue.storage.azure.net"
    assert _storage_endpoint(found, "table") == "https://dmstore.z12.table.storage.azure.net"


def test_the_account_name_alone_in_public_azure() -> None:
    found = settings(AZURE_RESOURCE_MANAGER_ENDPOINT=PUBLIC, AzureWebJobsStorage__accountName="dmstore")
    assert _storage_endpoint(found, "queue") == "https://dmstore.queue.core.windows.net"
    assert _storage_endpoint(found, "table") == "https://dmstore.table.core.windows.net"


@pytest.mark.parametrize("cloud", [US_GOV, CHINA, "https://127.0.0.1:8443"])
def test_the_account_name_alone_is_refused_outside_public_azure(cloud: str) -> None:
    found = settings(AZURE_RESOURCE_MANAGER_ENDPOINT=cloud, AzureWebJobsStorage__accountName="dmstore")
    with pytest.raises(ConfigurationError, match="valid only in public Azure") as refused:
        _storage_endpoint(found, "queue")
    assert "AzureWebJobsStorage__queueServiceUri" in refused.value.message


def test_account_name_and_matching_uris_agree_with_the_host() -> None:
    found = settings(AzureWebJobsStorage__accountName="dmstore", **uris("DMSTORE", "core.windows.net", "/"))
    assert _storage_endpoint(found, "queue") == "https://DMSTORE.queue.core.windows.net"


def test_account_name_next_to_other_uris_is_refused() -> None:
    # The host would derive core.windows.net from the account name, and use it first: its queue trigger
    # would read another endpoint than the one the app writes to.
    found = settings(
        AZURE_RESOURCE_MANAGER_ENDPOINT=US_GOV,
        AzureWebJobsStorage__accountName="dmstore",
        **uris("dmstore", "core.usgovcloudapi.net"),
    )
    with pytest.raises(ConfigurationError, match="remove AzureWebJobsStorage__accountName") as refused:
        _storage_endpoint(found, "queue")
    assert "https://dmstore.queue.core.windows.net" in refused.value.message


def test_the_service_specific_uri_wins_over_service_uri() -> None:
    found = settings(
        AzureWebJobsStorage__serviceUri="https://other.queue.core.windows.net",
        AzureWebJobsStorage__queueServiceUri="https://dmstore.queue.core.windows.net",
    )
    assert _storage_endpoint(found, "queue") == "https://dmstore.queue.core.windows.net"


def test_service_uri_alone_is_refused_for_a_connection_of_queues_and_tables() -> None:
    found = settings(AzureWebJobsStorage__serviceUri="https://dmstore.queue.core.windows.net")
    with pytest.raises(ConfigurationError, match="names a single storage service"):
        _storage_endpoint(found, "table")


@pytest.mark.parametrize("uri", ["http://dmstore.queue.core.windows.net", "dmstore.queue.core.windows.net"])
def test_a_service_uri_must_be_https(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="must be an https:// URI"):
        _storage_endpoint(settings(AzureWebJobsStorage__queueServiceUri=uri), "queue")


def test_nothing_configured() -> None:
    with pytest.raises(ConfigurationError, match="set AzureWebJobsStorage"):
        _storage_endpoint(settings(), "table")


def test_the_clients_use_the_configured_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__accountName", raising=False)
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_ENDPOINT", US_GOV)
    for name, value in uris("dmstore", "core.usgovcloudapi.net", "/").items():
        monkeypatch.setenv(name, value)
    clients.reset()
    try:
        assert clients.queue_client().url.startswith("https://dmstore.queue.core.usgovcloudapi.net/")
        assert clients.storage_table("verdicts").url.startswith(
            "https://dmstore.table.core.usgovcloudapi.net"
        )
    finally:
        clients.reset()
