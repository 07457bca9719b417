"""ARM's resource events for resource groups, on the system topics of their subscription.

A group's create, update (PUT or PATCH) raises `Microsoft.Resources.ResourceWriteSuccess`, its delete
`Microsoft.Resources.ResourceDeleteSuccess` once done, on every system topic of type
Microsoft.Resources.Subscriptions whose source is the group's subscription, in the Event Grid schema
(learn.microsoft.com/azure/event-grid/event-schema-subscriptions: the sample events and the data table).
The claims are the caller's token's, as ARM puts them in the event: a flat map of strings, the identity
ones under their long names; `httpRequest` only on an update or a delete, as the data table says.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..callers import ArmCaller, current
from ..timeutil import azure_time
from .model import EVENTGRID_SCHEMA, KIND_SYSTEM_TOPIC, EventGridStore
from .notifications import Publish
from .topics import SUBSCRIPTION_TOPIC_TYPE

log = logging.getLogger("devstack.eventgrid")
WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
GROUP_OPERATION = "Microsoft.Resources/subscriptions/resourceGroups/{verb}"
# Token claims under the names ARM's events give them; the others keep their own.
CLAIM_NAMES = {
    "sub": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "upn": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "client_id": "appid",
}


def event_claims(token_claims: dict[str, Any]) -> dict[str, str]:
    claims = {
        CLAIM_NAMES.get(name, name): str(value) for name, value in token_claims.items() if value is not None
    }
    claims.setdefault("ver", "1.0")
    return claims


def group_event(
    event_type: str, group_id: str, verb: str, caller: ArmCaller, tenant: str, updated: bool
) -> dict[str, Any]:
    subscription = group_id.split("/")[2]
    operation = GROUP_OPERATION.format(verb=verb)
    data: dict[str, Any] = {
        "authorization": {"scope": group_id, "action": operation},
        "claims": event_claims(caller.claims),
        "correlationId": caller.correlation_id,
        "resourceProvider": "Microsoft.Resources",
        "resourceUri": group_id,
        "operationName": operation,
        "status": "Succeeded",
        "subscriptionId": subscription,
        "tenantId": tenant,
    }
    if updated:
        data["httpRequest"] = {
            "clientRequestId": caller.client_request_id,
            "clientIpAddress": caller.client_ip,
            "method": caller.method,
            "url": caller.url,
        }
    return {
        "subject": group_id,
        "eventType": event_type,
        "eventTime": azure_time(),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": f"/subscriptions/{subscription}",
    }


class ResourceEvents:
    def __init__(self, records: EventGridStore, publish: Publish, tenant_id: str) -> None:
        self.records = records
        self.publish = publish
        self.tenant_id = tenant_id

    def group_written(self, group_id: str, created: bool) -> int:
        return self._raise(
            group_event(WRITE_SUCCESS, group_id, "write", current(), self.tenant_id, not created)
        )

    def group_deleted(self, group_id: str) -> int:
        return self._raise(group_event(DELETE_SUCCESS, group_id, "delete", current(), self.tenant_id, True))

    def _raise(self, event: dict[str, Any]) -> int:
        source = event["topic"].lower()
        queued = 0
        for topic in self.records.topics(KIND_SYSTEM_TOPIC).list():
            properties = topic.properties
            if (
                str(properties.get("topicType", "")).lower() == SUBSCRIPTION_TOPIC_TYPE.lower()
                and topic.source.lower() == source
                and properties.get("provisioningState") == "Succeeded"
            ):
                queued += self.publish(topic.id, [event], EVENTGRID_SCHEMA)
        log.info(
            "ARM: %s %s; %d delivery(ies) queued",
            event["eventType"].rsplit(".", 1)[-1],
            event["subject"],
            queued,
        )
        return queued
