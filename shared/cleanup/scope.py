"""What cleanup covers: its subscriptions and its rules, from the settings narrowed by a caller's filters."""

from __future__ import annotations

import datetime as dt

from ..config import Settings
from ..errors import ConfigurationError, Conflict, InvalidInput
from .planner import Rules, parse_lab_tag, split_list
from .records import Filters


def ensure_enabled(settings: Settings) -> None:
    if not settings.cleanup_enabled:
        raise Conflict("cleanup is turned off (CLEANUP_ENABLED=false)")


def subscriptions_of(settings: Settings, filters: Filters | None = None) -> tuple[str, ...]:
    configured = split_list(settings.cleanup_subscriptions) or tuple(split_list(settings.subscription_id))
    if not configured:
        raise ConfigurationError("set CLEANUP_SUBSCRIPTIONS or AZURE_SUBSCRIPTION_ID")
    if filters is None or not filters.subscriptions:
        return configured
    known = {s.lower(): s for s in configured}
    others = [s for s in filters.subscriptions if s.lower() not in known]
    if others:
        raise InvalidInput(f"subscriptions not configured for cleanup: {', '.join(others)}")
    return tuple(dict.fromkeys(known[s.lower()] for s in filters.subscriptions))


def rules_of(settings: Settings, filters: Filters | None = None) -> Rules:
    filters = filters or Filters()
    try:
        lab_tag = parse_lab_tag(settings.cleanup_lab_tag)
    except ValueError as exc:
        raise ConfigurationError(f"CLEANUP_LAB_TAG: {exc}") from exc
    try:
        only_tag = parse_lab_tag(filters.lab_tag) if filters.lab_tag else None
    except ValueError as exc:
        raise InvalidInput(f"filters.labTag: {exc}") from exc
    cap = settings.cleanup_max_deletions
    if filters.max_deletions is not None:
        cap = min(cap, filters.max_deletions)
    older = filters.older_than_hours
    try:
        return Rules(
            lab_tag=lab_tag,
            name_patterns=split_list(settings.cleanup_name_patterns),
            expiry_tag=settings.cleanup_expiry_tag.strip() or "expiresOn",
            creation_tags=split_list(settings.cleanup_creation_tags),
            protection_tags=split_list(settings.cleanup_protection_tag),
            protected_groups=split_list(settings.cleanup_protected_groups),
            app_group=settings.app_resource_group.strip(),
            registry_groups=tuple(
                (ref.subscription, ref.group, ref.name) for ref in settings.registries.values()
            ),
            ttl=dt.timedelta(hours=settings.cleanup_ttl_hours),
            grace=dt.timedelta(hours=settings.cleanup_grace_hours),
            warning=dt.timedelta(hours=settings.cleanup_warning_hours),
            max_deletions=cap,
            only_patterns=filters.name_patterns,
            only_tag=only_tag,
            older_than=dt.timedelta(hours=older) if older is not None else None,
        )
    except ValueError as exc:
        raise ConfigurationError(f"cleanup settings: {exc} (CLEANUP_LAB_TAG, CLEANUP_NAME_PATTERNS)") from exc
