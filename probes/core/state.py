"""What probes remember between runs, owned by the daemon and handed to each run in its context.

Two kinds of memory, both per store (never module globals):
- persistent records: small JSON values by (scope, key) in SQLite (WAL) under a state
  directory, committed as they are written, so a restart (or a crash, which loses at most the
  run in flight) continues where it left off: TPC source files to re-upload now; outstanding
  tape requests and canary inventories next;
- process-local: asyncio locks by key (one upload of a source file at a time), and objects
  that must never reach the disk (tokens token-authz holds until they have expired).

Never put a secret in a record: the file is plain text on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_NAME = "state.sqlite"
LOCK_NAME = "daemon.lock"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS record (scope TEXT, key TEXT, value TEXT, PRIMARY KEY (scope, key))"
)


class StateError(Exception):
    """The state store cannot be opened; the message names the file and what is wrong."""


class StateStore:
    """Use `StateStore.open(directory)` (the daemon: `exclusive=True`), or `memory()`."""

    def __init__(
        self,
        db: sqlite3.Connection,
        where: str,
        lock_fd: int | None = None,
        *,
        one_run: bool = False,
    ) -> None:
        self._db = db
        self._where = where
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()  # one connection, used from the loop and from threads
        self._locks: dict[str, asyncio.Lock] = {}
        self._held: dict[str, OrderedDict[Any, Any]] = {}
        self.one_run = one_run  # see memory()

    @classmethod
    def open(cls, directory: Path, *, exclusive: bool = False) -> StateStore:
        """Open (or create) the store in `directory`. `exclusive`: refuse a second daemon on
        the same directory (an flock held for the process's lifetime)."""
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise StateError(f"state_dir {directory}: cannot create it: {error.strerror}") from None
        lock_fd = _lock(directory / LOCK_NAME) if exclusive else None
        path = directory / FILE_NAME
        try:
            db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM record").fetchone()
        except sqlite3.Error as error:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StateError(f"state file {path}: {error}") from None
        return cls(db, str(path), lock_fd)

    @classmethod
    def memory(cls, *, one_run: bool = False) -> StateStore:
        """A store that lives as long as the process (tests, one-off use); `one_run`: only
        as long as one run, which then has no later run to leave work to."""
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.execute(_SCHEMA)
        return cls(db, ":memory:", one_run=one_run)

    def __repr__(self) -> str:
        return f"StateStore({self._where})"

    def close(self) -> None:
        with self._mutex:
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- persistent records ------------------------------------------------------------
    def get(self, scope: str, key: str) -> Any:
        """The value stored under (scope, key), or None."""
        with self._mutex:
            row = self._db.execute(
                "SELECT value FROM record WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, scope: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value; committed when this returns."""
        text = json.dumps(value, separators=(",", ":"))
        with self._mutex:
            self._db.execute(
                "INSERT INTO record (scope, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
                (scope, key, text),
            )

    def delete(self, scope: str, key: str) -> None:
        with self._mutex:
            self._db.execute("DELETE FROM record WHERE scope = ? AND key = ?", (scope, key))

    def items(self, scope: str) -> Iterator[tuple[str, Any]]:
        with self._mutex:
            rows = self._db.execute(
                "SELECT key, value FROM record WHERE scope = ? ORDER BY key", (scope,)
            ).fetchall()
        for key, value in rows:
            yield key, json.loads(value)

    # --- process-local coordination ----------------------------------------------------
    def lock(self, key: str) -> asyncio.Lock:
        """The asyncio lock for `key`, the same for every run of this process."""
        return self._locks.setdefault(key, asyncio.Lock())

    def held(self, scope: str) -> OrderedDict[Any, Any]:
        """Live objects runs hand on to later runs of this process and that must never reach
        the disk (tokens held for later use): lost on restart, by design."""
        return self._held.setdefault(scope, OrderedDict())


def _lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StateError(f"state lock {path}: cannot open it: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(
            f"state lock {path}: another lakeprobe daemon uses this state_dir"
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd
