"""The one-click extend link: what is signed, and each way a link is refused (forged, altered, expired,
replayed, past the maximum, for a lab whose expiry changed, protected, locked, deleting or gone)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from shared.cleanup.links import ExtendLink, link_key, verify
from shared.cleanup.planner import Lock, iso
from shared.errors import ConfigurationError, Conflict, Forbidden, InvalidInput, NotFound
from tests.support.links import EXPIRY, KEY, NOW, SUB, World


def test_a_link_extends_its_lab_once_and_only_once() -> None:
    world = World()
    token = world.token()
    link, new = world.links.redeem(token)
    assert (link.group, new) == ("lab1", EXPIRY + dt.timedelta(hours=24))
    assert world.expiry() == iso(EXPIRY + dt.timedelta(hours=24))
    with pytest.raises(Conflict, match="already used"):
        world.links.redeem(token)
    assert world.expiry() == iso(EXPIRY + dt.timedelta(hours=24)), "the replay changed nothing"


def test_a_link_checked_but_not_redeemed_changes_nothing() -> None:
    world = World()
    token = world.token()
    assert world.links.check(token).lab_expiry == EXPIRY
    assert world.expiry() == iso(EXPIRY)
    assert world.table.rows == {}, "a GET (a link prefetcher) uses nothing up"
    world.links.redeem(token)


def test_the_signature_covers_every_claim() -> None:
    link = ExtendLink.issue(SUB, "lab1", EXPIRY, 24)
    payload, signature = link.token(KEY).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for name, value in (
        ("g", "lab2"),
        ("h", 48),
        ("e", iso(EXPIRY + dt.timedelta(hours=1))),
        ("n", "x" * 32),
    ):
        altered = json.dumps({**claims, name: value}, separators=(",", ":"), sort_keys=True).encode()
        forged = base64.urlsafe_b64encode(altered).rstrip(b"=").decode() + "." + signature
        with pytest.raises(Forbidden, match="signature is not valid"):
            verify(KEY, forged, NOW)


def test_a_link_signed_with_another_key_is_refused() -> None:
    token = ExtendLink.issue(SUB, "lab1", EXPIRY, 24).token(bytes(32))
    with pytest.raises(Forbidden, match="signature is not valid"):
        World().links.redeem(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "x" * 3000, "a.b.c", "é." + "A" * 43])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        verify(KEY, token, NOW)


def test_an_expired_link_is_refused_and_not_used_up() -> None:
    world = World()
    world.clock.current = EXPIRY
    with pytest.raises(Forbidden, match="expired"):
        world.links.redeem(world.token())
    assert world.table.rows == {}


def test_a_link_for_an_expiry_the_lab_no_longer_has_is_refused() -> None:
    world = World()
    with pytest.raises(Conflict, match="not the expiry"):
        world.links.redeem(world.token(expiry=EXPIRY - dt.timedelta(hours=1)))
    assert world.expiry() == iso(EXPIRY)


def test_an_extension_past_the_maximum_is_refused() -> None:
    world = World()
    with pytest.raises(InvalidInput, match="CLEANUP_MAX_EXTENSION_HOURS"):
        world.links.redeem(world.token(hours=47))  # 6 h left + 47 h > 48 h from now
    assert world.expiry() == iso(EXPIRY)


@pytest.mark.parametrize(
    ("world", "error", "message"),
    [
        (lambda: World(("do-not-delete", "true")), Conflict, "cleanup never deletes it"),
        (lambda: World(state="Deleting"), Conflict, "already being deleted"),
    ],
)
def test_a_link_for_a_lab_cleanup_may_not_extend_is_refused(
    world: Any, error: type[Exception], message: str
) -> None:
    built: World = world()
    with pytest.raises(error, match=message):
        built.links.redeem(built.token())


def test_a_link_for_a_locked_or_deleted_lab_is_refused() -> None:
    world = World()
    world.inventory.locked["lab1"] = [Lock("frozen", "ReadOnly")]
    with pytest.raises(Conflict, match="locked"):
        world.links.redeem(world.token())
    del world.inventory.groups["lab1"]
    with pytest.raises(NotFound):
        world.links.redeem(world.token())


def test_links_are_off_without_a_key_and_a_short_key_is_refused() -> None:
    with pytest.raises(Conflict, match="CLEANUP_LINK_KEY"):
        World(CLEANUP_LINK_KEY="").links.check(World().token())
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        link_key(base64.b64encode(bytes(31)).decode())
    with pytest.raises(ConfigurationError, match="base64"):
        link_key("not base64!")
