"""Event Grid's dead letters on devstack: where a subscription sends them, and reading them back."""

from __future__ import annotations

import json
import time
from typing import Any

from azure.storage.blob import BlobServiceClient

from tests.support.stack import Devstack


def dead_letters(devstack: Devstack, container: str, timeout: float = 20) -> list[tuple[str, Any]]:
    service = BlobServiceClient.from_connection_string(str(devstack.endpoints["storageConnectionString"]))
    deadline = time.monotonic() + timeout
    client = service.get_container_client(container)
    while time.monotonic() < deadline:
        if client.exists():
            blobs = list(client.list_blobs())
            if blobs:
                return [(b.name, json.loads(client.download_blob(b.name).readall())) for b in blobs]
        time.sleep(0.1)
    raise AssertionError(f"nothing dead-lettered to {container} in {timeout}s")


def dead_letter_to(container: str) -> dict[str, Any]:
    account = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/any"
        "/providers/Microsoft.Storage/storageAccounts/deadletters"
    )
    return {"endpoint_type": "StorageBlob", "resource_id": account, "blob_container_name": container}
