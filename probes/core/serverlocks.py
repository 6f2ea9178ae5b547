"""One test at a time per server: asyncio locks by (host, port), held by whoever owns them (the
daemon's ProbeResources, one CLI run), never by a probe module.

A server that runs one test at a time (iperf3 answers a second client "the server is busy")
must not be hit by two of our own targets at once. The locks are kept weakly: a lock exists
while some task holds or waits for it, so the registry stays as small as the tests in flight.
"""

from __future__ import annotations

import asyncio
import weakref


class ServerLocks:
    """asyncio.Lock per (host, port); host names compare case-insensitively."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def lock(self, host: str, port: int) -> asyncio.Lock:
        """The lock of that server; the caller keeps a reference while it holds or awaits it."""
        key = (host.lower(), port)
        found = self._locks.get(key)
        if found is None:
            found = self._locks[key] = asyncio.Lock()
        return found

    def __len__(self) -> int:
        return len(self._locks)
