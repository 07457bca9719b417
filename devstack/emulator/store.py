"""Durable emulator state: one SQLite file under the state directory.

ARM ids are case-insensitive, so rows are keyed by the lowercased id while the
stored body keeps the casing the caller used, as ARM does.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRIVATE = "_"  # a record's fields the emulator keeps for itself start with it; Azure never shows them


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as Azure returns it: without the emulator's private fields."""
    return {k: v for k, v in record.items() if not k.startswith(PRIVATE)}


class Store:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        # Registry admin passwords and webhook URLs with their keys live here: private to its owner
        # (SQLite gives the -wal and -shm files the database's mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Writes come from the event loop (a push's notification stores its manifest and deliveries): in
        # WAL mode NORMAL syncs at checkpoints, not on every commit, and still survives a crash of the
        # process (only a power cut may lose the last commits, which devstack can afford).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources ("
            " key TEXT PRIMARY KEY, kind TEXT NOT NULL, parent TEXT NOT NULL,"
            " seq INTEGER NOT NULL, body TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_parent ON resources(kind, parent, seq)")
        # Pages in id order, of a parent's children (groups of a subscription) or of everything under an
        # id (the locks of a subscription): an index range each, so a page costs what it returns.
        self._db.execute("CREATE INDEX IF NOT EXISTS by_parent_key ON resources(kind, parent, key)")
        self._db.execute("CREATE INDEX IF NOT EXISTS by_kind_key ON resources(kind, key)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER)")
        # ARM's tag filter (`$filter=tagName eq … and tagValue eq …`) from an index as well: names lower-cased
        # (ARM compares them without case), values as written.
        new = not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tags'").fetchone()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tags (kind TEXT NOT NULL, parent TEXT NOT NULL, name TEXT NOT NULL,"
            " value TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, parent, name, value, key))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS tags_by_name ON tags(kind, parent, name, key)")
        self._db.execute("CREATE INDEX IF NOT EXISTS tags_by_key ON tags(key)")
        if new:  # a state directory from before the index: index what it holds
            for key, kind, parent, body in self._db.execute("SELECT key, kind, parent, body FROM resources"):
                self._index_tags(key, kind, parent, json.loads(body))

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM resources WHERE key = ? AND kind = ?", (key.lower(), kind)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, parent: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                existing = self._db.execute(
                    "SELECT seq FROM resources WHERE key = ?", (key.lower(),)
                ).fetchone()
                seq = existing[0] if existing else self._next("seq")
                self._db.execute(
                    "INSERT OR REPLACE INTO resources (key, kind, parent, seq, body) VALUES (?, ?, ?, ?, ?)",
                    (key.lower(), kind, parent.lower(), seq, json.dumps(body)),
                )
                self._db.execute("DELETE FROM tags WHERE key = ?", (key.lower(),))
                self._index_tags(key.lower(), kind, parent.lower(), body)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _index_tags(self, key: str, kind: str, parent: str, body: Mapping[str, Any]) -> None:
        tags = body.get("tags")
        if isinstance(tags, dict) and tags:
            self._db.executemany(
                "INSERT OR IGNORE INTO tags (kind, parent, name, value, key) VALUES (?, ?, ?, ?, ?)",
                [(kind, parent, str(name).lower(), str(value), key) for name, value in tags.items()],
            )

    def delete(self, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM resources WHERE key = ?", (key.lower(),))
            self._db.execute("DELETE FROM tags WHERE key = ?", (key.lower(),))
        return cur.rowcount > 0

    def delete_children(self, parent: str) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM resources WHERE parent = ?", (parent.lower(),))
            self._db.execute("DELETE FROM tags WHERE parent = ?", (parent.lower(),))
        return cur.rowcount

    def tagged(
        self, kind: str, parent: str, name: str, value: str | None, after: str | None, limit: int
    ) -> builtins.list[dict[str, Any]]:
        """`children`, of those with the tag `name` (any case), set to `value` when one is given."""
        args = (kind, parent.lower(), name.lower(), (after or "").lower())
        with self._lock:
            if value is None:
                rows = self._db.execute(
                    "SELECT body FROM resources WHERE key IN (SELECT DISTINCT key FROM tags WHERE kind = ?"
                    " AND parent = ? AND name = ? AND key > ? ORDER BY key LIMIT ?) ORDER BY key",
                    (*args, limit),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM resources WHERE key IN (SELECT key FROM tags WHERE kind = ? AND"
                    " parent = ? AND name = ? AND key > ? AND value = ? ORDER BY key LIMIT ?) ORDER BY key",
                    (*args, value, limit),
                ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def items(self, kind: str, parent: str) -> dict[str, dict[str, Any]]:
        """Every row of a kind under a parent, by (lowercased) key: one query instead of one per key."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, body FROM resources WHERE kind = ? AND parent = ?", (kind, parent.lower())
            ).fetchall()
        return {key: json.loads(body) for key, body in rows}

    def list(self, kind: str, parent: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if parent is None:
                rows = self._db.execute(
                    "SELECT body FROM resources WHERE kind = ? ORDER BY seq", (kind,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM resources WHERE kind = ? AND parent = ? ORDER BY seq",
                    (kind, parent.lower()),
                ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def find(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The kind and body of whatever is stored under an id."""
        with self._lock:
            row = self._db.execute(
                "SELECT kind, body FROM resources WHERE key = ?", (key.lower(),)
            ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def children(
        self, kind: str, parent: str, after: str | None, limit: int
    ) -> builtins.list[dict[str, Any]]:
        """Up to `limit` rows of a kind under a parent whose key sorts after `after`, in key order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM resources WHERE kind = ? AND parent = ? AND key > ? ORDER BY key LIMIT ?",
                (kind, parent.lower(), (after or "").lower(), limit),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def under(
        self, kind: str, prefix: str, after: str | None = None, limit: int = -1
    ) -> builtins.list[dict[str, Any]]:
        """Rows of a kind whose key is under the id `prefix` (everything below it, at any depth) and sorts
        after `after`, in key order; `limit` -1 for all."""
        low = prefix.lower().rstrip("/") + "/"
        high = low[:-1] + "0"  # the first string after every one that starts with `low` ('0' follows '/')
        start = max(low, (after or "").lower())
        # INDEXED BY: on its own SQLite takes the key's index and walks every kind under the prefix (the
        # groups too), which made a subscription's lock page grow with its groups.
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM resources INDEXED BY by_kind_key"
                " WHERE kind = ? AND key > ? AND key < ? ORDER BY key LIMIT ?",
                (kind, start, high, limit),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def next_counter(self, name: str) -> int:
        with self._lock:
            return self._next(name)

    def _next(self, name: str) -> int:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (name,),
        )
        return int(self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
