"""The registry front's domain operations, without HTTP: tokens and scopes, changeable attributes and their
enforcement, /acr/v1/ listings, download links and the backend's URLs rewritten to the login server; then
the front's app in process (docker-registry a mock): methods, credentials and backend failures."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from devstack.emulator.acr.attributes import AttributeStore
from devstack.emulator.acr.auth import RegistryAuth, is_granted, parse_scopes
from devstack.emulator.acr.backend import RegistryBackend, to_login_server
from devstack.emulator.acr.blob_links import LINK_TIME, BlobLinks, BlobRef, StorageError, link_signature
from devstack.emulator.acr.front import Fronts
from devstack.emulator.acr.metadata import RepositoryMetadata, after, ordered, tag_name
from devstack.emulator.acr.names import NULL_GUID_USER
from devstack.emulator.acr.records import ChangeableAttributes, FrontRegistry, TagView
from devstack.emulator.acr.referrers import ReferrersIndex, pushed_subject, referrer_of
from devstack.emulator.acr.registry_storage import RegistryStorage
from devstack.emulator.acr.rules import ImageRules
from devstack.emulator.acr.v1_routes import Target, target
from devstack.emulator.config import EmulatorConfig
from devstack.emulator.errors import AcrError
from devstack.emulator.faults import Faults
from devstack.emulator.store import Store
from devstack.emulator.tokens import TokenService
from tests.support.emulator import offline_config

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


# Credentials and signatures outside ASCII ---------------------------------------------------------------
def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_password_outside_ascii_is_a_wrong_credential_with_its_challenge(auth: RegistryAuth) -> None:
    with pytest.raises(AcrError) as refused:
        auth.basic_subject(REGISTRY, basic("reg", "pässwörd"))
    assert (refused.value.status, refused.value.headers) == (
        401,
        {"WWW-Authenticate": 'Basic realm="127.0.0.1:4000"'},
    )
    with pytest.raises(AcrError) as refused:
        auth.form_subject(REGISTRY, {"grant_type": "password", "username": "reg", "password": "pässwörd"})
    assert (refused.value.status, refused.value.message) == (401, "invalid username or password")
    accented = FrontRegistry(**{**REGISTRY.__dict__, "admin_passwords": ("pässwörd",)})
    assert auth.basic_subject(accented, basic("reg", "pässwörd")) == "Reg"  # compared as UTF-8 bytes


def test_a_signature_outside_ascii_is_a_signature_that_does_not_match() -> None:
    links = BlobLinks(KEY, "localhost", 60, lambda: 4443)
    link = links.issue(BlobRef("reg", "app", "sha256:" + "a" * 64))
    path, _, query = link.removeprefix("https://localhost:4443").partition("?")
    params = dict(parse_qsl(query))
    for signature in ("ü" + params["sig"][1:], "€"):
        with pytest.raises(StorageError) as refused:
            links.verify(path, {**params, "sig": signature}, "GET")
        assert (refused.value.status, refused.value.code, refused.value.detail) == (
            403,
            "AuthenticationFailed",
            "Signature did not match.",
        )


# Deleting a repository: every manifest through docker-registry, or nothing reported ----------------------
Answer = Callable[[httpx.Request], httpx.Response]


def backend_answering(answer: Answer) -> tuple[RegistryBackend, list[str]]:
    """A backend whose docker-registry is `answer`; the requests it got, in order."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return answer(request)

    backend = RegistryBackend("http://backend")
    backend.use(httpx.AsyncClient(base_url="http://backend", transport=httpx.MockTransport(handler)))
    return backend, seen


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def pushed_repository(root: Path, attributes: AttributeStore) -> list[str]:
    """`app` with two tagged manifests; the repository hidden, the second manifest quarantined."""
    digests = [push(root, "app", tag, manifest(n), T0 + n) for n, tag in enumerate(("a", "b"))]
    attributes.update(REGISTRY, "app", {"listEnabled": False})
    attributes.update(REGISTRY, f"app@{digests[1]}", {"readEnabled": False})
    return digests


def delete_through(root: Path, attributes: AttributeStore, answer: Answer) -> tuple[list[str], Any]:
    """Delete `app` with docker-registry answering `answer`: the backend's requests, and the result (or
    the AcrError raised)."""
    backend, seen = backend_answering(answer)
    metadata = RepositoryMetadata(root, attributes, backend)

    async def delete() -> Any:
        try:
            return await metadata.delete_repository(REGISTRY, metadata.existing(REGISTRY, "app"), "app")
        except AcrError as error:
            return error
        finally:
            await backend.close()

    return seen, asyncio.run(delete())


@pytest.mark.parametrize("status", [202, 404], ids=["deleted", "already-gone"])
def test_a_repository_is_deleted_once_each_manifest_is(
    tmp_path: Path, attributes: AttributeStore, status: int
) -> None:
    digests = pushed_repository(tmp_path, attributes)
    seen, deleted = delete_through(tmp_path, attributes, lambda _: httpx.Response(status))
    assert sorted(seen) == sorted(f"DELETE /v2/reg/app/manifests/{d}" for d in digests)
    assert deleted == {"manifestsDeleted": sorted(digests), "tagsDeleted": ["a", "b"]}
    assert not RegistryStorage(tmp_path, "reg").exists("app")
    assert attributes.get(REGISTRY, "app") == ChangeableAttributes()


def failing_on(digest: str, answer: httpx.Response) -> Answer:
    return lambda request: answer if request.url.path.endswith(digest) else httpx.Response(202)


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (
            httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "unknown error"}]}),
            500,
            "UNKNOWN",
        ),
        (
            httpx.Response(
                405, json={"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
            ),
            405,
            "UNSUPPORTED",
        ),
        (httpx.Response(502, text="Bad Gateway"), 502, "UNKNOWN"),
        (httpx.Response(401), 503, "UNAVAILABLE"),
    ],
    ids=["error", "unsupported", "not-json", "refused"],
)
def test_a_manifest_the_backend_does_not_delete_fails_the_repository_delete(
    tmp_path: Path, attributes: AttributeStore, failure: httpx.Response, status: int, code: str
) -> None:
    """A partial delete is no success: the error is the backend's, as a /v2/ delete relays it, and what
    was not deleted keeps its files and attributes."""
    digests = pushed_repository(tmp_path, attributes)
    _, refused = delete_through(tmp_path, attributes, failing_on(digests[1], failure))
    assert isinstance(refused, AcrError)
    assert (refused.status, refused.code) == (status, code)
    storage = RegistryStorage(tmp_path, "reg")
    assert storage.exists("app")
    assert storage.manifest("app", digests[1]) is not None
    assert attributes.get(REGISTRY, f"app@{digests[1]}").read_enabled is False
    assert attributes.get(REGISTRY, "app").list_enabled is False


def test_an_unreachable_backend_deletes_nothing_and_answers_503(
    tmp_path: Path, attributes: AttributeStore
) -> None:
    pushed_repository(tmp_path, attributes)
    seen, refused = delete_through(tmp_path, attributes, unreachable)
    assert isinstance(refused, AcrError)
    assert (refused.status, refused.code) == (503, "UNAVAILABLE")
    assert len(seen) == 1, "no further delete once the backend is unreachable"
    assert RegistryStorage(tmp_path, "reg").exists("app")
    assert attributes.get(REGISTRY, "app").list_enabled is False


# The front's app in process ----------------------------------------------------------------------------
@dataclass
class StandInHost:
    """What a front needs of the emulator (`RegistryHost`), without the emulator."""

    config: EmulatorConfig
    store: Store
    tokens: TokenService
    faults: Faults

    def backend_namespace(self, registry: dict[str, Any]) -> str:
        return str(registry["name"]).lower()


@dataclass
class Front:
    fronts: Fronts
    root: Path
    backend: list[Answer]  # docker-registry's answer, replaceable by a test
    tokens: TokenService

    def call(self, method: str, path: str, *, storage: bool = False, **kwargs: Any) -> httpx.Response:
        """One request to the login server (or to the storage stand-in), answered in process."""
        app = self.fronts.downloads_app if storage else self.fronts.app
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:4000") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def token(self, *actions: str) -> dict[str, str]:
        access = [{"type": "repository", "name": "app", "actions": list(actions)}]
        token, _ = self.tokens.issue(REGISTRY.login_server, subject="someone", grant="access", access=access)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def front(tmp_path: Path, tokens: TokenService) -> Front:
    config = offline_config(
        tmp_path,
        arm_port=8443,
        identity_port=0,
        tenant_id="tenant",
        subscription_id="subscription",
        identity_header="header",
        signing_key=KEY,
        registry_backend="http://backend",
    )
    store = Store(tmp_path / "emulator.sqlite")
    record = {
        "id": REGISTRY.id,
        "name": REGISTRY.name,
        "properties": {"loginServer": REGISTRY.login_server, "adminUserEnabled": True},
        "_passwords": list(REGISTRY.admin_passwords),
    }
    store.put("registry", REGISTRY.id, "rg", record)
    fronts = Fronts(StandInHost(config, store, tokens, Faults("admin-key")))
    fronts.listeners.by_port[4000] = REGISTRY.id
    answers: list[Answer] = [lambda _: httpx.Response(202)]
    fronts.backend.use(
        httpx.AsyncClient(base_url="http://backend", transport=httpx.MockTransport(lambda r: answers[0](r)))
    )
    return Front(fronts, tmp_path, answers, tokens)


DIGEST_A = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/acr/v1/app", "DELETE, GET, PATCH"),
        ("/acr/v1/app/_tags", "GET"),
        ("/acr/v1/app/_tags/v1", "DELETE, GET, PATCH"),
        ("/acr/v1/app/_manifests", "GET"),
        (f"/acr/v1/app/_manifests/{DIGEST_A}", "GET, PATCH"),
        ("/acr/v1/_catalog", "GET"),
        ("/v2/_catalog", "GET"),
        ("/oauth2/token", "GET, POST"),
    ],
)
def test_head_is_not_a_method_of_acrs_metadata_catalog_or_token_routes(
    front: Front, path: str, allowed: str
) -> None:
    """ACR's API (`ACRDATA`) defines no HEAD on these paths and ASP.NET Core's routing answers 405 for a
    method no endpoint lists; Starlette answers HEAD on every GET route, which gave a 500 here."""
    push(front.root, "app", "v1", manifest(1), T0)
    answer = front.call("HEAD", path, headers=front.token("*"))
    assert (answer.status_code, answer.headers["Allow"]) == (405, allowed)
    assert front.call("GET", path, headers=front.token("*")).status_code != 405


def test_get_still_answers_on_the_metadata_routes(front: Front) -> None:
    push(front.root, "app", "v1", manifest(1), T0)
    answer = front.call("GET", "/acr/v1/app/_tags", headers=front.token("*"))
    assert (answer.status_code, [t["name"] for t in answer.json()["tags"]]) == (200, ["v1"])


def test_a_basic_password_outside_ascii_is_401_with_the_challenge(front: Front) -> None:
    answer = front.call("GET", "/oauth2/token", headers={"Authorization": basic("reg", "pässwörd")})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="127.0.0.1:4000"'
    form = {"grant_type": "password", "username": "reg", "password": "pässwörd"}
    assert front.call("POST", "/oauth2/token", data=form).status_code == 401


def test_a_link_signature_outside_ascii_is_403_authentication_failed(front: Front) -> None:
    link = front.fronts.links.issue(BlobRef("reg", "app", DIGEST_A))
    path, _, query = link.partition("://")[2].partition("/")[2].partition("?")
    forged = {**dict(parse_qsl(query)), "sig": "ü"}
    answer = front.call("GET", f"/{path}", params=forged, storage=True)
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (403, "AuthenticationFailed")


def test_a_repository_delete_with_the_backend_unreachable_is_503(front: Front) -> None:
    push(front.root, "app", "v1", manifest(1), T0)
    front.backend[0] = unreachable
    answer = front.call("DELETE", "/acr/v1/app", headers=front.token("*"))
    assert answer.status_code == 503
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert RegistryStorage(front.root, "reg").exists("app")


def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(front: Front) -> None:
    digest = push(front.root, "app", "v1", manifest(1), T0)
    patched = front.call("PATCH", "/acr/v1/app/_tags", headers=front.token("*"), json={})
    assert (patched.status_code, patched.headers["Allow"]) == (405, "GET")
    assert patched.json()["errors"][0]["code"] == "UNSUPPORTED"
    deleted = front.call("DELETE", f"/acr/v1/app/_manifests/{digest}", headers=front.token("*"))
    assert (deleted.status_code, deleted.headers["Allow"]) == (405, "GET, PATCH")


@pytest.mark.parametrize(
    "size",
    ["²", "٣", "１", "+1", " 1", "9" * 5000],
    ids=["superscript", "arabic-indic", "fullwidth", "sign", "space", "overlong"],
)
@pytest.mark.parametrize("path", ["/acr/v1/_catalog", "/acr/v1/app/_tags", "/v2/_catalog"])
def test_a_page_size_is_ascii_digits(front: Front, path: str, size: str) -> None:
    """distribution reads `n` with Go's strconv.Atoi (ASCII digits); str.isdigit took any Unicode digit,
    and int() refused some of those (a 500). A count that is not plain ASCII digits is ACR's 400 (a sign,
    which Atoi takes, is refused too: stricter)."""
    push(front.root, "app", "v1", manifest(1), T0)
    access = [
        {"type": "registry", "name": "catalog", "actions": ["*"]},
        {"type": "repository", "name": "app", "actions": ["*"]},
    ]
    token, _ = front.tokens.issue(REGISTRY.login_server, subject="someone", grant="access", access=access)
    answer = front.call("GET", path, params={"n": size}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"


def lowered(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    return [(key.lower(), value) for key, value in headers.raw]


def test_header_bytes_outside_ascii_reach_docker_registry_as_sent(front: Front) -> None:
    """HTTP allows any octet above 0x7f in a field value (RFC 9110 obs-text): the front passes headers on,
    it does not decide on them (re-encoding them as ASCII was a 500)."""
    received: list[httpx.Headers] = []

    def backend(request: httpx.Request) -> httpx.Response:
        received.append(request.headers)
        return httpx.Response(200, json={"name": "reg/app", "tags": ["v1"]})

    front.backend[0] = backend
    odd = {"X-Client-Note": b"caf\xe9"}
    answer = front.call("GET", "/v2/app/tags/list", headers={**front.token("pull"), **odd})
    assert answer.status_code == 200
    assert (b"x-client-note", b"caf\xe9") in lowered(received[-1])
    link = front.fronts.links.issue(BlobRef("reg", "app", DIGEST_A))
    path, _, query = link.partition("://")[2].partition("/")[2].partition("?")
    ranged = front.call(
        "GET", f"/{path}", params=dict(parse_qsl(query)), headers={"Range": b"bytes=\xff"}, storage=True
    )
    assert ranged.status_code == 200
    assert (b"range", b"bytes=\xff") in lowered(received[-1])


def test_nulls_docker_registry_accepts_in_a_manifest_leave_it_listed(
    tmp_path: Path, attributes: AttributeStore
) -> None:
    """Go reads a JSON null into a size as 0 and into a platform as none, so docker-registry stores such a
    manifest as pushed; its listing must not fail on it (I14-15's rule for configs)."""
    image = {**manifest(1), "layers": [{"digest": "sha256:" + "1" * 64, "size": None}]}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"digest": "sha256:" + "2" * 64, "size": 1, "platform": None}],
    }
    digests = {push(tmp_path, "app", "image", image, T0), push(tmp_path, "app", "index", index, T0 + 1)}
    metadata = RepositoryMetadata(tmp_path, attributes, RegistryBackend("http://unused"))
    views = asyncio.run(metadata.manifests(REGISTRY, metadata.existing(REGISTRY, "app"), "app"))
    assert {v["digest"] for v in views} == digests
    (listed,) = [v for v in views if v["tags"] == ["index"]]
    assert listed["references"] == [{"digest": "sha256:" + "2" * 64, "architecture": None, "os": None}]


def test_a_blob_seen_present_is_not_asked_for_again_until_something_is_deleted() -> None:
    """The redirect of a blob GET needs the blob to be there: docker-registry is asked once per blob, and
    again after any delete (a blob's, a manifest's, a repository's, a registry's)."""
    asked: list[str] = []
    present = {"/v2/ns/app/blobs/sha256:a"}

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        if request.method == "DELETE":
            present.clear()
            return httpx.Response(202)
        return httpx.Response(200 if request.url.path in present else 404)

    async def scenario() -> list[bool]:
        backend = RegistryBackend("http://backend")
        backend.use(httpx.AsyncClient(base_url="http://backend", transport=httpx.MockTransport(handler)))
        seen = [await backend.has_blob("/v2/ns/app/blobs/sha256:a") for _ in range(3)]
        seen.append(await backend.has_blob("/v2/ns/app/blobs/sha256:b"))
        await backend.delete("/v2/ns/app/blobs/sha256:a", "ns")
        seen.append(await backend.has_blob("/v2/ns/app/blobs/sha256:a"))
        await backend.close()
        return seen

    assert asyncio.run(scenario()) == [True, True, True, False, False]
    assert asked == [
        "HEAD /v2/ns/app/blobs/sha256:a",
        "HEAD /v2/ns/app/blobs/sha256:b",
        "DELETE /v2/ns/app/blobs/sha256:a",
        "HEAD /v2/ns/app/blobs/sha256:a",
    ]


# A write lock blocks deletes too -------------------------------------------------------------------------
def lock(front: Front, path: str, attribute: str) -> None:
    answer = front.call("PATCH", f"/acr/v1/{path}", headers=front.token("*"), json={attribute: False})
    assert answer.status_code == 200, answer.text


def recording(front: Front) -> list[str]:
    """docker-registry's requests from now on (each answered 202)."""
    seen: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(202)

    front.backend[0] = backend
    return seen


@pytest.mark.parametrize("attribute", ["writeEnabled", "deleteEnabled"])
@pytest.mark.parametrize("locked", ["manifest", "tag", "repository"])
def test_a_locked_image_is_not_deleted_by_digest(front: Front, locked: str, attribute: str) -> None:
    """`ACR-LOCK`: "If the image attributes are set with `writeEnabled=false` or `deleteEnabled=false`,
    then it will block image deletion" (Azure/acr#561: write-enabled blocks "both update and delete"); a
    repository's writeEnabled=false locks "the repository and all images in it", its deleteEnabled=false
    protects the repository alone ("Individual images can still be updated or deleted")."""
    digest = push(front.root, "app", "v1", manifest(1), T0)
    lock(
        front,
        {"manifest": f"app/_manifests/{digest}", "tag": "app/_tags/v1", "repository": "app"}[locked],
        attribute,
    )
    seen = recording(front)
    answer = front.call("DELETE", f"/v2/app/manifests/{digest}", headers=front.token("*"))
    if locked == "repository" and attribute == "deleteEnabled":
        assert answer.status_code == 202
        return
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (403, "DENIED")
    assert seen == []


@pytest.mark.parametrize("attribute", ["writeEnabled", "deleteEnabled"])
@pytest.mark.parametrize("locked", ["tag", "repository"])
def test_a_locked_tag_is_not_untagged(front: Front, locked: str, attribute: str) -> None:
    push(front.root, "app", "v1", manifest(1), T0)
    lock(front, {"tag": "app/_tags/v1", "repository": "app"}[locked], attribute)
    answer = front.call("DELETE", "/acr/v1/app/_tags/v1", headers=front.token("*"))
    if locked == "repository" and attribute == "deleteEnabled":
        assert answer.status_code == 202
        return
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (403, "DENIED")
    assert RegistryStorage(front.root, "reg").tag("app", "v1") is not None


@pytest.mark.parametrize("attribute", ["writeEnabled", "deleteEnabled"])
@pytest.mark.parametrize("locked", ["repository", "manifest", "tag"])
def test_a_repository_holding_a_locked_image_is_not_deleted(
    front: Front, locked: str, attribute: str
) -> None:
    """Deleting a repository deletes its images: a lock on one of them refuses it (stricter: ACR documents
    the lock of a repository, not of its images, for this delete)."""
    digest = push(front.root, "app", "v1", manifest(1), T0)
    push(front.root, "app", "v2", manifest(2), T0 + 1)
    lock(
        front,
        {"manifest": f"app/_manifests/{digest}", "tag": "app/_tags/v1", "repository": "app"}[locked],
        attribute,
    )
    seen = recording(front)
    answer = front.call("DELETE", "/acr/v1/app", headers=front.token("*"))
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (403, "DENIED")
    assert seen == []
    assert RegistryStorage(front.root, "reg").exists("app")


# OCI 1.1 referrers ---------------------------------------------------------------------------------------
EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def artifact(subject: str, artifact_type: str | None, note: str) -> dict[str, Any]:
    """An OCI artifact attached to `subject`: the empty config, one layer of its own type."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": EMPTY_CONFIG,
        "layers": [{"mediaType": "application/vnd.example.note", "digest": DIGEST_A, "size": 1}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1},
        "annotations": {"note": note},
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    return document


def test_a_referrer_is_listed_with_its_artifact_type_or_its_configs_media_type() -> None:
    """The spec's descriptor: `artifactType` from the manifest, else its config's media type; an index
    without one has none; the manifest's annotations; its size and digest."""
    subject = "sha256:" + "5" * 64
    raw = json.dumps(artifact(subject, "application/vnd.example.verdict", "n")).encode()
    found = referrer_of("sha256:" + "6" * 64, raw)
    assert found is not None
    assert (found.subject, found.descriptor) == (
        subject,
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "6" * 64,
            "size": len(raw),
            "artifactType": "application/vnd.example.verdict",
            "annotations": {"note": "n"},
        },
    )
    untyped = referrer_of("sha256:" + "6" * 64, json.dumps(artifact(subject, None, "n")).encode())
    assert untyped is not None
    assert untyped.artifact_type == "application/vnd.oci.empty.v1+json"
    index = {"schemaVersion": 2, "manifests": [], "subject": {"digest": subject, "size": 1}}
    listed = referrer_of("sha256:" + "7" * 64, json.dumps(index).encode())
    assert listed is not None
    assert listed.descriptor["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert "artifactType" not in listed.descriptor
    assert "annotations" not in listed.descriptor
    assert referrer_of("sha256:" + "8" * 64, json.dumps(manifest(1)).encode()) is None
    assert referrer_of("sha256:" + "8" * 64, b"\xff") is None


def test_a_pushed_subject_must_be_a_descriptor_with_a_valid_digest() -> None:
    assert pushed_subject(json.dumps(artifact(DIGEST_A, None, "n")).encode()) == DIGEST_A
    assert pushed_subject(json.dumps(manifest(1)).encode()) is None
    assert pushed_subject(b"not json") is None  # docker-registry refuses it in its own words
    for subject in ("sha256:" + "a" * 64, {"digest": "sha256:short"}, {"size": 1}):
        with pytest.raises(AcrError) as refused:
            pushed_subject(json.dumps({**manifest(1), "subject": subject}).encode())
        assert (refused.value.status, refused.value.code) == (400, "MANIFEST_INVALID")


def attached(front: Front) -> tuple[str, list[str]]:
    """An image `app:v1` with three verdicts and one SBOM attached, and a signature of the SBOM."""
    image = push(front.root, "app", "v1", manifest(1), T0)
    verdicts = [
        push(front.root, "app", None, artifact(image, "application/vnd.example.verdict", f"v{n}"), T0)
        for n in range(3)
    ]
    sbom = push(front.root, "app", None, artifact(image, "application/vnd.example.sbom", "s"), T0)
    signature = push(front.root, "app", None, artifact(sbom, "application/vnd.example.signature", "g"), T0)
    return image, [*verdicts, sbom, signature]


def pages(front: Front, path: str, **params: str) -> list[tuple[list[str], httpx.Headers]]:
    """Every page of a referrers listing, following each `Link` as a client must."""
    found: list[tuple[list[str], httpx.Headers]] = []
    url: str | None = path
    while url is not None:
        answer = front.call("GET", url, params=params if url == path else None, headers=front.token("pull"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
        body = answer.json()
        assert (body["schemaVersion"], body["mediaType"]) == (2, "application/vnd.oci.image.index.v1+json")
        found.append(([m["digest"] for m in body["manifests"]], answer.headers))
        link = answer.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('>; rel="next"')
    return found


def test_referrers_are_listed_by_page_and_filtered_by_artifact_type(front: Front) -> None:
    image, (v0, v1, v2, sbom, signature) = attached(front)
    listed = pages(front, f"/v2/app/referrers/{image}")
    assert [len(digests) for digests, _ in listed] == [2, 2]
    assert sorted(d for digests, _ in listed for d in digests) == sorted([v0, v1, v2, sbom])
    assert all("OCI-Filters-Applied" not in headers for _, headers in listed)
    verdicts = pages(front, f"/v2/app/referrers/{image}", artifactType="application/vnd.example.verdict")
    assert sorted(d for digests, _ in verdicts for d in digests) == sorted([v0, v1, v2])
    assert [h["OCI-Filters-Applied"] for _, h in verdicts] == ["artifactType", "artifactType"]
    assert pages(front, f"/v2/app/referrers/{sbom}")[0][0] == [signature]
    assert pages(front, f"/v2/app/referrers/{signature}")[0][0] == []  # no referrers: 200, an empty list
    access = [{"type": "repository", "name": "other", "actions": ["pull"]}]
    token, _ = front.tokens.issue(REGISTRY.login_server, subject="someone", grant="access", access=access)
    unknown = front.call("GET", f"/v2/other/referrers/{image}", headers={"Authorization": f"Bearer {token}"})
    assert (unknown.status_code, unknown.json()["manifests"]) == (200, [])  # never 404 (the spec)


def test_a_referrers_request_is_a_read_of_a_valid_digest(front: Front) -> None:
    image, _ = attached(front)
    invalid = front.call("GET", "/v2/app/referrers/sha256:short", headers=front.token("pull"))
    assert (invalid.status_code, invalid.json()["errors"][0]["code"]) == (400, "DIGEST_INVALID")
    unauthorized = front.call("GET", f"/v2/app/referrers/{image}", headers=front.token("push"))
    assert unauthorized.status_code == 401
    head = front.call("HEAD", f"/v2/app/referrers/{image}", headers=front.token("pull"))
    assert (head.status_code, head.headers["Allow"]) == (405, "GET")
    lock(front, f"app/_manifests/{image}", "readEnabled")
    quarantined = front.call("GET", f"/v2/app/referrers/{image}", headers=front.token("pull"))
    assert (quarantined.status_code, quarantined.json()["errors"][0]["code"]) == (403, "DENIED")


def test_a_manifest_pushed_with_a_subject_is_answered_with_oci_subject(front: Front) -> None:
    received: list[bytes] = []

    def backend(request: httpx.Request) -> httpx.Response:
        received.append(request.read())
        return httpx.Response(201, headers={"Docker-Content-Digest": "sha256:" + "9" * 64})

    front.backend[0] = backend
    raw = json.dumps(artifact(DIGEST_A, "application/vnd.example.verdict", "n")).encode()
    path = f"/v2/app/manifests/sha256:{hashlib.sha256(raw).hexdigest()}"
    pushed = front.call("PUT", path, content=raw, headers=front.token("push"))
    assert (pushed.status_code, pushed.headers["OCI-Subject"]) == (201, DIGEST_A)
    assert received == [raw]
    plain = front.call(
        "PUT", "/v2/app/manifests/v1", content=json.dumps(manifest(1)), headers=front.token("push")
    )
    assert (plain.status_code, "OCI-Subject" in plain.headers) == (201, False)
    bad = front.call(
        "PUT", "/v2/app/manifests/v2", json={**manifest(1), "subject": "x"}, headers=front.token("push")
    )
    assert (bad.status_code, bad.json()["errors"][0]["code"]) == (400, "MANIFEST_INVALID")
    oversized = front.call(
        "PUT", "/v2/app/manifests/v3", content=b" " * (4 * 1024 * 1024 + 1), headers=front.token("push")
    )
    assert oversized.json()["errors"][0] == {
        "code": "MANIFEST_INVALID",
        "message": "manifest invalid",
        "detail": "http: request body too large",
    }
    assert len(received) == 2, "the refused pushes never reached docker-registry"


def test_deleting_a_subject_deletes_its_referrers_the_farthest_first(front: Front) -> None:
    """ACR: "By deleting the root artifact, all related artifacts are also deleted" (the SBOM's signature
    too); each through docker-registry, before the subject itself."""
    image, (v0, v1, v2, sbom, signature) = attached(front)
    attributes_of_sbom = f"app/_manifests/{sbom}"
    front.call(
        "PATCH", f"/acr/v1/{attributes_of_sbom}", headers=front.token("*"), json={"listEnabled": False}
    )
    seen = recording(front)
    answer = front.call("DELETE", f"/v2/app/manifests/{image}", headers=front.token("*"))
    assert answer.status_code == 202
    deleted = [line.rsplit("/", 1)[1] for line in seen]
    assert deleted[0] == signature
    assert deleted[-1] == image
    assert sorted(deleted[1:-1]) == sorted([v0, v1, v2, sbom])
    store = AttributeStore(Store(front.root / "emulator.sqlite"))
    assert store.get(REGISTRY, f"app@{sbom}") == ChangeableAttributes()


@pytest.mark.parametrize("attribute", ["writeEnabled", "deleteEnabled"])
def test_a_locked_referrer_keeps_its_subject(front: Front, attribute: str) -> None:
    """ACR documents nothing of a locked referrer under a deleted subject: the stricter reading refuses
    the subject's delete, with ACR's DENIED, before anything is deleted."""
    image, (_, _, _, _, signature) = attached(front)
    lock(front, f"app/_manifests/{signature}", attribute)
    seen = recording(front)
    answer = front.call("DELETE", f"/v2/app/manifests/{image}", headers=front.token("*"))
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (403, "DENIED")
    assert seen == []


def test_the_index_reads_a_manifest_once_and_sees_pushes_and_deletes(tmp_path: Path) -> None:
    image = push(tmp_path, "app", "v1", manifest(1), T0)
    storage = RegistryStorage(tmp_path, "reg")
    index = ReferrersIndex()
    assert index.referrers(storage, "app", image) == []
    first = push(tmp_path, "app", None, artifact(image, "application/vnd.example.verdict", "a"), T0)
    assert [r.digest for r in index.referrers(storage, "app", image)] == [first]
    blob = tmp_path / "docker/registry/v2/blobs/sha256" / first[7:9] / first[7:] / "data"
    blob.unlink()  # known by digest: never read again
    assert [r.digest for r in index.referrers(storage, "app", image)] == [first]
    (storage.revisions_dir("app") / first[7:] / "link").unlink()  # as docker-registry deletes
    assert index.referrers(storage, "app", image) == []
