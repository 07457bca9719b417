"""The host's keys: made once per state directory, never hard-coded, kept in a 0600 file.

They follow the Functions host's model:
- the master key (`_master`) passes every check, including ADMIN-level functions;
- the host key `default` (a `functionKeys` entry at host level) passes FUNCTION-level functions;
- the system key `eventgrid_extension` guards the Event Grid webhook (the master key also does).
A key is presented as the `x-functions-key` header or the `code` query parameter.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .errors import HostError

KEYS_FILE = "keys.json"


def _new_key() -> str:
    # Same shape as the host's generated keys: URL-safe, long enough to be unguessable.
    return secrets.token_urlsafe(40)


def _same(presented: str, key: str) -> bool:
    # Bytes, so that a non-ASCII guess is a mismatch rather than a TypeError.
    return hmac.compare_digest(presented.encode(), key.encode())


@dataclass(frozen=True)
class HostKeys:
    master: str
    function: str
    eventgrid: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> HostKeys:
        path = state_dir / KEYS_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text())
                return cls(
                    master=data["masterKey"],
                    function=data["functionKeys"]["default"],
                    eventgrid=data["systemKeys"]["eventgrid_extension"],
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise HostError(
                    f"{path} is not a valid keys file ({exc}); delete it to get new keys"
                ) from exc
        keys = cls(master=_new_key(), function=_new_key(), eventgrid=_new_key())
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = {
            "masterKey": keys.master,
            "functionKeys": {"default": keys.function},
            "systemKeys": {"eventgrid_extension": keys.eventgrid},
        }
        # Create it private from the start rather than chmod after writing.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(document, out, indent=2)
        return keys

    def allows(self, level: str, presented: str | None) -> bool:
        """Whether `presented` opens a function of auth level `level` (ANONYMOUS, FUNCTION, ADMIN)."""
        if level == "ANONYMOUS":
            return True
        if not presented:
            return False
        accepted = [self.master] if level == "ADMIN" else [self.master, self.function]
        return any(_same(presented, key) for key in accepted)

    def allows_webhook(self, presented: str | None) -> bool:
        if not presented:
            return False
        return any(_same(presented, key) for key in (self.master, self.eventgrid))
