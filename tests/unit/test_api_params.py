"""The API's input parsing: names, image references, build options, verification ids, principals."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.api import auth, params
from shared.errors import InvalidInput, Unauthorized
from shared.tasks import SourceUpload, image_command, parse_image, smoke_command

DIGEST = "sha256:" + "ab" * 32


def test_registry_and_run_names() -> None:
    assert params.registry_name("Dockmaster01") == "Dockmaster01"
    for bad in ("abc", "has-dash", "x" * 51, "evil.azurecr.io"):
        with pytest.raises(InvalidInput, match="not a registry name"):
            params.registry_name(bad)
    assert params.run_id("dm12") == "dm12"
    with pytest.raises(InvalidInput, match="not a run id"):
        params.run_id("../runs")
    with pytest.raises(InvalidInput):  # `$` would let a trailing newline through
        params.run_id("dm12\n")
    with pytest.raises(InvalidInput):
        params.registry_name("Dockmaster01\n")


@pytest.mark.parametrize("name", ["a", "rg-lab_1.(x)", "x" * 90, "Übung", "(", "_", "a.b"])
def test_resource_group_names_as_arm_allows(name: str) -> None:
    assert params.resource_group(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 91, "lab.", ".", "has space", "a/b", "a#b", "a\n", "a\x00", "a&b"]
)
def test_resource_group_names_arm_refuses(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a resource group name"):
        params.resource_group(name)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("hello:v1", (None, "hello", "v1", None)),
        (f"team/hello@{DIGEST}", (None, "team/hello", None, DIGEST)),
        (f"hello:v1@{DIGEST}", (None, "hello", "v1", DIGEST)),
        ("reg.azurecr.io/team/hello:v1", ("reg.azurecr.io", "team/hello", "v1", None)),
        ("localhost:5000/hello:v1", ("localhost:5000", "hello", "v1", None)),
        ("localhost/hello:v1", ("localhost", "hello", "v1", None)),
    ],
)
def test_parse_image(reference: str, expected: tuple[str | None, ...]) -> None:
    image = parse_image(reference)
    assert (image.host, image.repository, image.tag, image.digest) == expected


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("hello", "names no version"),
        ("Hello:v1", "not a valid OCI repository name"),
        ("hello:bad tag", "white space"),
        ("hello@sha256:short", "not a sha256 digest"),
        ("hello:" + "t" * 200, "not a valid OCI tag"),
        ("x" * 600, "1 to 512 characters"),
        ("", "1 to 512 characters"),
    ],
)
def test_parse_image_refuses(reference: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_image(reference)


def test_image_command_is_this_registry_and_quotes_args() -> None:
    assert image_command("team/hello", ["a b", "c"], tag="v1") == "$Registry/team/hello:v1 'a b' c"
    assert image_command("hello", [], digest=DIGEST) == f"$Registry/hello@{DIGEST}"
    assert smoke_command("hello", DIGEST, ["--version"]) == f"$Registry/hello@{DIGEST} --version"


def test_build_options() -> None:
    assert params.platform("linux/arm/v7") == {"os": "Linux", "architecture": "arm", "variant": "v7"}
    assert params.platform("Windows/amd64") == {"os": "Windows", "architecture": "amd64"}
    with pytest.raises(InvalidInput, match="not a platform"):
        params.platform("plan9/mips")
    assert params.dockerfile("docker/Dockerfile.prod") == "docker/Dockerfile.prod"
    for bad in ("/etc/passwd", "../Dockerfile", "a//b", "a\\b", "x" * 300, ""):
        with pytest.raises(InvalidInput, match="not a Dockerfile path"):
            params.dockerfile(bad)
    assert params.build_arg_pairs(["A=1", "B_2=x=y", "EMPTY="]) == {"A": "1", "B_2": "x=y", "EMPTY": ""}
    with pytest.raises(InvalidInput, match="not NAME=VALUE"):
        params.build_arg_pairs(["novalue"])
    with pytest.raises(InvalidInput, match="given twice"):
        params.build_arg_pairs(["A=1", "A=2"])
    with pytest.raises(InvalidInput, match="not a build argument name"):
        params.build_arg_pairs(["1A=x"])
    with pytest.raises(InvalidInput, match="no control characters"):
        params.build_args({"A": "line\nbreak"})
    with pytest.raises(InvalidInput, match="at most 32"):
        params.build_args({f"A{i}": "" for i in range(33)})
    assert params.source_url("https://example.com/ctx.tar.gz") == "https://example.com/ctx.tar.gz"
    for bad in ("http://example.com/x", "file:///etc", "https://", "https://a/b c", "https://" + "a" * 3000):
        with pytest.raises(InvalidInput, match="https URL"):
            params.source_url(bad)
    for port in ("99999", "x", "-1"):
        with pytest.raises(InvalidInput, match="invalid port"):
            params.source_url(f"https://example.com:{port}/x")


def test_verification_ids_round_trip_and_are_url_safe() -> None:
    vid = params.verification_id("MyRegistry", "team/app", DIGEST, "2026.11.1")
    assert all(c.isalnum() or c in "-_" for c in vid)
    assert params.parse_verification_id(vid) == ("myregistry", "team/app", DIGEST, "2026.11.1")
    for bad in ("", "not base64!", "x" * 2000, base64.urlsafe_b64encode(b"a|b").decode().rstrip("=")):
        with pytest.raises(InvalidInput, match="not a verification id"):
            params.parse_verification_id(bad)
    forged = base64.urlsafe_b64encode(f"myregistry|../etc|{DIGEST}|v".encode()).decode().rstrip("=")
    with pytest.raises(InvalidInput, match="not a verification id"):
        params.parse_verification_id(forged)


def principal(claims: list[dict[str, str]], **extra: str) -> str:
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims, **extra}).encode()).decode()


def test_principal_roles_and_name() -> None:
    found = auth.parse_principal(
        principal(
            [
                {"typ": "name", "val": "ci-pipeline"},
                {"typ": "roles", "val": auth.READ},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": auth.OPERATE},
                {"typ": "custom_role", "val": "Other"},
            ],
            role_typ="custom_role",
        )
    )
    assert found.name == "ci-pipeline"
    assert found.roles == {auth.READ, auth.OPERATE, "Other"}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("%%%", "not base64-encoded JSON"),
        (base64.b64encode(b"not json").decode(), "not base64-encoded JSON"),
        (base64.b64encode(b'{"claims": "x"}').decode(), "no list of claims"),
        ("A" * 20000, "larger than"),
    ],
)
def test_bad_principals(header: str, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        auth.parse_principal(header)


def test_source_upload_refuses_what_is_not_gzip_before_sending_anything() -> None:
    upload = SourceUpload("https://account.invalid/sources/x.tar.gz?sig=s", "x.tar.gz")
    with pytest.raises(InvalidInput, match="not gzip-compressed"):
        upload.write(b"PK\x03\x04 a zip file")
    empty = SourceUpload("https://account.invalid/sources/y.tar.gz?sig=s", "y.tar.gz")
    with pytest.raises(InvalidInput, match="empty"):
        empty.finish()


# Issue 14 (17): `$` matches before a trailing newline, `\d` any Unicode digit: names are full matches of
# ASCII patterns. Issue 14 (16): every part of a verification id is checked before it becomes a Table key.
SNEAKY_ENDINGS = ["\n", "\r", "\x00", "\u200b", "\uff21"]  # newline, CR, NUL, zero-width space, fullwidth A


@pytest.mark.parametrize("ending", SNEAKY_ENDINGS)
def test_names_refuse_trailing_control_and_look_alike_characters(ending: str) -> None:
    checks: list[Callable[[str], object]] = [
        lambda v: params.registry_name("Dockmaster01" + v),
        lambda v: params.run_id("dm12" + v),
        lambda v: params.build_args({"NAME" + v: "x"}),
        lambda v: params.build_arg_pairs([f"NAME{v}=x"]),
        lambda v: params.repository("team/app" + v),
        lambda v: params.tag("v1" + v),
        lambda v: params.digest(DIGEST + v),
        lambda v: params.platform("linux/amd64" + v),
    ]
    for check in checks:
        with pytest.raises(InvalidInput):
            check(ending)


def test_cleanup_ids_are_full_ascii_matches() -> None:
    from shared.cleanup.records import check_id

    good = "plan-20261204T120000Z-0123abcd"
    assert check_id("plan", good) == good
    for bad in (good + "\n", good + "\r", good + "\x00", "plan-２0261204T120000Z-0123abcd"):
        with pytest.raises(InvalidInput, match="not a cleanup plan id"):
            check_id("plan", bad)


def test_registry_ids_in_settings_are_full_matches() -> None:
    from shared.config import RegistryRef
    from shared.errors import ConfigurationError

    rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/dockmaster01"
    assert RegistryRef.parse(rid).name == "dockmaster01"
    kelvin = rid.replace("dockmaster01", "doc\u212amaster01")  # the Kelvin sign folds to k
    for bad in (rid + "\nx", rid.replace("/g/", "/g\n/"), rid.replace("/s/", "/s\x00/"), kelvin):
        with pytest.raises(ConfigurationError):
            RegistryRef.parse(bad)


def vid(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "version",
    ["v/1", "v\\1", "v#1", "v?1", "v\n", "v\x7f", "v\x85", "x" * 65, "v|1", "v 1", "v\u200b"],
)
def test_a_verification_id_whose_policy_version_cannot_be_a_table_key_is_refused(version: str) -> None:
    with pytest.raises(InvalidInput, match="not a verification id"):
        params.parse_verification_id(vid(f"myregistry|team/app|{DIGEST}|{version}"))


def test_verification_id_policy_versions_follow_the_policy_files_rule() -> None:
    from pydantic import ValidationError

    from shared.policy import Policy

    for version in ("2026.11.1", "v1_rc-2", "x" * 64, "v/1", "v\n", "", "x" * 65, "v 1"):
        try:
            Policy.model_validate({"version": version})
            allowed = True
        except ValidationError:
            allowed = False
        try:
            params.parse_verification_id(vid(f"myregistry|team/app|{DIGEST}|{version}"))
            parsed = True
        except InvalidInput:
            parsed = False
        assert parsed == allowed, version


# Issue 14 (18): ACR's build agent fetches a build's sourceUrl; one naming an internal address would have
# it fetch from inside Azure's network (the instance metadata service at 169.254.169.254, loopback, …).
INTERNAL_SOURCES = [
    "https://127.0.0.1/ctx.tar.gz",
    "https://127.1/ctx.tar.gz",  # inet_aton's short form
    "https://2130706433/ctx.tar.gz",  # 127.0.0.1 as one number
    "https://0x7f000001/ctx.tar.gz",
    "https://localhost/ctx.tar.gz",
    "https://LOCALHOST./ctx.tar.gz",
    "https://0.0.0.0/ctx.tar.gz",
    "https://10.1.2.3/ctx.tar.gz",
    "https://172.16.0.1:8443/ctx.tar.gz",
    "https://192.168.1.1/ctx.tar.gz",
    "https://100.64.0.1/ctx.tar.gz",  # shared address space (carrier NAT)
    "https://169.254.169.254/metadata/instance",
    "https://224.0.0.1/ctx.tar.gz",
    "https://[::1]/ctx.tar.gz",
    "https://[::]/ctx.tar.gz",
    "https://[::ffff:127.0.0.1]/ctx.tar.gz",
    "https://[::127.0.0.1]/ctx.tar.gz",  # IPv4-compatible
    "https://[::ffff:169.254.169.254]/ctx.tar.gz",
    "https://[fe80::1]/ctx.tar.gz",
    "https://[fd00::1]/ctx.tar.gz",
    "https://[64:ff9b::a9fe:a9fe]/ctx.tar.gz",  # NAT64 of 169.254.169.254
    "https://[2002:a9fe:a9fe::1]/ctx.tar.gz",  # 6to4 of 169.254.169.254
]


@pytest.mark.parametrize("url", INTERNAL_SOURCES)
def test_a_source_url_naming_an_internal_address_is_refused(url: str) -> None:
    from shared import services

    with pytest.raises(InvalidInput, match="internal address"):
        services.check_build_source(url, allowed_hosts=())


def test_public_sources_pass_and_the_allow_list_restricts_to_its_hosts() -> None:
    import socket

    from shared import services

    public = "https://93.184.215.14/ctx.tar.gz"
    assert services.check_build_source(public, allowed_hosts=()) == public
    v6 = "https://[2606:2800:220:1:248:1893:25c8:1946]/ctx.tar.gz"
    assert services.check_build_source(v6, allowed_hosts=()) == v6
    # An allow-list names the only hosts sources may come from; the operator vouches for them, so their
    # addresses are not checked (devstack's tests list one that resolves nowhere).
    listed = "https://Sources.Example.Invalid/ctx.tar.gz"
    assert services.check_build_source(listed, allowed_hosts=("sources.example.invalid",)) == listed
    with pytest.raises(InvalidInput, match="DOCKMASTER_BUILD_SOURCE_HOSTS"):
        services.check_build_source(public, allowed_hosts=("sources.example.invalid",))

    def unknown(*_: object, **__: object) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(InvalidInput, match="does not resolve"):
        services.check_build_source("https://nowhere.example/x", allowed_hosts=(), resolve=unknown)
