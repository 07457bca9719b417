"""ARM's asynchronous operations: a record per operation that its status URL reports until it ends."""

from __future__ import annotations

import base64
import time
import uuid
from typing import cast

from .records import KIND_OPERATION, Operation, OperationError, subscription_key
from .store import Store
from .timeutil import now_iso


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

    def finish(self, operation: str, status: str, error: OperationError | None = None) -> None:
        record = self.get(operation)
        if record:
            record["status"] = status
            record["endTime"] = now_iso()
            if error:
                record["error"] = error
            self._store.put(KIND_OPERATION, operation, "/", record)

    def get(self, operation: str) -> Operation | None:
        return cast(Operation | None, self._store.get(KIND_OPERATION, operation))

    def location_headers(self, sub: str, operation: str, version: str) -> dict[str, str]:
        """Where a client polls an operation (`Location`, as a resource group's delete answers)."""
        path = f"/subscriptions/{sub}/operationresults/{operation}"
        return {"Location": f"{self._arm_endpoint}{path}?api-version={version}", "Retry-After": "1"}
