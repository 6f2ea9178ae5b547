"""One state store per test (per event loop: pytest-asyncio gives each test its own), shared
by the test's probe runs as the daemon's store is shared by its runs."""

from __future__ import annotations

import asyncio
import weakref

from lakeprobe.probes.core.state import StateStore

_STORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StateStore] = (
    weakref.WeakKeyDictionary()
)


def loop_state() -> StateStore:
    return _STORES.setdefault(asyncio.get_running_loop(), StateStore.memory())
