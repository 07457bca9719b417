"""docker-registry notifications turned into ACR's Event Grid events.

docker-registry (distribution 2.8) POSTs `{"events": [...]}` envelopes to a plain-HTTP loopback
endpoint of the emulator for every blob and manifest push or delete. A manifest push with a tag
becomes one `Microsoft.ContainerRegistry.ImagePushed`, a manifest delete one `ImageDeleted`, on
the system topic whose source is the registry that owns the namespace (`{registry-lowercase}/
{repo}`). Blob pushes, pulls, untagged pushes and tag-only deletes make no event, as on ACR.
Notifications are retried by docker-registry, so they are deduplicated by their event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..arm.records import KIND_REGISTRY, backend_namespace
from ..store import Store
from ..timeutil import azure_time
from .model import EVENTGRID_SCHEMA, KIND_MANIFEST, KIND_SEEN, KIND_SYSTEM_TOPIC

log = logging.getLogger("devstack.eventgrid")
PATH = "/_devstack/registry-notifications"
IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
IMAGE_DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
# Event Grid's fan-out (`EventGridEngine.publish`): (topic id, events, input schema) -> deliveries queued.
Publish = Callable[[str, list[dict[str, Any]], str], int]
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)


def notification_token(signing_key: str) -> str:
    """The bearer token docker-registry sends with its notifications (derived, never stored)."""
    return hmac.new(signing_key.encode(), b"devstack registry notifications", hashlib.sha256).hexdigest()


def is_manifest(target: dict[str, Any]) -> bool:
    return "/manifests/" in str(target.get("url") or "") or target.get("mediaType") in MANIFEST_TYPES


def split_repository(backend_repository: str) -> tuple[str, str] | None:
    namespace, _, repository = backend_repository.partition("/")
    return (namespace, repository) if namespace and repository else None


def acr_event(
    notification: dict[str, Any], registry: dict[str, Any], repository: str, media_type: str | None
) -> dict[str, Any] | None:
    """One docker-registry event as ACR's Event Grid event, or None when ACR would send none."""
    action = notification.get("action")
    target = notification.get("target") or {}
    if action == "push":
        if not is_manifest(target) or not target.get("tag"):
            return None
        event_type, subject = IMAGE_PUSHED, f"{repository}:{target['tag']}"
        acr_target: dict[str, Any] = {
            "mediaType": target.get("mediaType"),
            "size": target.get("size"),
            "digest": target.get("digest"),
            "length": target.get("length"),
            "repository": repository,
            "tag": target["tag"],
        }
    elif action == "delete":
        if not target.get("digest") or target.get("tag"):
            return None  # tag-only deletes (and repository deletes) raise no ImageDeleted on ACR
        event_type, subject = IMAGE_DELETED, repository
        acr_target = {"mediaType": media_type, "digest": target["digest"], "repository": repository}
    else:
        return None
    request = notification.get("request") or {}
    actor = notification.get("actor") or {}
    data: dict[str, Any] = {
        "id": notification.get("id"),
        "timestamp": notification.get("timestamp"),
        "action": action,
        "location": registry.get("location"),
        "target": {k: v for k, v in acr_target.items() if v is not None},
        "request": {
            "id": request.get("id"),
            "addr": request.get("addr"),
            "host": registry["properties"].get("loginServer") or request.get("host"),
            "method": request.get("method"),
            "useragent": request.get("useragent"),
        },
        "actor": {"name": actor["name"]} if actor.get("name") else {},
        "source": {
            k: v for k, v in (notification.get("source") or {}).items() if k in ("addr", "instanceID")
        },
    }
    data["request"] = {k: v for k, v in data["request"].items() if v is not None}
    return {
        "id": str(uuid.uuid4()),
        "topic": registry["id"],
        "subject": subject,
        "eventType": event_type,
        "eventTime": azure_time(),
        "data": {k: v for k, v in data.items() if v is not None},
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }


class RegistryNotifications:
    def __init__(self, store: Store, publish: Publish, registry_storage: Path) -> None:
        self.store = store
        self.publish = publish
        self.registry_storage = registry_storage  # docker-registry's filesystem root

    def _registry(self, namespace: str) -> dict[str, Any] | None:
        for registry in self.store.list(KIND_REGISTRY):
            if backend_namespace(registry) == namespace.lower():
                return registry
        return None

    def _manifest_key(self, registry: dict[str, Any], repository: str, digest: str) -> str:
        return f"egmanifest:{registry['id']}/{repository}@{digest}"

    def _stored_media_type(self, digest: str) -> str | None:
        """A deleted manifest's media type from its blob, which stays until garbage collection."""
        algorithm, _, hexdigest = digest.partition(":")
        if not hexdigest or not hexdigest.isalnum():
            return None
        path = (
            self.registry_storage
            / "docker/registry/v2/blobs"
            / algorithm
            / hexdigest[:2]
            / hexdigest
            / "data"
        )
        try:
            value = json.loads(path.read_bytes()).get("mediaType")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def handle(self, notification: dict[str, Any]) -> int:
        """Turn one docker-registry event into ACR events; returns the deliveries queued."""
        store = self.store
        event_id = str(notification.get("id") or "")
        if event_id and store.get(KIND_SEEN, f"egseen:{event_id}"):
            log.info("registry notification %s seen before; ignored", event_id)
            return 0
        target = notification.get("target") or {}
        parts = split_repository(str(target.get("repository") or ""))
        registry = self._registry(parts[0]) if parts else None
        queued = 0
        if parts and registry is not None:
            repository = parts[1]
            digest = str(target.get("digest") or "")
            media_type = None
            if notification.get("action") == "push" and is_manifest(target) and digest:
                key = self._manifest_key(registry, repository, digest)
                store.put(
                    KIND_MANIFEST, key, registry["id"], {"key": key, "mediaType": target.get("mediaType")}
                )
            elif notification.get("action") == "delete" and digest:
                known = store.get(KIND_MANIFEST, self._manifest_key(registry, repository, digest))
                media_type = (known or {}).get("mediaType") or self._stored_media_type(digest)
            event = acr_event(notification, registry, repository, media_type)
            if event is not None:
                topics = [
                    t
                    for t in store.list(KIND_SYSTEM_TOPIC)
                    if str(t["properties"].get("source", "")).lower() == registry["id"].lower()
                    and t["properties"]["provisioningState"] == "Succeeded"
                ]
                for topic in topics:
                    queued += self.publish(topic["id"], [event], EVENTGRID_SCHEMA)
                log.info(
                    "registry %s: %s %s (%s); %s",
                    registry["name"],
                    event["eventType"].rsplit(".", 1)[-1],
                    event["subject"],
                    event["data"]["target"].get("digest"),
                    f"{queued} delivery(ies) queued" if topics else "no system topic, no delivery",
                )
        if event_id:
            store.put(KIND_SEEN, f"egseen:{event_id}", "registry-notifications", {"seen": azure_time()})
        return queued


def routes(notifications: RegistryNotifications, signing_key: str) -> list[BaseRoute]:
    """The endpoint docker-registry's `notifications` section points at (identity listener, HTTP)."""
    expected = f"Bearer {notification_token(signing_key)}"

    async def receive(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected.encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            envelope = json.loads(await request.body())
            events = envelope["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"not a notification envelope: {exc}"}, status_code=400)
        for notification in events:
            if isinstance(notification, dict):
                notifications.handle(notification)
        return Response(status_code=200)

    return [Route(PATH, receive, methods=["POST"])]
