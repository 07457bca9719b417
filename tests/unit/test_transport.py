"""The app's HTTP session: the environment's proxies and CA bundle as requests applies them, read once per
host, and no netrc credential ever attached."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from shared.transport import EnvironmentOnce, transport


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "inside.test")
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HOME", str(tmp_path))
    return bundle


def test_proxies_and_the_ca_bundle_are_requests_own(environment: Path) -> None:
    session = EnvironmentOnce()
    outside = session.merge_environment_settings("https://outside.test/v2/", {}, None, True, None)
    assert outside["proxies"]["https"] == "http://proxy.invalid:3128"
    assert outside["verify"] == str(environment)
    inside = session.merge_environment_settings("https://inside.test/v2/", {}, None, True, None)
    assert "https" not in inside["proxies"], "NO_PROXY is honoured"
    unverified = session.merge_environment_settings("https://outside.test/", {}, None, False, None)
    assert unverified["verify"] is False, "a caller's own choice stays"
    plain = requests.Session().merge_environment_settings("https://outside.test/v2/", {}, None, True, None)
    assert (outside["proxies"], outside["verify"]) == (plain["proxies"], plain["verify"])


def test_the_environment_is_read_once_per_host(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = EnvironmentOnce()
    first = session.merge_environment_settings("https://outside.test/a", {}, None, True, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://other.invalid:1")
    again = session.merge_environment_settings("https://outside.test/b", {}, None, True, None)
    assert again["proxies"] == first["proxies"]
    assert (
        EnvironmentOnce().merge_environment_settings("https://outside.test/", {}, None, True, None)[
            "proxies"
        ]["https"]
        == "http://other.invalid:1"
    ), "a new client reads the environment as it is"


def test_no_netrc_credential_is_attached(environment: Path) -> None:
    (environment.parent / ".netrc").write_text("machine outside.test login user password secret\n")
    (environment.parent / ".netrc").chmod(0o600)
    prepared = EnvironmentOnce().prepare_request(requests.Request("GET", "https://outside.test/v2/"))
    assert "Authorization" not in prepared.headers
    with_netrc = requests.Session().prepare_request(requests.Request("GET", "https://outside.test/v2/"))
    assert "Authorization" in with_netrc.headers, "requests' default would have sent it"


def test_each_client_gets_its_own_session() -> None:
    first, second = transport(), transport()
    assert isinstance(first.session, EnvironmentOnce)
    assert first.session is not second.session
