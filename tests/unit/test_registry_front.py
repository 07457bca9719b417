"""The registry front's domain operations, without HTTP: tokens and scopes, changeable attributes and their
enforcement, /acr/v1/ listings, download links and the backend's URLs rewritten to the login server."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from devstack.emulator.acr_attributes import AttributeStore
from devstack.emulator.acr_auth import RegistryAuth, is_granted, parse_scopes
from devstack.emulator.acr_backend import RegistryBackend, to_login_server
from devstack.emulator.acr_metadata import RepositoryMetadata, after, ordered, tag_name
from devstack.emulator.acr_names import NULL_GUID_USER
from devstack.emulator.acr_records import ChangeableAttributes, FrontRegistry, TagView
from devstack.emulator.acr_rules import ImageRules
from devstack.emulator.acr_v1_routes import Target, target
from devstack.emulator.blob_links import LINK_TIME, BlobLinks, BlobRef, StorageError, link_signature
from devstack.emulator.errors import AcrError
from devstack.emulator.registry_storage import RegistryStorage
from devstack.emulator.store import Store
from devstack.emulator.tokens import TokenService

KEY = "signing-key-of-the-tests-0123456789"
ARM = "https://127.0.0.1:8443"
REGISTRY = FrontRegistry(
    id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/Reg",
    name="Reg",
    login_server="127.0.0.1:4000",
    namespace="reg",
    admin_user_enabled=True,
    admin_passwords=("first", "second"),
)
T0 = 1_700_000_000


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(KEY, "tenant", ARM)


@pytest.fixture
def auth(tokens: TokenService) -> RegistryAuth:
    return RegistryAuth(tokens, ARM)


@pytest.fixture
def attributes(tmp_path: Path) -> AttributeStore:
    return AttributeStore(Store(tmp_path / "emulator.sqlite"))


def push(root: Path, repository: str, tag: str | None, document: dict[str, Any], when: int) -> str:
    """A manifest in docker-registry's storage layout, as a push leaves it."""
    raw = json.dumps(document).encode()
    digest = hashlib.sha256(raw).hexdigest()
    blob = root / "docker/registry/v2/blobs/sha256" / digest[:2] / digest
    blob.mkdir(parents=True, exist_ok=True)
    (blob / "data").write_bytes(raw)
    repo = root / "docker/registry/v2/repositories" / REGISTRY.namespace / repository / "_manifests"
    revision = repo / "revisions/sha256" / digest
    revision.mkdir(parents=True, exist_ok=True)
    (revision / "link").write_text(f"sha256:{digest}")
    os.utime(revision / "link", (when, when))
    if tag is not None:
        current = repo / "tags" / tag / "current"
        current.mkdir(parents=True, exist_ok=True)
        (current / "link").write_text(f"sha256:{digest}")
        os.utime(current / "link", (when, when))
        os.utime(current.parent, (when, when))
    return f"sha256:{digest}"


def manifest(number: int) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "0" * 64},
        "layers": [{"digest": "sha256:" + "1" * 64, "size": number}],
    }


# Tokens and scopes ------------------------------------------------------------------------------
def test_scopes_parse_into_grants_and_a_wildcard_grants_every_action() -> None:
    access = parse_scopes("repository:team/app:pull,push registry:catalog:*")
    assert access == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert is_granted(access, "repository", "team/app", "push")
    assert not is_granted(access, "repository", "team/app", "delete")
    assert is_granted(access, "registry", "catalog", "anything")
    with pytest.raises(AcrError, match="invalid scope 'repository:app'"):
        parse_scopes("repository:app")


def test_an_entra_token_becomes_a_refresh_token_then_an_access_token(
    auth: RegistryAuth, tokens: TokenService
) -> None:
    entra, _ = tokens.issue("https://management.azure.com", subject="someone")
    form = {"grant_type": "access_token", "service": REGISTRY.login_server, "access_token": entra}
    refresh = auth.exchange(REGISTRY, form)
    subject = auth.form_subject(REGISTRY, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert subject == "someone"
    access = auth.access_token(REGISTRY, subject, "repository:app:pull", None)
    assert auth.grants(REGISTRY, f"Bearer {access}") == [
        {"type": "repository", "name": "app", "actions": ["pull"]}
    ]
    assert auth.grants(REGISTRY, f"Bearer {refresh}") is None  # a refresh token opens nothing
    other = FrontRegistry(**{**REGISTRY.__dict__, "login_server": "127.0.0.1:4001"})
    assert auth.grants(other, f"Bearer {access}") is None  # nor does a token for another registry


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"grant_type": "password"}, 400, "grant_type must be access_token"),
        ({"grant_type": "access_token", "service": "elsewhere"}, 400, "service must be 127.0.0.1:4000"),
        (
            {"grant_type": "access_token", "service": "127.0.0.1:4000", "access_token": "junk"},
            401,
            "the Entra access token is invalid or expired",
        ),
    ],
)
def test_an_exchange_refuses_what_acr_refuses(
    auth: RegistryAuth, form: dict[str, str], status: int, message: str
) -> None:
    with pytest.raises(AcrError) as refused:
        auth.exchange(REGISTRY, form)
    assert (refused.value.status, refused.value.message) == (status, message)


def test_an_exchange_refuses_a_token_for_another_audience(auth: RegistryAuth, tokens: TokenService) -> None:
    storage_token, _ = tokens.issue("https://storage.azure.com")
    form = {"grant_type": "access_token", "service": REGISTRY.login_server, "access_token": storage_token}
    with pytest.raises(AcrError, match="wrong audience"):
        auth.exchange(REGISTRY, form)


def test_basic_auth_takes_the_admin_user_or_the_null_guid_user_with_a_refresh_token(
    auth: RegistryAuth, tokens: TokenService
) -> None:
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert auth.basic_subject(REGISTRY, basic("reg", "second")) == "Reg"
    refresh, _ = tokens.issue(REGISTRY.login_server, subject="run/1", grant="refresh")
    assert auth.basic_subject(REGISTRY, basic(NULL_GUID_USER, refresh)) == "run/1"
    with pytest.raises(AcrError) as refused:
        auth.basic_subject(REGISTRY, basic("reg", "wrong"))
    assert refused.value.headers == {"WWW-Authenticate": 'Basic realm="127.0.0.1:4000"'}
    no_admin = FrontRegistry(**{**REGISTRY.__dict__, "admin_user_enabled": False})
    with pytest.raises(AcrError):
        auth.basic_subject(no_admin, basic("reg", "second"))


def test_a_missing_grant_is_challenged_with_the_scope_and_named_in_the_detail(
    auth: RegistryAuth,
) -> None:
    access = auth.access_token(REGISTRY, "someone", "repository:app:pull", REGISTRY.login_server)
    with pytest.raises(AcrError) as refused:
        auth.authorize(REGISTRY, f"Bearer {access}", "repository", "app", "push")
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"] == (
        'Bearer realm="https://127.0.0.1:4000/oauth2/token",service="127.0.0.1:4000",'
        'scope="repository:app:push"'
    )
    assert refused.value.detail == [{"Type": "repository", "Name": "app", "Action": "push"}]
    auth.authorize(REGISTRY, f"Bearer {access}", "repository", "app", "pull")
    with pytest.raises(AcrError, match="service must be"):
        auth.access_token(REGISTRY, "someone", "", "elsewhere")


# Changeable attributes -----------------------------------------------------------------------------
def test_attributes_default_to_enabled_and_a_patch_changes_only_what_it_names(
    attributes: AttributeStore,
) -> None:
    assert attributes.get(REGISTRY, "app") == ChangeableAttributes()
    updated = attributes.update(REGISTRY, "app", {"writeEnabled": False, "teleportEnabled": True})
    assert updated.as_json() == {
        "deleteEnabled": True,
        "writeEnabled": False,
        "readEnabled": True,
        "listEnabled": True,
    }
    assert list(updated.as_json()) == ["deleteEnabled", "writeEnabled", "readEnabled", "listEnabled"]
    assert attributes.get(REGISTRY, "APP", attributes.table(REGISTRY)) == updated  # keys are case-blind
    for patch, message in (({"other": True}, "changeable attributes are"), ({"readEnabled": 1}, "true or")):
        with pytest.raises(AcrError, match=message):
            attributes.update(REGISTRY, "app", patch)
    attributes.forget(REGISTRY, ["app"])
    assert attributes.get(REGISTRY, "app") == ChangeableAttributes()


def test_v2_rules_follow_the_attributes_of_the_repository_tag_and_manifest(
    tmp_path: Path, attributes: AttributeStore
) -> None:
    digest = push(tmp_path, "app", "v1", manifest(1), T0)
    storage = RegistryStorage(tmp_path, REGISTRY.namespace)
    rules = ImageRules(attributes)

    def check(ref: str, method: str) -> None:
        asyncio.run(rules.check_manifest(REGISTRY, storage, "app", ref, method))

    check("v1", "GET")
    check(digest, "DELETE")
    with pytest.raises(AcrError, match="invalid manifest reference"):
        check("v 1", "GET")
    attributes.update(REGISTRY, f"app@{digest}", {"readEnabled": False})
    with pytest.raises(AcrError, match="disallowed"):
        check("v1", "GET")  # a tag's pull reads its manifest
    attributes.update(REGISTRY, "app:v1", {"deleteEnabled": False, "writeEnabled": False})
    with pytest.raises(AcrError, match="disallowed"):
        check(digest, "DELETE")  # a locked tag keeps its manifest
    with pytest.raises(AcrError, match="disallowed"):
        check("v1", "PUT")
    check("v2", "PUT")  # a new tag has nothing to protect
    attributes.update(REGISTRY, "app", {"writeEnabled": False})
    with pytest.raises(AcrError, match="disallowed"):
        rules.check_repository(REGISTRY, "app", "push")
    rules.check_repository(REGISTRY, "app", "pull")


# /acr/v1/ -------------------------------------------------------------------------------------------
def test_listings_hide_what_is_not_list_enabled_and_page_by_name(
    tmp_path: Path, attributes: AttributeStore
) -> None:
    digests = [push(tmp_path, "app", tag, manifest(n), T0 + n) for n, tag in enumerate(("b", "a", "c"))]
    attributes.update(REGISTRY, "app:c", {"listEnabled": False})
    attributes.update(REGISTRY, f"app@{digests[0]}", {"listEnabled": False})
    metadata = RepositoryMetadata(tmp_path, attributes, RegistryBackend("http://127.0.0.1:1"))
    storage = metadata.existing(REGISTRY, "app")

    page = asyncio.run(metadata.tag_page(REGISTRY, storage, "app", None, 5))
    assert [v["name"] for v in page] == ["a", "b"]
    assert [v["name"] for v in asyncio.run(metadata.tag_page(REGISTRY, storage, "app", "a", 5))] == ["b"]
    views = asyncio.run(metadata.tags(REGISTRY, storage, "app", None))
    assert [v["name"] for v in ordered(views, "timedesc", tag_name)] == ["a", "b"]
    manifests = asyncio.run(metadata.manifests(REGISTRY, storage, "app"))
    assert sorted(m["tags"][0] for m in manifests) == ["a", "c"]  # a manifest has attributes of its own
    assert metadata.listed_repositories(REGISTRY) == ["app"]
    with pytest.raises(AcrError, match="repository name not known"):
        metadata.existing(REGISTRY, "other")
    with pytest.raises(AcrError, match="provided digest did not match"):
        asyncio.run(metadata.manifest(storage, "app", "sha256:short"))


def test_a_listing_continues_after_last_by_position_or_by_key() -> None:
    def view(name: str, updated: str) -> TagView:
        attributes = ChangeableAttributes().as_json()
        return {
            "name": name,
            "digest": "",
            "createdTime": updated,
            "lastUpdateTime": updated,
            "signed": False,
            "changeableAttributes": attributes,
        }

    views = ordered([view("a", "3"), view("b", "1"), view("c", "2")], "timeasc", tag_name)
    assert [v["name"] for v in views] == ["b", "c", "a"]
    assert [v["name"] for v in after(views, tag_name, "c")] == ["a"]  # listed: what follows it
    assert [v["name"] for v in after(views, tag_name, "bb")] == ["c"]  # not listed: the names after it
    with pytest.raises(AcrError, match="orderby must be timedesc or timeasc"):
        ordered(views, "name", tag_name)


def test_acr_v1_paths_name_a_repository_its_tags_or_manifests() -> None:
    assert target("team/app") == Target("repository", "team/app")
    assert target("team/app/_tags") == Target("tags", "team/app")
    assert target("team/app/_tags/v1") == Target("tags", "team/app", "v1")
    assert target("app/_manifests/sha256:x") == Target("manifests", "app", "sha256:x")
    with pytest.raises(AcrError, match="invalid repository name"):
        target("App/_tags")


# Download links and the backend ------------------------------------------------------------------------
def test_a_download_link_grants_a_read_of_one_blob_until_it_expires() -> None:
    links = BlobLinks(KEY, "localhost", 60, lambda: 4443)
    blob = BlobRef("reg", "team/app", "sha256:" + "a" * 64)
    link = links.issue(blob)
    assert link.startswith("https://localhost:4443/reg/team/app/blobs/sha256:")
    path, _, query = link.removeprefix("https://localhost:4443").partition("?")
    params = dict(parse_qsl(query))
    assert links.verify(path, params, "GET") == blob
    assert blob.backend_path == "/v2/reg/team/app/blobs/sha256:" + "a" * 64
    for change, detail in (
        ({"sig": "x" + params["sig"]}, "did not match"),
        ({"sp": "w"}, "fields not well formed"),
    ):
        with pytest.raises(StorageError) as refused:
            links.verify(path, {**params, **change}, "GET")
        assert (refused.value.status, refused.value.detail) == (403, f"Signature {detail}.")
    with pytest.raises(StorageError) as refused:
        links.verify(path, params, "PUT")
    assert refused.value.code == "AuthorizationPermissionMismatch"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).strftime(LINK_TIME)
    expired = {**params, "se": past, "sig": link_signature(KEY, "reg", "team/app", blob.digest, past)}
    with pytest.raises(StorageError) as refused:
        links.verify(path, expired, "GET")
    assert str(refused.value.detail).startswith("Signature not valid in the specified time frame")
    with pytest.raises(StorageError) as refused:
        links.verify("/reg/app/manifests/latest", params, "GET")
    assert refused.value.code == "InvalidUri"


def test_backend_urls_are_rewritten_to_the_login_servers_names() -> None:
    assert to_login_server("reg", "http://127.0.0.1:5000/v2/reg/app/blobs/uploads/u?_state=s") == (
        "/v2/app/blobs/uploads/u?_state=s"
    )
    assert (
        to_login_server("reg", "/v2/reg/app/tags/list?last=reg%2Fzz&n=1") == "/v2/app/tags/list?last=zz&n=1"
    )
    assert to_login_server("reg", "/v2/other/app/manifests/v1") == "/v2/other/app/manifests/v1"
