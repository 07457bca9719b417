"""Pure parts of the emulator: tag filters, tokens."""

from __future__ import annotations

import time

import jwt
import pytest

from devstack.emulator.arm.groups import parse_tag_filter
from devstack.emulator.errors import ArmError
from devstack.emulator.tokens import TokenService


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tagName eq 'purpose' and tagValue eq 'lab'", ("purpose", "lab")),
        ("tagname eq 'purpose'", ("purpose", None)),
        ("tagName eq 'o''brien' and tagValue eq 'it''s'", ("o'brien", "it's")),
    ],
)
def test_tag_filter(raw: str, expected: tuple[str, str | None]) -> None:
    assert parse_tag_filter(raw) == expected


def test_unsupported_filter_is_a_400() -> None:
    with pytest.raises(ArmError) as caught:
        parse_tag_filter("name eq 'x'")
    assert caught.value.status == 400


def test_token_checks() -> None:
    tokens = TokenService("k" * 48, "tenant", "https://127.0.0.1:1")
    good, _ = tokens.issue("https://management.azure.com")
    assert tokens.check_arm(f"Bearer {good}", "https://127.0.0.1:1")["tid"] == "tenant"
    wrong_audience, _ = tokens.issue("https://storage.azure.com")
    expired = jwt.encode({"aud": "https://management.azure.com", "exp": int(time.time()) - 3600}, "k" * 48)
    forged = jwt.encode({"aud": "https://management.azure.com", "exp": int(time.time()) + 60}, "x" * 48)
    cases = [
        (None, "AuthenticationFailed"),
        ("Basic abc", "AuthenticationFailed"),
        (f"Bearer {wrong_audience}", "InvalidAuthenticationTokenAudience"),
        (f"Bearer {expired}", "ExpiredAuthenticationToken"),
        (f"Bearer {forged}", "InvalidAuthenticationToken"),
    ]
    for header, code in cases:
        with pytest.raises(ArmError) as caught:
            tokens.check_arm(header, "https://127.0.0.1:1")
        assert (caught.value.status, caught.value.code) == (401, code)
