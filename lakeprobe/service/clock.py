"""The scheduler's time: monotonic only, injectable so tests can drive it.

Wall-clock time (time.time) never decides when anything runs: a step of the system clock in
either direction (NTP correction, a VM resumed, a manual `date -s`) must neither stop
probing nor fire every target at once. Wall time only stamps results for Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until `event` is set or `timeout` seconds of this clock have passed."""
        ...


class LoopClock:
    """The event loop's own clock (monotonic; uvloop's counts whole milliseconds)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        if event.is_set():  # most runs get their slots at once: no task, no timer
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
