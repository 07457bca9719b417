"""The app on devstack: a registry, the local Functions host running function_app, and the
registry's ImagePushed/ImageDeleted events and the subscription's resource-group writes wired to it
through Event Grid, as in Azure.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .host.keys import HostKeys
from .stack import HOST, REPO_ROOT, StackError, free_port, spawn_service, wait_until

DEV_GROUP = "dockmaster-dev"
DEV_REGISTRY = "dockmasterdev"
HOST_PORT = 7071
EVENT_TYPES = ["Microsoft.ContainerRegistry.ImagePushed", "Microsoft.ContainerRegistry.ImageDeleted"]
RESOURCE_EVENTS_TOPIC = "dockmaster-resource-events"
GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"


def sdk_environment(endpoints: dict[str, Any]) -> None:
    """Point this process's Azure SDK clients at devstack (managed identity, CA bundle)."""
    os.environ["IDENTITY_ENDPOINT"] = str(endpoints["identityEndpoint"])
    os.environ["IDENTITY_HEADER"] = str(endpoints["identityHeader"])
    os.environ["REQUESTS_CA_BUNDLE"] = str(endpoints["caBundle"])


def arm_clients(endpoints: dict[str, Any]) -> dict[str, Any]:
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient
    from azure.mgmt.eventgrid import EventGridManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    sdk_environment(endpoints)
    arm = str(endpoints["armEndpoint"])
    subscription = str(endpoints["subscriptionId"])
    kwargs: dict[str, Any] = {"base_url": arm, "credential_scopes": [f"{arm}/.default"]}
    credential = ManagedIdentityCredential()
    return {
        "credential": credential,
        "groups": ResourceManagementClient(credential, subscription, **kwargs),
        "registries": ContainerRegistryManagementClient(credential, subscription, **kwargs),
        "eventgrid": EventGridManagementClient(credential, subscription, **kwargs),
    }


def ensure_registry(clients: dict[str, Any], group: str, name: str) -> Any:
    clients["groups"].resource_groups.create_or_update(
        group, {"location": "westeurope", "tags": {"app": "dockmaster"}}
    )
    return (
        clients["registries"]
        .registries.begin_create(
            group,
            name,
            {"location": "westeurope", "sku": {"name": "Basic"}, "properties": {"adminUserEnabled": True}},
        )
        .result()
    )


def app_settings(endpoints: dict[str, Any], registry_ids: list[str], **overrides: str) -> dict[str, str]:
    """The settings the app reads: local.settings.sample.json's, with devstack's endpoints and ids."""
    sample = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = {
        **sample,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": str(endpoints["storageConnectionString"]),
        "AZURE_SUBSCRIPTION_ID": str(endpoints["subscriptionId"]),
        "AZURE_TENANT_ID": str(endpoints["tenantId"]),
        "AZURE_RESOURCE_MANAGER_ENDPOINT": str(endpoints["armEndpoint"]),
        "AZURE_AUTHORITY_HOST": "",  # managed identity needs no authority; devstack emulates none
        "IDENTITY_ENDPOINT": str(endpoints["identityEndpoint"]),
        "IDENTITY_HEADER": str(endpoints["identityHeader"]),
        "REQUESTS_CA_BUNDLE": str(endpoints["caBundle"]),
        "SSL_CERT_FILE": str(endpoints["caBundle"]),
        "DOCKMASTER_REGISTRIES": ",".join(registry_ids),
        "DOCKMASTER_POLICY_PATH": str(REPO_ROOT / "policy.yaml"),
        "DOCKMASTER_VERDICTS_TABLE": "verdicts",
        "DOCKMASTER_RUNS_QUEUE": "verification-runs",
        "DOCKMASTER_EVENTS_TOPIC_ENDPOINT": "",
        "DOCKMASTER_APP_RESOURCE_GROUP": DEV_GROUP,
    }
    settings.update(overrides)
    return settings


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def start_host(
    home: Path,
    settings: dict[str, str],
    port: int | None = None,
    app: str = "function_app",
    name: str = "host",
) -> str:
    """Run the app on the local Functions host as a stack service; returns its base URL."""
    port = port or (HOST_PORT if _port_free(HOST_PORT) else free_port())
    state = home / name
    HostKeys.load_or_create(state)
    args = [
        sys.executable,
        "-m",
        "devstack.host",
        "--app",
        app,
        "--port",
        str(port),
        "--state-dir",
        str(state),
    ]
    args += ["--script-root", str(REPO_ROOT), "--host-json", str(REPO_ROOT / "host.json")]
    pid = spawn_service(home, name, args, {**os.environ, **settings})

    def listening() -> bool:
        return not _port_free(port)

    wait_until(name, listening, pid, home)
    return f"http://{HOST}:{port}"


def wire_events(
    clients: dict[str, Any], registry: Any, webhook: str, name: str = "on-image-event", **properties: Any
) -> Any:
    """System topic on the registry and a subscription to the function, as infra/subscription.bicep does;
    `properties` override the subscription's (a dead-letter destination, another retry policy)."""
    group = registry.id.split("/")[4]
    topic_name = f"{registry.name}-events"
    eventgrid = clients["eventgrid"]
    eventgrid.system_topics.begin_create_or_update(
        group,
        topic_name,
        {
            "location": registry.location,
            "source": registry.id,
            "topic_type": "Microsoft.ContainerRegistry.Registries",
        },
    ).result()
    return eventgrid.system_topic_event_subscriptions.begin_create_or_update(
        group,
        topic_name,
        name,
        {
            "destination": {"endpoint_type": "WebHook", "endpoint_url": webhook},
            "filter": {"included_event_types": EVENT_TYPES},
            "event_delivery_schema": "EventGridSchema",
            "retry_policy": {"max_delivery_attempts": 30, "event_time_to_live_in_minutes": 1440},
            **properties,
        },
    ).result()


def wire_resource_events(
    clients: dict[str, Any], group: str, subscription: str, webhook: str, name: str = "on-resource-event"
) -> Any:
    """The subscription's resource events (a system topic of type Microsoft.Resources.Subscriptions) and a
    subscription to the function for resource-group writes, as infra/modules/resource-events.bicep does."""
    from azure.mgmt.eventgrid.models import StringInAdvancedFilter

    eventgrid = clients["eventgrid"]
    eventgrid.system_topics.begin_create_or_update(
        group,
        RESOURCE_EVENTS_TOPIC,
        {
            "location": "global",
            "source": f"/subscriptions/{subscription}",
            "topic_type": "Microsoft.Resources.Subscriptions",
        },
    ).result()
    return eventgrid.system_topic_event_subscriptions.begin_create_or_update(
        group,
        RESOURCE_EVENTS_TOPIC,
        name,
        {
            "destination": {"endpoint_type": "WebHook", "endpoint_url": webhook},
            "filter": {
                "included_event_types": ["Microsoft.Resources.ResourceWriteSuccess"],
                "advanced_filters": [StringInAdvancedFilter(key="data.operationName", values=[GROUP_WRITE])],
            },
            "event_delivery_schema": "EventGridSchema",
            "retry_policy": {"max_delivery_attempts": 30, "event_time_to_live_in_minutes": 1440},
        },
    ).result()


def start(home: Path, endpoints: dict[str, Any]) -> dict[str, str]:
    """`make run`: the dev registry, the app on the host, events wired. Returns what to print."""
    clients = arm_clients(endpoints)
    registry = ensure_registry(clients, DEV_GROUP, DEV_REGISTRY)
    port = HOST_PORT if _port_free(HOST_PORT) else free_port()
    sink = f"{endpoints['armEndpoint']}/_devstack/webhooks"  # lab warnings, read back at {name}/received
    settings = app_settings(
        endpoints,
        [registry.id],
        CLEANUP_TEAMS_WEBHOOK_URL=f"{sink}/teams",
        CLEANUP_SLACK_WEBHOOK_URL=f"{sink}/slack",
        CLEANUP_LINK_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        DOCKMASTER_PUBLIC_URL=f"http://{HOST}:{port}",
    )
    base = start_host(home, settings, port)
    keys = HostKeys.load_or_create(home / "host")
    webhook = f"{base}/runtime/webhooks/eventgrid?functionName=on_image_event&code={keys.eventgrid}"
    wire_events(clients, registry, webhook)
    stamps = f"{base}/runtime/webhooks/eventgrid?functionName=on_resource_event&code={keys.eventgrid}"
    wire_resource_events(clients, DEV_GROUP, str(endpoints["subscriptionId"]), stamps)
    (home / "app.json").write_text(
        json.dumps({"registry": registry.id, "loginServer": registry.login_server, "host": base})
    )
    # The operators' page with the function key in the fragment: browsers never send a fragment, and
    # the page moves the key into the tab's storage and out of the address bar.
    page = f"{base}/api/ui/#code={keys.function}"
    return {"registry": registry.name, "loginServer": registry.login_server, "host": base, "page": page}


def demo(home: Path, endpoints: dict[str, Any]) -> int:
    """Build an image, push it with podman to the dev registry and wait for its verdict."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    app = json.loads((home / "app.json").read_text()) if (home / "app.json").exists() else None
    if app is None:
        raise StackError("the app is not running: start it with `make run` first")
    clients = arm_clients(endpoints)
    credentials = clients["registries"].registries.list_credentials(DEV_GROUP, DEV_REGISTRY)
    login_server = app["loginServer"]
    work = home / "demo"
    (work / "certs").mkdir(parents=True, exist_ok=True)
    (work / "certs" / "ca.crt").write_bytes(Path(endpoints["caBundle"]).read_bytes())
    context = work / "context"
    context.mkdir(exist_ok=True)
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise StackError("the demo needs /bin/busybox: apt-get install busybox-static")
    (context / "busybox").write_bytes(busybox.read_bytes())
    (context / "busybox").chmod(0o755)
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'ENTRYPOINT ["/bin/busybox", "echo", "Hello from the Dockmaster demo"]\n'
    )
    tag = f"demo/hello:{time.strftime('%Y%m%d%H%M%S')}"
    image = f"{login_server}/{tag}"
    auth = ["--cert-dir", str(work / "certs"), "--authfile", str(work / "auth.json")]
    steps = [
        ["buildah", "bud", "-q", "-t", image, str(context)],
        [
            "podman",
            "login",
            *auth,
            "-u",
            credentials.username,
            "-p",
            credentials.passwords[0].value,
            login_server,
        ],
        ["podman", "push", *auth, image],
    ]
    for step in steps:
        shown = " ".join("***" if arg == credentials.passwords[0].value else arg for arg in step)
        print(f"$ {shown}", flush=True)
        subprocess.run(step, check=True)
    table = TableClient.from_connection_string(str(endpoints["storageConnectionString"]), "verdicts")
    print("waiting for the verdict…", flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            found = [
                e
                for e in table.query_entities(f"Tag eq '{tag.split(':')[1]}' and Repository eq 'demo/hello'")
                if e["Status"] in ("passed", "failed", "superseded")
            ]
        except ResourceNotFoundError:  # the app creates its table with the first verdict
            found = []
        if found:
            verdict = found[0]
            print(
                json.dumps(
                    {k: verdict[k] for k in ("Repository", "Tag", "Digest", "Status", "RunId")}, indent=2
                )
            )
            for check in json.loads(verdict["Checks"]):
                print(f"  {check['status']:8} {check['name']}: {check['reason']}")
            print(f"  actions: {', '.join(json.loads(verdict['Actions'])) or 'none'}")
            return 0
        time.sleep(0.5)
    print("no verdict within 120 s; see .devstack/logs/host.log", file=sys.stderr)
    return 1
