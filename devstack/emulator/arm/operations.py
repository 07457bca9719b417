"""ARM's asynchronous operations: a record per operation that its status URL reports until it ends."""

from __future__ import annotations

import base64
import time
import uuid
from typing import NotRequired, TypedDict, cast

from ..errors import ArmError
from ..store import Store
from ..timeutil import now_iso
from .records import KIND_OPERATION, Operation, OperationError, subscription_key


class OperationStatus(TypedDict):
    """The body of an `Azure-AsyncOperation` status URL."""

    id: str
    name: NotRequired[str]
    status: str
    startTime: str
    endTime: NotRequired[str]
    error: NotRequired[OperationError]


def polling_headers(status: OperationStatus) -> dict[str, str]:
    # Without Retry-After the SDK's poller waits its default 30 s between polls.
    return {"Retry-After": "1"} if status["status"] == "InProgress" else {}


def new_operation_id() -> str:
    return base64.urlsafe_b64encode(f"{uuid.uuid4()}:{time.time_ns()}".encode()).decode().rstrip("=")


class Operations:
    def __init__(self, store: Store, arm_endpoint: str) -> None:
        self._store = store
        self._arm_endpoint = arm_endpoint

    def start(self, sub: str, kind: str, target: str) -> str:
        operation = new_operation_id()
        record = Operation(id=operation, kind=kind, target=target, status="InProgress", startTime=now_iso())
        self._store.put(KIND_OPERATION, operation, subscription_key(sub), record)
        return operation

    def finished(self, sub: str, kind: str, target: str) -> str:
        """An operation that is over as it starts (Event Grid's topics are ready once stored)."""
        operation = self.start(sub, kind, target)
        self.finish(operation, "Succeeded")
        return operation

    def finish(self, operation: str, status: str, error: OperationError | None = None) -> None:
        record = self.get(operation)
        if record:
            record["status"] = status
            record["endTime"] = now_iso()
            if error:
                record["error"] = error
            self._store.put(KIND_OPERATION, operation, "/", record)

    def in_progress(self, kind: str, target: str) -> str | None:
        """The operation of this kind on this resource that has not ended, if any."""
        for record in cast(list[Operation], self._store.list(KIND_OPERATION)):
            if (
                record["kind"] == kind
                and record["target"].lower() == target.lower()
                and record["status"] == "InProgress"
            ):
                return record["id"]
        return None

    def get(self, operation: str) -> Operation | None:
        return cast(Operation | None, self._store.get(KIND_OPERATION, operation))

    def require(self, operation: str) -> Operation:
        record = self.get(operation)
        if not record:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation}' was not found.")
        return record

    def status(self, operation: str, shown_id: str, name: str | None = None) -> OperationStatus:
        """What a status URL answers: `shown_id` as its `id` (each provider has its own), `name` if any."""
        record = self.require(operation)
        shown: dict[str, object] = {"id": shown_id}  # keys in the order Azure sends them
        if name is not None:
            shown["name"] = name
        shown.update(status=record["status"], startTime=record["startTime"])
        if record.get("endTime"):
            shown["endTime"] = record["endTime"]
        if record.get("error"):
            shown["error"] = record["error"]
        return cast(OperationStatus, shown)

    def location_headers(self, sub: str, operation: str, version: str) -> dict[str, str]:
        """Where a client polls an operation (`Location`, as a resource group's delete answers)."""
        path = f"/subscriptions/{sub}/operationresults/{operation}"
        return {"Location": f"{self._arm_endpoint}{path}?api-version={version}", "Retry-After": "1"}
