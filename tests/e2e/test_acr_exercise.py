"""The AZ-204 ACR exercise, offline, through the Azure SDK clients only.

1. resource group, 2. Basic registry, 3. `az acr build`, 4. list repositories and
tags, 5. `az acr run --cmd '$Registry/sample/hello-world:v1' /dev/null` and its
log, 6. delete the group without waiting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared.tasks import docker_build_request, encoded_cmd_request, pack_context
from tests.support.stack import unique
from tests.support.tasks import wait_for_run

GROUP = "az204-acr-rg"


def test_acr_exercise(
    devstack: Any,
    credential: Any,
    resource_client: Any,
    acr_client: Any,
    tasks_client: Any,
    hello_context: Path,
) -> None:
    started = time.monotonic()
    # 1. The resource group, with tags.
    group = resource_client.resource_groups.create_or_update(
        GROUP, {"location": "eastus", "tags": {"purpose": "lab", "course": "az-204"}}
    )
    assert group.tags["purpose"] == "lab"

    # 2. A Basic registry.
    name = unique("az204acr")
    registry = acr_client.registries.begin_create(
        GROUP, name, {"location": "eastus", "sku": {"name": "Basic"}}
    ).result()
    assert registry.provisioning_state == "Succeeded"

    # 3. az acr build --image sample/hello-world:v1 .
    upload = tasks_client.registries.get_build_source_upload_url(GROUP, name)
    BlobClient.from_blob_url(upload.upload_url).upload_blob(pack_context(hello_context))
    build = tasks_client.registries.schedule_run(
        GROUP, name, docker_build_request(upload.relative_path, ["sample/hello-world:v1"], timeout=600)
    )
    built = wait_for_run(tasks_client, registry, build.run_id)
    assert built.status == "Succeeded"
    (image,) = built.output_images
    assert (image.repository, image.tag) == ("sample/hello-world", "v1")

    # 4. az acr repository list / show-tags, through the data plane.
    data = ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)
    assert list(data.list_repository_names()) == ["sample/hello-world"]
    tags = list(data.list_tag_properties("sample/hello-world"))
    assert [(t.name, t.digest) for t in tags] == [("v1", image.digest)]

    # 5. az acr run --cmd '$Registry/sample/hello-world:v1' /dev/null, then its log.
    run = tasks_client.registries.schedule_run(
        GROUP, name, encoded_cmd_request("$Registry/sample/hello-world:v1")
    )
    finished = wait_for_run(tasks_client, registry, run.run_id)
    assert finished.status == "Succeeded"
    log_link = tasks_client.runs.get_log_sas_url(GROUP, name, run.run_id).log_link
    log_blob = BlobClient.from_blob_url(log_link)
    assert log_blob.get_blob_properties().metadata["Complete"] == "succeeded"
    assert "Hello from Dockmaster" in log_blob.download_blob().readall().decode()

    # 6. az group delete --no-wait: the group goes away on its own.
    resource_client.resource_groups.begin_delete(GROUP, polling=False)
    deadline = time.monotonic() + 30
    while resource_client.resource_groups.check_existence(GROUP):
        assert time.monotonic() < deadline, "the group was not deleted in time"
        time.sleep(0.2)
    with pytest.raises(ResourceNotFoundError):
        acr_client.registries.get(GROUP, name)
    assert name not in {r.name for r in acr_client.registries.list()}
    assert not any((devstack.home / "registry/docker/registry/v2/repositories").glob(name.lower()))
    print(f"\nACR exercise end to end: {time.monotonic() - started:.2f}s")
