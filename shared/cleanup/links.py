"""The one-click extend link of a lab's warning: signed, expiring with the lab, used once.

A link carries its claims (subscription, group, the lab expiry it was issued for, the hours it adds, a
nonce, the link's own expiry) as base64url JSON, and an HMAC-SHA256 of them under CLEANUP_LINK_KEY. The
signature is checked before anything in the claims is believed; the nonce is recorded with an insert that
conflicts on a second use (table `cleanupruns`, partition `extend-link`), before the lab is touched.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

from ..clients import ensure_table, table_error
from ..clock import Clock
from ..config import Settings
from ..errors import ConfigurationError, Conflict, Forbidden, InvalidInput
from .extension import LabExtension
from .planner import iso
from .scope import ensure_enabled

LINK_PATH = "/api/cleanup/extend-link"
MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 2048
USED_PARTITION = "extend-link"
# Domain separation: a MAC made for something else under the same key is never a valid link.
CONTEXT = b"dockmaster.cleanup.extend-link.v1\n"

SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]")  # as ARM names resource groups (shared/api/params.py)
NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")
TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")  # payload, then a 32-byte MAC unpadded


def link_key(raw: str) -> bytes:
    """CLEANUP_LINK_KEY decoded: base64 of at least 32 random bytes."""
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError("CLEANUP_LINK_KEY must be base64") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"CLEANUP_LINK_KEY must decode to at least {MIN_KEY_BYTES} bytes")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()


@dataclasses.dataclass(frozen=True)
class ExtendLink:
    subscription: str
    group: str
    lab_expiry: dt.datetime  # the expiry the link was issued for; the lab must still have it
    hours: float
    nonce: str
    expires: dt.datetime  # the link's own end: the lab's expiry

    @classmethod
    def issue(cls, subscription: str, group: str, lab_expiry: dt.datetime, hours: float) -> ExtendLink:
        return cls(subscription, group, lab_expiry, hours, secrets.token_urlsafe(24), lab_expiry)

    def claims(self) -> dict[str, Any]:
        return {
            "s": self.subscription,
            "g": self.group,
            "e": iso(self.lab_expiry),
            "h": self.hours,
            "n": self.nonce,
            "x": iso(self.expires),
        }

    def token(self, key: bytes) -> str:
        payload = _b64(json.dumps(self.claims(), separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{_b64(_mac(key, payload))}"

    def url(self, key: bytes, public_url: str) -> str:
        return f"{public_url}{LINK_PATH}?t={self.token(key)}"


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("not a time")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


def _from_claims(claims: Any) -> ExtendLink:
    """The link a correctly signed payload describes; its values are checked all the same."""
    if not isinstance(claims, dict) or set(claims) != {"s", "g", "e", "h", "n", "x"}:
        raise ValueError("unexpected claims")
    hours = claims["h"]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours < 1e6:
        raise ValueError("hours")
    for name, pattern in (("s", SUBSCRIPTION), ("g", GROUP), ("n", NONCE)):
        if not isinstance(claims[name], str) or not pattern.fullmatch(claims[name]):
            raise ValueError(name)
    return ExtendLink(
        claims["s"], claims["g"], _time(claims["e"]), float(hours), claims["n"], _time(claims["x"])
    )


def verify(key: bytes, token: str, now: dt.datetime) -> ExtendLink:
    """The link `token` stands for, if its signature holds and it has not expired."""
    if len(token) > MAX_TOKEN_CHARS or not TOKEN.fullmatch(token):
        raise InvalidInput("this is not an extend link (the token is malformed)")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_mac(key, payload), _unb64(signature)):
        raise Forbidden("this link's signature is not valid: it was not issued by this app, or was altered")
    try:
        link = _from_claims(json.loads(_unb64(payload)))
    except ValueError as exc:  # signed by this key yet not a link: refused all the same
        raise InvalidInput("this link's claims are not valid") from exc
    if now >= link.expires:
        raise Forbidden(f"this link expired at {iso(link.expires)}, when the lab's expiry came")
    return link


class UsedLinks:
    """The nonces of links already used, one entity each; inserting one twice conflicts (replay)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def claim(self, link: ExtendLink, now: dt.datetime) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        ensure_table(self._table, "cleanup runs")
        entity = {
            "PartitionKey": USED_PARTITION,
            "RowKey": link.nonce,
            "subscription": link.subscription,
            "group": link.group,
            "usedAt": iso(now),
        }
        try:
            self._table.create_entity(entity)
        except ResourceExistsError as exc:
            raise Conflict("this link was already used: each extend link works once") from exc
        except AzureError as exc:
            raise table_error(exc, "recording the use of an extend link") from exc


@dataclasses.dataclass
class LinkExtension:
    """Extending a lab by its warning's link: the claims checked, the nonce used up, then the extension
    (which refuses protected, managed, locked, deleting and deleted groups, and passing the maximum)."""

    settings: Settings
    extension: LabExtension
    used: UsedLinks
    clock: Clock

    def _key(self) -> bytes:
        ensure_enabled(self.settings)
        if not self.settings.cleanup_link_key.get_secret_value():
            raise Conflict("extend links are turned off (no CLEANUP_LINK_KEY)")
        return link_key(self.settings.cleanup_link_key.get_secret_value())

    def check(self, token: str) -> ExtendLink:
        """The link, if it is one this app signed and it has not expired (used or not: that is the POST's)."""
        return verify(self._key(), token, self.clock.now())

    def redeem(self, token: str) -> tuple[ExtendLink, dt.datetime]:
        """Extend the lab the link names: the link and the new expiry. The nonce is used up first, so a
        link refused after that (locked, changed) stays used: a link is tried once."""
        link = verify(self._key(), token, self.clock.now())
        self.used.claim(link, self.clock.now())
        new = self.extension.extend(link.group, link.hours, link.subscription, issued_for=link.lab_expiry)
        return link, new
