"""The registry front: ACR's token flow, /v2/ through podman and the SDK, /acr/v1/ and attributes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.faults import FAULTS, admin_client, fault, hits
from tests.support.stack import group_of, unique

RUNC = "/usr/sbin/runc"


@pytest.fixture(scope="module")
def admin_registry(resource_client: Any, acr_client: Any) -> Iterator[Any]:
    group = unique("rg-data-")
    resource_client.resource_groups.create_or_update(group, {"location": "westeurope"})
    registry = acr_client.registries.begin_create(
        group,
        unique("data"),
        {"location": "westeurope", "sku": {"name": "Basic"}, "properties": {"adminUserEnabled": True}},
    ).result()
    yield registry
    resource_client.resource_groups.begin_delete(group, polling=False)


@pytest.fixture(scope="module")
def podman(
    admin_registry: Any, acr_client: Any, devstack: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """podman logged in to the registry with its admin user, trusting the devstack CA."""
    home = tmp_path_factory.mktemp("podman")
    certs = home / "certs"
    certs.mkdir()
    shutil.copy(devstack.endpoints["caBundle"], certs / "ca.crt")
    auth = home / "auth.json"
    credentials = acr_client.registries.list_credentials(group_of(admin_registry.id), admin_registry.name)

    def run(*args: str, check: bool = True, store: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = ["podman", "--runtime", RUNC]
        if store is not None:  # an empty image store of its own: a pull there fetches every blob
            command += [
                "--root",
                str(store / "root"),
                "--runroot",
                str(store / "run"),
                "--storage-driver",
                "vfs",
            ]
        command.append(args[0])
        if args[0] in ("push", "pull"):
            command += ["--cert-dir", str(certs), "--authfile", str(auth)]
        command += args[1:]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {result.stderr}")
        return result

    login = subprocess.run(
        ["podman", "login", "--cert-dir", str(certs), "--authfile", str(auth), "-u", credentials.username,
         "--password-stdin", admin_registry.login_server],
        input=credentials.passwords[0].value, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    return run


@pytest.fixture(scope="module")
def local_image(hello_context: Path) -> Iterator[str]:
    name = f"localhost/dockmaster-test/hello:{unique('t')}"
    subprocess.run(["buildah", "bud", "-q", "-t", name, str(hello_context)], check=True, capture_output=True)
    yield name
    subprocess.run(["buildah", "rmi", "-f", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def data_client(admin_registry: Any, credential: Any, devstack: Any) -> ContainerRegistryClient:
    return ContainerRegistryClient(
        f"https://{admin_registry.login_server}", credential, audience=devstack.arm
    )


def push(podman: Any, local_image: str, target: str) -> subprocess.CompletedProcess[str]:
    podman("tag", local_image, target)
    try:
        result: subprocess.CompletedProcess[str] = podman("push", target, check=False)
        return result
    finally:
        podman("rmi", target, check=False)


def test_podman_push_and_pull_through_the_front(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    target = f"{admin_registry.login_server}/apps/hello:v1"
    pushed = push(podman, local_image, target)
    assert pushed.returncode == 0, pushed.stderr
    pulled = podman("pull", target)
    assert pulled.returncode == 0
    run = podman("run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000", target)
    assert "Hello from Dockmaster" in run.stdout
    podman("rmi", target, check=False)
    assert "apps/hello" in list(data_client.list_repository_names())


def test_podman_pulls_every_blob_through_the_storage_link(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any, devstack: Any
) -> None:
    """Into an empty store, each blob comes from the link the login server redirects to: podman follows
    ACR's 307 and leaves its token behind on the host change (the link host refuses it)."""
    target = f"{admin_registry.login_server}/pulled/app:v1"
    assert push(podman, local_image, target).returncode == 0
    manifest = data_client.get_manifest("pulled/app", "v1").manifest
    on_link_host = f"^/{admin_registry.name.lower()}/pulled/app/blobs/sha256:"  # paths there, not /v2/
    watch = {"target": "dataplane", "kind": "latency", "delay_ms": 0, "method": "GET", "path": on_link_host}
    with admin_client(devstack) as client:
        rule = fault(client, **watch, count=None)
        try:
            with tempfile.TemporaryDirectory(prefix="pull-") as store:  # podman: a runroot under 50 chars
                pulled = podman("pull", target, store=Path(store), check=False)
        finally:
            from_link_host = hits(client, rule)
            assert client.delete(f"{FAULTS}/{rule['id']}").status_code == 204
    assert pulled.returncode == 0, pulled.stderr
    assert from_link_host == len(manifest["layers"]) + 1, "the config and each layer, from the link host"


def test_sdk_lists_pages_and_reads_properties(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    for tag in ("a1", "a2", "a3", "a4", "a5"):
        assert push(podman, local_image, f"{admin_registry.login_server}/paging/app:{tag}").returncode == 0
    pages = list(data_client.list_tag_properties("paging/app", results_per_page=2).by_page())
    assert [[t.name for t in page] for page in pages] == [["a1", "a2"], ["a3", "a4"], ["a5"]]
    (manifest,) = list(data_client.list_manifest_properties("paging/app"))
    assert sorted(manifest.tags) == ["a1", "a2", "a3", "a4", "a5"]
    assert manifest.architecture == "amd64"
    assert manifest.operating_system == "linux"
    assert manifest.size_in_bytes > 0
    repository = data_client.get_repository_properties("paging/app")
    assert (repository.tag_count, repository.manifest_count) == (5, 1)
    tag = data_client.get_tag_properties("paging/app", "a3")
    assert tag.digest == manifest.digest
    newest_first = [t.name for t in data_client.list_tag_properties("paging/app", order_by="timedesc")]
    assert set(newest_first) == {"a1", "a2", "a3", "a4", "a5"}
    data_client.update_tag_properties("paging/app", "a2", can_list=False)  # pages skip a hidden tag
    pages = list(data_client.list_tag_properties("paging/app", results_per_page=2).by_page())
    assert [[t.name for t in page] for page in pages] == [["a1", "a3"], ["a4", "a5"]]


def test_locked_tag_refuses_a_push(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    target = f"{admin_registry.login_server}/locked/app:v1"
    assert push(podman, local_image, target).returncode == 0
    updated = data_client.update_tag_properties("locked/app", "v1", can_write=False, can_delete=False)
    assert (updated.can_write, updated.can_delete) == (False, False)
    refused = push(podman, local_image, target)
    assert refused.returncode != 0
    assert "denied" in refused.stderr
    with pytest.raises(HttpResponseError) as caught:
        data_client.delete_tag("locked/app", "v1")
    assert caught.value.status_code == 403
    data_client.update_tag_properties("locked/app", "v1", can_write=True, can_delete=True)
    data_client.delete_tag("locked/app", "v1")
    assert list(data_client.list_tag_properties("locked/app")) == []


def test_quarantined_manifest_cannot_be_pulled(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    target = f"{admin_registry.login_server}/quarantine/app:v1"
    assert push(podman, local_image, target).returncode == 0
    digest = data_client.get_tag_properties("quarantine/app", "v1").digest
    data_client.update_manifest_properties("quarantine/app", digest, can_read=False)
    assert data_client.get_manifest_properties("quarantine/app", digest).can_read is False
    refused = podman("pull", target, check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr
    with pytest.raises(HttpResponseError):
        data_client.get_manifest("quarantine/app", digest)


def test_blob_upload_download_and_range(admin_registry: Any, data_client: Any, devstack: Any) -> None:
    payload = os.urandom(12 * 1024 * 1024)
    digest, size = data_client.upload_blob("blobs/big", io.BytesIO(payload))
    assert digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert size == len(payload)
    stream = data_client.download_blob("blobs/big", digest)
    assert hashlib.sha256(b"".join(stream)).hexdigest() == digest.split(":")[1]
    # A range read straight over the wire, with a pull token from the token flow.
    token = access_token(admin_registry, devstack, data_client, "repository:blobs/big:pull")
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    with httpx.Client(verify=context, follow_redirects=True) as client:
        response = client.get(
            f"https://{admin_registry.login_server}/v2/blobs/big/blobs/{digest}",
            headers={"Authorization": f"Bearer {token}", "Range": "bytes=10-19"},
        )
    assert response.status_code == 206
    assert response.content == payload[10:20]


def access_token(registry: Any, devstack: Any, data_client: Any, scope: str) -> str:
    from azure.identity import DefaultAzureCredential

    aad = DefaultAzureCredential().get_token(f"{devstack.arm}/.default").token
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    base = f"https://{registry.login_server}"
    with httpx.Client(verify=context) as client:
        refresh = client.post(
            f"{base}/oauth2/exchange",
            data={"grant_type": "access_token", "service": registry.login_server, "access_token": aad},
        ).json()["refresh_token"]
        answer = client.post(
            f"{base}/oauth2/token",
            data={"grant_type": "refresh_token", "service": registry.login_server, "scope": scope,
                  "refresh_token": refresh},
        )  # fmt: skip
    return str(answer.json()["access_token"])


def test_token_scope_is_enforced(admin_registry: Any, devstack: Any, data_client: Any) -> None:
    token = access_token(admin_registry, devstack, data_client, "repository:other/repo:pull")
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    with httpx.Client(verify=context) as client:
        response = client.get(
            f"https://{admin_registry.login_server}/acr/v1/_catalog",
            headers={"Authorization": f"Bearer {token}"},
        )
        bad_login = client.get(
            f"https://{admin_registry.login_server}/oauth2/token",
            params={"service": admin_registry.login_server, "scope": "repository:x:pull"},
            auth=(admin_registry.name, "wrong-password"),
        )
    assert response.status_code == 401
    assert response.json()["errors"][0]["detail"] == [{"Type": "registry", "Name": "catalog", "Action": "*"}]
    assert bad_login.status_code == 401


def test_delete_manifest_and_repository(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    assert push(podman, local_image, f"{admin_registry.login_server}/doomed/app:v1").returncode == 0
    digest = data_client.get_tag_properties("doomed/app", "v1").digest
    data_client.update_manifest_properties("doomed/app", digest, can_delete=False)
    with pytest.raises(HttpResponseError) as caught:
        data_client.delete_manifest("doomed/app", digest)
    assert caught.value.status_code == 403
    data_client.update_manifest_properties("doomed/app", digest, can_delete=True)
    data_client.delete_manifest("doomed/app", digest)
    with pytest.raises(ResourceNotFoundError):
        data_client.get_tag_properties("doomed/app", "v1")
    assert push(podman, local_image, f"{admin_registry.login_server}/doomed/app:v2").returncode == 0
    data_client.delete_repository("doomed/app")
    assert "doomed/app" not in list(data_client.list_repository_names())
    with pytest.raises(ResourceNotFoundError):
        data_client.get_repository_properties("doomed/app")


def test_hidden_repository_is_not_listed(
    podman: Any, local_image: str, admin_registry: Any, data_client: Any
) -> None:
    assert push(podman, local_image, f"{admin_registry.login_server}/hidden/app:v1").returncode == 0
    data_client.update_repository_properties("hidden/app", can_list=False)
    assert "hidden/app" not in list(data_client.list_repository_names())
    assert data_client.get_repository_properties("hidden/app").can_list is False


def push_config_only(data_client: Any, repository: str, config: bytes) -> tuple[str, str]:
    """An image manifest of `config` and no layers, pushed as :v1: (its digest, the config's)."""
    config_digest, config_size = data_client.upload_blob(repository, io.BytesIO(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [],
    }
    return data_client.set_manifest(repository, manifest, tag="v1"), config_digest


def test_manifest_round_trip_through_the_sdk(data_client: Any) -> None:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    digest, config_digest = push_config_only(data_client, "sdk/made", config)
    fetched = data_client.get_manifest("sdk/made", "v1")
    assert fetched.digest == digest
    assert fetched.manifest["config"]["digest"] == config_digest


def test_a_blob_get_is_redirected_to_a_signed_link_that_takes_no_token(
    admin_registry: Any, data_client: Any, devstack: Any
) -> None:
    """ACR's GetBlob answers 307 with a Location on storage, another host (the spec's GetBlob.json); the
    link carries its own short-lived signature, as a SAS does, and Azure Storage refuses a registry token."""
    from devstack.emulator.acr.front import link_signature

    payload = os.urandom(4096)
    digest, _ = data_client.upload_blob("links/app", io.BytesIO(payload))
    token = access_token(admin_registry, devstack, data_client, "repository:links/app:pull")
    bearer = {"Authorization": f"Bearer {token}"}
    front = f"https://{admin_registry.login_server}/v2/links/app/blobs"
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    with httpx.Client(verify=context) as client:
        redirected = client.get(f"{front}/{digest}", headers=bearer)
        assert redirected.status_code == 307
        link = urlsplit(redirected.headers["Location"])
        assert link.hostname != urlsplit(f"https://{admin_registry.login_server}").hostname
        query = dict(parse_qsl(link.query))
        assert {"se", "sig"} <= set(query)
        assert (query["sp"], query["sr"]) == ("r", "b")
        head = client.head(f"{front}/{digest}", headers=bearer)  # HEAD answers on the login server
        assert (head.status_code, head.headers["Docker-Content-Digest"]) == (200, digest)
        assert int(head.headers["Content-Length"]) == len(payload)
        unknown = client.get(f"{front}/sha256:{'0' * 64}", headers=bearer)
        assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (404, "BLOB_UNKNOWN")

        url = redirected.headers["Location"]
        assert client.get(url).content == payload
        ranged = client.get(url, headers={"Range": "bytes=100-199"})
        assert (ranged.status_code, ranged.content) == (206, payload[100:200])
        with_token = client.get(url, headers=bearer)
        assert with_token.status_code == 400
        assert with_token.headers["x-ms-error-code"] == "InvalidAuthenticationInfo"
        assert client.put(url, content=b"x").headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
        other = link._replace(path=link.path.replace(digest.split(":")[1], "0" * 64)).geturl()
        forged = client.get(other)
        assert (forged.status_code, forged.headers["x-ms-error-code"]) == (403, "AuthenticationFailed")
        key = json.loads((devstack.home / "emulator.json").read_text())["signing_key"]
        namespace = link.path.split("/")[1]
        past = "2020-01-01T00:00:00Z"
        expired_query = {
            **query,
            "se": past,
            "sig": link_signature(key, namespace, "links/app", digest, past),
        }
        expired = client.get(link._replace(query=urlencode(expired_query)).geturl())
        assert expired.status_code == 403
        assert "Signature not valid in the specified time frame" in expired.text


def test_the_product_reads_a_config_through_the_redirect_and_keeps_its_token(
    podman: Any,
    local_image: str,
    admin_registry: Any,
    credential: Any,
    devstack: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verification reads each image's config blob: through ACR's 307 to storage, with the registry
    token sent to the login server only (as it goes on the wire: requests' Session.send, recorded)."""
    import requests

    from shared.oci import image_manifest
    from shared.registry import RegistryClient

    assert push(podman, local_image, f"{admin_registry.login_server}/redirect/app:v1").returncode == 0
    client = RegistryClient(admin_registry.login_server, credential, f"{devstack.arm}/.default")
    descriptor = image_manifest(client.get_manifest("redirect/app", "v1").document).config
    digest = descriptor.digest
    sent: list[tuple[requests.PreparedRequest, requests.Response]] = []
    original = requests.Session.send

    def recorded(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        response = original(session, request, **kwargs)
        sent.append((request, response))
        return response

    monkeypatch.setattr(requests.Session, "send", recorded)
    before = client.requests
    config = client.get_json_blob("redirect/app", descriptor)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    (to_front, redirect), (to_storage, blob) = [(q, a) for q, a in sent if digest in str(q.url)]
    assert urlsplit(str(to_front.url)).netloc == admin_registry.login_server
    assert str(to_front.headers["Authorization"]).startswith("Bearer ")
    assert redirect.status_code == 307
    assert urlsplit(str(to_storage.url)).hostname != urlsplit(str(to_front.url)).hostname
    assert "Authorization" not in to_storage.headers, "the registry token went to the storage host"
    assert blob.status_code == 200
    assert client.requests - before == 2, "a redirected read is two requests on the wire"


@pytest.mark.parametrize(
    "config",
    [
        b"[1, 2]",
        b"not json at all",
        b'"a string"',
        b'{"architecture": ["amd64"], "os": {"linux": 1}}',
        b"\xff\xfe",
    ],
    ids=["array", "not-json", "string", "odd-fields", "not-utf8"],
)
def test_a_crafted_config_leaves_the_manifest_listed_readable_and_lockable(
    data_client: Any, config: bytes
) -> None:
    """ACR lists any config (artifacts have non-image configs): the manifest keeps its properties, without
    the platform a config that is no image config cannot give; one crafted blob must not break the rest."""
    repository = f"crafted/{unique('c')}"
    digest, _ = push_config_only(data_client, repository, config)
    listed = list(data_client.list_manifest_properties(repository))
    assert [m.digest for m in listed] == [digest]
    properties = data_client.get_manifest_properties(repository, digest)
    assert properties.architecture is None
    assert properties.operating_system is None
    assert data_client.update_manifest_properties(repository, digest, can_read=False).can_read is False


def test_head_where_acr_lists_none_and_a_password_outside_ascii_are_refusals(
    admin_registry: Any, devstack: Any, data_client: Any
) -> None:
    """On the wire: HEAD on ACR's metadata paths is 405 naming the path's methods (it was a 500), and an
    admin password outside ASCII is a wrong password, ACR's 401 with its challenge (it was a 500)."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    push_config_only(data_client, "head/app", config)
    token = access_token(admin_registry, devstack, data_client, "repository:head/app:*")
    base = f"https://{admin_registry.login_server}"
    context = ssl.create_default_context(cafile=devstack.endpoints["caBundle"])
    with httpx.Client(verify=context) as client:
        for path, allowed in (
            ("/acr/v1/head/app", "DELETE, GET, PATCH"),
            ("/acr/v1/head/app/_tags", "GET"),
            ("/acr/v1/head/app/_tags/v1", "DELETE, GET, PATCH"),
            ("/acr/v1/head/app/_manifests", "GET"),
        ):
            head = client.head(base + path, headers={"Authorization": f"Bearer {token}"})
            assert (head.status_code, head.headers["Allow"], head.content) == (405, allowed, b"")
        wrong = client.get(
            f"{base}/oauth2/token",
            params={"service": admin_registry.login_server, "scope": "repository:head/app:pull"},
            auth=(admin_registry.name, "pässwörd"),
        )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == f'Basic realm="{admin_registry.login_server}"'


@pytest.mark.parametrize("locked", ["manifest", "tag"])
def test_a_write_locked_image_is_not_deleted(data_client: Any, locked: str) -> None:
    """`ACR-LOCK`: "If the image attributes are set with `writeEnabled=false` or `deleteEnabled=false`, then
    it will block image deletion", for the manifest and for a tag on it; the tag is not untagged either."""
    repository = f"write-locked/{unique('w')}"
    digest, _ = push_config_only(data_client, repository, json.dumps({"os": "linux"}).encode())
    if locked == "manifest":
        data_client.update_manifest_properties(repository, digest, can_write=False)
    else:
        data_client.update_tag_properties(repository, "v1", can_write=False)
    with pytest.raises(HttpResponseError) as refused:
        data_client.delete_manifest(repository, digest)
    assert refused.value.status_code == 403
    assert refused.value.response is not None
    assert json.loads(refused.value.response.text())["errors"][0]["code"] == "DENIED"
    if locked == "tag":
        with pytest.raises(HttpResponseError) as untag:
            data_client.delete_tag(repository, "v1")
        assert untag.value.status_code == 403
    assert data_client.get_manifest_properties(repository, digest).tags == ["v1"]
