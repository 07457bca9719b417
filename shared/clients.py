"""Lazily built, per-process SDK clients and credential. Nothing here runs at import time.

Endpoints come from settings (sovereign-cloud style), so the same code talks to
Azure or to devstack; the credential is DefaultAzureCredential (managed identity
in Azure, devstack's identity endpoint locally).
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import TYPE_CHECKING, Any

from .config import RegistryRef, Settings, get_settings
from .errors import REGISTRY_ARM_ROLE, TABLES_ROLE, ConfigurationError, DockmasterError, from_azure

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@functools.cache
def credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    settings = get_settings()
    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if settings.client_id:
        options["managed_identity_client_id"] = settings.client_id
    if settings.authority_host:
        options["authority"] = settings.authority_host
    return DefaultAzureCredential(**options)


# Bounded retries for ARM and Table storage (Retry-After is still honoured): an invocation gives up
# within seconds and the platform redelivers, rather than sleeping through the SDK defaults (10
# retries up to 2 min apart) past Event Grid's 30 s delivery timeout.
RETRIES: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.4, "retry_backoff_max": 20}


def arm_options(settings: Settings) -> dict[str, Any]:
    from .transport import transport

    return {
        "base_url": settings.resource_manager_endpoint,
        "credential_scopes": [settings.arm_scope],
        "transport": transport(),
        **RETRIES,
    }


@functools.cache
def resource_client(subscription: str) -> Any:
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(credential(), subscription, **arm_options(get_settings()))


@functools.cache
def lock_client(subscription: str) -> Any:
    from azure.mgmt.resource.locks import ManagementLockClient

    return ManagementLockClient(credential(), subscription, **arm_options(get_settings()))


@functools.cache
def registry_management(subscription: str) -> Any:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    return ContainerRegistryManagementClient(credential(), subscription, **arm_options(get_settings()))


@functools.cache
def tasks_client(subscription: str) -> Any:
    from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient

    return ContainerRegistryTasksMgmtClient(credential(), subscription, **arm_options(get_settings()))


@functools.cache
def login_server(registry: RegistryRef) -> str:
    """The registry's login server as ARM reports it: the only host a credential is sent to."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        found = registry_management(registry.subscription).registries.get(registry.group, registry.name)
    except ResourceNotFoundError as exc:
        raise ConfigurationError(f"the configured registry {registry.resource_id} does not exist") from exc
    except AzureError as exc:  # throttled, unreachable, refused: the one table decides
        doing = f"reading registry {registry.name}"
        raise from_azure(exc, doing, service="Azure Resource Manager", role=REGISTRY_ARM_ROLE) from exc
    return str(found.login_server)


@functools.cache
def registry_data(registry: RegistryRef) -> Any:
    from .registry import RegistryClient

    return RegistryClient(login_server(registry), credential(), get_settings().arm_scope)


def ensure_table(table: Any, what: str) -> None:
    """Create a table on first use; an unreachable service is worth a retry, not a crash."""
    from azure.core.exceptions import AzureError, ResourceExistsError

    try:
        table.create_table()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise table_error(exc, f"creating the {what} table") from exc


def table_error(exc: BaseException, doing: str) -> DockmasterError:
    """A Table storage failure through the one table in shared/errors.py."""
    return from_azure(exc, doing, service="Table storage", role=TABLES_ROLE)


PUBLIC_CLOUD_ARM = "management.azure.com"


def _storage_endpoint(settings: Settings, service: str) -> str:
    """The `service` (blob, queue, table) endpoint of the identity-based AzureWebJobsStorage connection,
    resolved so that the app and the Functions host's own triggers reach the same account.

    Functions documents `__blobServiceUri`, `__queueServiceUri`, `__tableServiceUri`, or instead
    `__accountName`, valid only in public Azure ("Connecting to host storage with an identity"); the
    host derives `https://<account>.<service>.core.windows.net` from the account name and uses it before
    any service URI (StorageClientProvider.TryGetServiceUri). `__serviceUri` is an alias for one service
    only, and this connection serves queues and tables."""
    prefix = "AzureWebJobsStorage__"
    account = settings.storage_account_name.strip()
    from_account = f"https://{account}.{service}.core.windows.net".lower() if account else None
    configured = {
        "blob": settings.storage_blob_uri,
        "queue": settings.storage_queue_uri,
        "table": settings.storage_table_uri,
    }
    uri = configured[service].strip().rstrip("/")
    if uri:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ConfigurationError(f"{prefix}{service}ServiceUri must be an https:// URI, not '{uri}'")
        if from_account is not None and uri.lower() != from_account:
            raise ConfigurationError(
                f"{prefix}{service}ServiceUri is {uri}, but the Functions host uses {from_account}, which "
                f"it derives from {prefix}accountName before any service URI: remove {prefix}accountName"
            )
        return uri
    if from_account is not None:
        cloud = urllib.parse.urlsplit(settings.resource_manager_endpoint).hostname or ""
        if cloud.lower() != PUBLIC_CLOUD_ARM:
            raise ConfigurationError(
                f"{prefix}accountName is valid only in public Azure (the Functions host derives "
                f"*.core.windows.net from it), and Resource Manager is {settings.resource_manager_endpoint}: "
                f"set {prefix}blobServiceUri, {prefix}queueServiceUri and {prefix}tableServiceUri instead"
            )
        return from_account
    if settings.storage_service_uri.strip():
        raise ConfigurationError(
            f"{prefix}serviceUri names a single storage service, and this connection serves queues and "
            f"tables: set {prefix}queueServiceUri and {prefix}tableServiceUri"
        )
    raise ConfigurationError(
        f"set AzureWebJobsStorage (connection string), {prefix}{service}ServiceUri or {prefix}accountName"
    )


@functools.cache
def storage_table(name: str) -> Any:
    from azure.data.tables import TableClient

    from .transport import transport

    settings = get_settings()
    options = {"transport": transport(), **RETRIES}
    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, name, **options)
    return TableClient(_storage_endpoint(settings, "table"), name, credential=credential(), **options)


def table_client() -> Any:
    return storage_table(get_settings().verdicts_table)


@functools.cache
def queue_client() -> Any:
    from azure.storage.queue import (
        ExponentialRetry,
        QueueClient,
        TextBase64DecodePolicy,
        TextBase64EncodePolicy,
    )

    from .transport import transport

    settings = get_settings()
    options: dict[str, Any] = {
        # The Functions queue trigger expects base64 message bodies.
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
        # Bounded, as RETRIES: the storage default waits 15 s, then 18 s, then 24 s.
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
        "transport": transport(),
    }
    if settings.storage_connection:
        return QueueClient.from_connection_string(settings.storage_connection, settings.runs_queue, **options)
    return QueueClient(
        _storage_endpoint(settings, "queue"), settings.runs_queue, credential=credential(), **options
    )


@functools.cache
def event_publisher() -> Any | None:
    """The Event Grid topic client for Dockmaster's own events, or None when no topic is set."""
    settings = get_settings()
    if not settings.events_topic_endpoint:
        return None
    from azure.eventgrid import EventGridPublisherClient

    from .transport import transport

    return EventGridPublisherClient(settings.events_topic_endpoint, credential(), transport=transport())


def reset() -> None:
    """Forget every cached client (tests change settings between cases)."""
    for factory in (
        credential, resource_client, lock_client, registry_management, tasks_client, login_server,
        registry_data, storage_table, queue_client, event_publisher, get_settings,
    ):  # fmt: skip
        factory.cache_clear()
