"""One state store and one set of resources per test (per event loop: pytest-asyncio gives
each test its own), shared by the test's probe runs as the daemon's are shared by its runs."""

from __future__ import annotations

import asyncio
import weakref

from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore

_STORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StateStore] = (
    weakref.WeakKeyDictionary()
)


def loop_state() -> StateStore:
    return _STORES.setdefault(asyncio.get_running_loop(), StateStore.memory())


_RESOURCES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProbeResources] = (
    weakref.WeakKeyDictionary()
)


def loop_resources() -> ProbeResources:
    return _RESOURCES.setdefault(asyncio.get_running_loop(), ProbeResources())


class CadenceClock:
    """The wall clock of probes.common.cadence (the `cadence_clock` fixture puts it there),
    moved only by the test: `clock.now += seconds`."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now
