"""Forged `X-MS-CLIENT-PRINCIPAL`: a header anyone can send.

Threat: a caller writes their own principal document to gain app roles, or sends one built to crash
the parser. Guarantee: the function key is checked by the host first, so a principal never replaces
it; with roles off the header is ignored entirely; with roles on, a missing or malformed principal is
401 and a principal without the role is 403, both in the API's error shape, never a 500.

Trust boundary: the app trusts the whole document, `role_typ` included (see test_role_typ_is_trusted).
That is sound only behind App Service authentication (Easy Auth), which builds the header itself from
a validated token, sets `role_typ` to its own claim type and strips any copy a client sends. That is
why infra/ sets DOCKMASTER_API_ROLES=true exactly when authentication is on; without Easy Auth in
front, roles would add nothing, and the function key is the only guard (as with roles off).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.api.auth import MAX_PRINCIPAL_BYTES, OPERATE, PRINCIPAL_HEADER, READ
from tests.support.api import Api, local_host, principal
from tests.support.hostile import Target, app_settings, error_shape
from tests.support.stack import Devstack


def encode(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()


def claims(*claims: dict[str, Any], role_typ: str | None = "roles") -> str:
    document: dict[str, Any] = {"auth_typ": "aad", "claims": list(claims), "name_typ": "name"}
    if role_typ is not None:
        document["role_typ"] = role_typ
    return encode(document)


NESTED = b"[" * 5000 + b"]" * 5000  # deeper than Python's recursion limit: json.loads cannot parse it
MALFORMED = {
    "not base64": "%%%not base64%%%",
    "base64 of text": encode(b"just text"),
    "base64 of invalid UTF-8": encode(b"\xff\xfe{}"),
    "JSON array": encode([{"typ": "roles", "val": OPERATE}]),
    "JSON string": encode("claims"),
    "claims an object": encode({"claims": {"typ": "roles", "val": OPERATE}}),
    "claims a string": encode({"claims": OPERATE}),
    "claims missing": encode({"role_typ": "roles", "roles": [OPERATE, READ]}),
    "JSON nested 5000 deep": encode(NESTED),
    "oversize": encode({"claims": [{"typ": "roles", "val": READ}], "pad": "x" * MAX_PRINCIPAL_BYTES}),
}


def status_and_error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, error_shape(response.status_code, response.content)["code"]


@pytest.fixture(scope="module")
def roles_off(devstack: Devstack, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A second host with DOCKMASTER_API_ROLES=false: the function key is the only guard."""
    settings = app_settings(registry, f"hostileoff{uuid.uuid4().hex[:8]}", roles=False)
    with local_host(devstack, tmp_path_factory.mktemp("roles-off"), settings) as (url, key, log_path):
        yield Api(url, key, registry.name, registry.login_server, log_path)


def test_roles_off_a_principal_grants_nothing_without_the_key(roles_off: Api) -> None:
    forged = {PRINCIPAL_HEADER: principal(OPERATE, READ)}
    for method, path in (("GET", "/api/registries"), ("POST", "/api/verifications")):
        for credentials in ({}, {"x-functions-key": "forged-key"}):
            answer = httpx.request(method, roles_off.url + path, headers={**forged, **credentials})
            # The host's own 401 (no body): the request never reached the app.
            assert (answer.status_code, answer.content) == (401, b""), (method, path, credentials)
        wrong_code = httpx.request(method, roles_off.url + path, params={"code": "x"}, headers=forged)
        assert wrong_code.status_code == 401


def test_roles_off_the_header_is_ignored_with_the_key(roles_off: Api) -> None:
    for name, header in {"no roles at all": claims(role_typ=None), **MALFORMED}.items():
        with roles_off.client() as client:
            client.headers[PRINCIPAL_HEADER] = header
            answer = client.get("/api/registries")
            assert answer.status_code == 200, (name, answer.text)
            assert [r["name"] for r in answer.json()["registries"]] == [roles_off.registry]


def test_roles_on_no_principal_is_401_even_with_the_key(target: Target) -> None:
    with target.api.client() as client:
        for method, path in (("GET", "/api/registries"), ("POST", "/api/cleanup/plan")):
            assert status_and_error(client.request(method, path)) == (401, "Unauthorized")
            client.headers[PRINCIPAL_HEADER] = ""
            assert status_and_error(client.request(method, path)) == (401, "Unauthorized")
            del client.headers[PRINCIPAL_HEADER]


def test_roles_on_a_forged_principal_without_the_key_never_reaches_the_app(target: Target) -> None:
    answer = httpx.get(target.api.url + "/api/registries", headers={PRINCIPAL_HEADER: principal(READ)})
    assert (answer.status_code, answer.content) == (401, b"")


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_roles_on_a_malformed_principal_is_401(target: Target, name: str) -> None:
    with target.api.client(key=True) as client:
        client.headers[PRINCIPAL_HEADER] = MALFORMED[name]
        answer = client.get("/api/registries")
    assert status_and_error(answer) == (401, "Unauthorized"), name
    assert PRINCIPAL_HEADER in answer.json()["error"]["message"]


def test_roles_on_read_cannot_change_anything(target: Target) -> None:
    stored = target.verdicts()
    bodies = {
        "/api/verifications": {"registry": target.api.registry, "repository": "a/b", "tag": "v1"},
        "/api/cleanup/plan": {},
        "/api/resource-groups/rg-lab/extend": {"hours": 1},
    }
    with target.api.client(READ) as reader:
        for path, body in bodies.items():
            answer = reader.post(path, json=body)
            assert status_and_error(answer) == (403, "Forbidden"), path
            assert answer.json()["error"]["detail"] == {"requiredRole": OPERATE}
    assert target.verdicts() == stored


@pytest.mark.parametrize(
    "header",
    [
        # A role under a claim type that is not a role claim.
        claims({"typ": "groups", "val": OPERATE}, {"typ": "scp", "val": OPERATE}),
        claims({"typ": "name", "val": OPERATE}),
        # Look-alikes of the role and of the claim type.
        claims({"typ": "roles", "val": OPERATE.lower()}, {"typ": "roles", "val": f" {OPERATE}"}),
        claims({"typ": "Roles", "val": OPERATE}, {"typ": "roles ", "val": OPERATE}),
        # The role inside a value that is not a string.
        claims({"typ": "roles", "val": [OPERATE]}, {"typ": "roles", "val": {"role": OPERATE}}),
        claims({"typ": "roles", "value": OPERATE}, {"roles": OPERATE}),
        # role_typ that is not a string cannot widen what counts as a role.
        claims({"typ": "groups", "val": OPERATE}, role_typ=["groups"]),  # type: ignore[arg-type]
    ],
    ids=[
        "other-typ",
        "name-typ",
        "look-alike-value",
        "look-alike-typ",
        "non-string-val",
        "no-val",
        "typ-list",
    ],
)
def test_roles_on_a_role_under_another_claim_type_does_not_count(target: Target, header: str) -> None:
    with target.api.client(READ) as client:
        client.headers[PRINCIPAL_HEADER] = header
        assert status_and_error(client.post("/api/cleanup/plan", json={})) == (403, "Forbidden")


def test_role_typ_is_trusted(target: Target) -> None:
    """The document names its own role claim type, so a forged document can grant itself any role.

    Not a hole behind Easy Auth, which writes role_typ itself and drops client copies of the header;
    it is the reason roles must never be turned on without App Service authentication in front.
    """
    forged = claims({"typ": "name", "val": "mallory"}, {"typ": "groups", "val": OPERATE}, role_typ="groups")
    with target.api.client() as client:
        client.headers[PRINCIPAL_HEADER] = forged
        # Past the role check: cleanup answers that it is turned off, not that the caller lacks a role.
        assert status_and_error(client.post("/api/cleanup/plan", json={})) == (409, "Conflict")
