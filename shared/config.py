"""Every setting Dockmaster reads, in one typed object. Names match local.settings.sample.json."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

REGISTRY_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/\x00-\x1f\x7f]+)/resourceGroups/(?P<group>[^/\x00-\x1f\x7f]+)"
    r"/providers/Microsoft\.ContainerRegistry/registries/(?P<name>[A-Za-z0-9]{5,50})",
    re.IGNORECASE | re.ASCII,  # ASCII: under IGNORECASE alone, [a-z] also matches "ſ" and the Kelvin sign
)


@dataclass(frozen=True)
class RegistryRef:
    """A registry Dockmaster is configured to serve, named by its ARM id."""

    resource_id: str
    subscription: str
    group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> RegistryRef:
        found = REGISTRY_ID.fullmatch(resource_id.strip())
        if not found:
            raise ConfigurationError(
                f"'{resource_id}' is not a container registry resource id "
                "(/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerRegistry/registries/NAME)"
            )
        return cls(resource_id.strip(), found["subscription"], found["group"], found["name"])

    @property
    def key(self) -> str:
        return self.name.lower()


LOCAL_HTTP = re.compile(r"http://(?:localhost|127\.0\.0\.1)(?::[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    subscription_id: str = Field("", alias="AZURE_SUBSCRIPTION_ID")
    tenant_id: str = Field("", alias="AZURE_TENANT_ID")
    client_id: str = Field("", alias="AZURE_CLIENT_ID")
    resource_manager_endpoint: str = Field(
        "https://management.azure.com", alias="AZURE_RESOURCE_MANAGER_ENDPOINT"
    )
    authority_host: str = Field("", alias="AZURE_AUTHORITY_HOST")
    storage_connection: str = Field("", alias="AzureWebJobsStorage")
    storage_account_name: str = Field("", alias="AzureWebJobsStorage__accountName")
    # The identity-based connection's service URIs (Functions: "Connecting to host storage with an
    # identity"); the host's triggers read the same settings.
    storage_blob_uri: str = Field("", alias="AzureWebJobsStorage__blobServiceUri")
    storage_queue_uri: str = Field("", alias="AzureWebJobsStorage__queueServiceUri")
    storage_table_uri: str = Field("", alias="AzureWebJobsStorage__tableServiceUri")
    storage_service_uri: str = Field("", alias="AzureWebJobsStorage__serviceUri")

    registries_setting: str = Field("", alias="DOCKMASTER_REGISTRIES")
    policy_path: str = Field("policy.yaml", alias="DOCKMASTER_POLICY_PATH")
    verdicts_table: str = Field("verdicts", alias="DOCKMASTER_VERDICTS_TABLE")
    runs_queue: str = Field("verification-runs", alias="DOCKMASTER_RUNS_QUEUE")
    events_topic_endpoint: str = Field("", alias="DOCKMASTER_EVENTS_TOPIC_ENDPOINT")
    attach_verdicts: bool = Field(True, alias="DOCKMASTER_ATTACH_VERDICTS")
    app_resource_group: str = Field("", alias="DOCKMASTER_APP_RESOURCE_GROUP")
    api_roles: bool = Field(False, alias="DOCKMASTER_API_ROLES")
    # Hosts a build's sourceUrl may name (comma- or space-separated); empty: any host whose addresses are
    # all public. Off in Azure; devstack's tests list a host that resolves nowhere.
    build_source_hosts_setting: str = Field("", alias="DOCKMASTER_BUILD_SOURCE_HOSTS")

    cleanup_enabled: bool = Field(False, alias="CLEANUP_ENABLED")
    cleanup_schedule: str = Field("0 0 * * * *", alias="CLEANUP_SCHEDULE")
    cleanup_dry_run: bool = Field(True, alias="CLEANUP_DRY_RUN")
    cleanup_max_deletions: int = Field(10, alias="CLEANUP_MAX_DELETIONS", ge=0)
    cleanup_lab_tag: str = Field("purpose=lab", alias="CLEANUP_LAB_TAG")
    cleanup_name_patterns: str = Field("", alias="CLEANUP_NAME_PATTERNS")
    cleanup_protected_groups: str = Field("", alias="CLEANUP_PROTECTED_GROUPS")
    cleanup_subscriptions: str = Field("", alias="CLEANUP_SUBSCRIPTIONS")
    cleanup_ttl_hours: float = Field(72, alias="CLEANUP_TTL_HOURS", gt=0)
    cleanup_grace_hours: float = Field(24, alias="CLEANUP_GRACE_HOURS", gt=0)
    cleanup_warning_hours: float = Field(12, alias="CLEANUP_WARNING_HOURS", ge=0)
    cleanup_max_extension_hours: float = Field(168, alias="CLEANUP_MAX_EXTENSION_HOURS", gt=0)
    cleanup_expiry_tag: str = Field("expiresOn", alias="CLEANUP_EXPIRY_TAG")
    cleanup_creation_tags: str = Field("createdAt,creationTimestamp", alias="CLEANUP_CREATION_TAGS")
    cleanup_protection_tag: str = Field("do-not-delete", alias="CLEANUP_PROTECTION_TAG")
    # The heads-up before a lab is deleted (shared/cleanup/notify.py): incoming-webhook URLs are secrets
    # (Key Vault references in Azure; never logged); empty turns a channel off.
    cleanup_teams_webhook_url: SecretStr = Field(SecretStr(""), alias="CLEANUP_TEAMS_WEBHOOK_URL")
    cleanup_slack_webhook_url: SecretStr = Field(SecretStr(""), alias="CLEANUP_SLACK_WEBHOOK_URL")
    cleanup_owner_tag: str = Field("owner", alias="CLEANUP_OWNER_TAG")  # else the lab's createdBy tag
    # The one-click extend link (shared/cleanup/links.py): HMAC key (base64, >= 32 bytes), the hours it adds.
    cleanup_link_key: SecretStr = Field(SecretStr(""), alias="CLEANUP_LINK_KEY")
    cleanup_link_hours: float = Field(24, alias="CLEANUP_LINK_HOURS", gt=0)
    # The app's public base URL, for links in messages (in Azure https://{WEBSITE_HOSTNAME}); never a
    # request's Host header.
    public_url: str = Field("", alias="DOCKMASTER_PUBLIC_URL")

    # Image retention (rules in the policy file's `retention` section): off, and dry, by default.
    retention_enabled: bool = Field(False, alias="RETENTION_ENABLED")
    retention_dry_run: bool = Field(True, alias="RETENTION_DRY_RUN")
    retention_schedule: str = Field("0 30 2 * * *", alias="RETENTION_SCHEDULE")  # daily, 02:30 UTC
    # Per repository and run: at most this many deletions, and at most this share of its manifests.
    retention_max_deletions: int = Field(100, alias="RETENTION_MAX_DELETIONS", ge=0)
    retention_max_deletion_percent: float = Field(50, alias="RETENTION_MAX_DELETION_PERCENT", ge=0, le=100)
    retention_min_age_hours: float = Field(24, alias="RETENTION_MIN_AGE_HOURS", ge=0)

    @field_validator("resource_manager_endpoint")
    @classmethod
    def _https_only(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("AZURE_RESOURCE_MANAGER_ENDPOINT must be https://")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_https(cls, value: str) -> str:
        # http only for a host on this machine (devstack's local Functions host); Azure's is https.
        if value and not (value.startswith("https://") or LOCAL_HTTP.fullmatch(value.rstrip("/"))):
            raise ValueError("DOCKMASTER_PUBLIC_URL must be https:// (http:// only for localhost)")
        return value.rstrip("/")

    @field_validator("cleanup_teams_webhook_url", "cleanup_slack_webhook_url")
    @classmethod
    def _webhook_https(cls, value: SecretStr) -> SecretStr:
        # The message says which setting, never the URL: it holds the webhook's secret.
        if value.get_secret_value() and not value.get_secret_value().startswith("https://"):
            raise ValueError("a cleanup webhook URL must be https://")
        return value

    @property
    def registries(self) -> dict[str, RegistryRef]:
        """Configured registries by lowercase name (ARM ids, comma- or whitespace-separated)."""
        refs = [RegistryRef.parse(item) for item in re.split(r"[,\s]+", self.registries_setting) if item]
        return {ref.key: ref for ref in refs}

    @property
    def build_source_hosts(self) -> tuple[str, ...]:
        return tuple(h.rstrip(".").lower() for h in re.split(r"[,\s]+", self.build_source_hosts_setting) if h)

    @property
    def arm_scope(self) -> str:
        return f"{self.resource_manager_endpoint}/.default"


@functools.cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
