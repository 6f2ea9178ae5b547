"""The daemon's event loop: uvloop by default, the standard asyncio loop on request.

Every probe run is mostly loop work between C libraries: libcurl's sockets watched with
add_reader/add_writer, its timers, and XrdCl's replies handed over from XrdCl's threads with
call_soon_threadsafe. uvloop does that work in C (libuv): a run costs 5-15 % less CPU, and
one core carries ~10,000 runs a minute instead of ~9,200 (benchmarks/RESULTS.md, "The
daemon's loop"). `LAKEPROBE_EVENT_LOOP=asyncio` selects the standard loop, e.g. to rule the
loop out while debugging. `lakeprobe run` keeps the standard loop: one run gains nothing
from uvloop and would pay for importing it.

uvloop's `loop.time()` is libuv's clock: monotonic, in whole milliseconds, read once per
loop iteration. Deadlines and schedules use it; durations that are reported (steps, runs,
transfer rates) are measured with time.monotonic().
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

ENV = "LAKEPROBE_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")
T = TypeVar("T")


class EventLoopChoiceError(ValueError):
    """LAKEPROBE_EVENT_LOOP names no loop lakeprobe knows."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the loop LAKEPROBE_EVENT_LOOP selects (default uvloop)."""
    choice = os.environ.get(ENV, "").strip().lower() or "uvloop"
    if choice == "asyncio":
        return asyncio.new_event_loop
    if choice == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise EventLoopChoiceError(f"{ENV}={choice!r}: must be one of {', '.join(CHOICES)}")


def run(
    main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> T:
    """asyncio.run(main) on `factory`'s loop, by default the selected one
    (EventLoopChoiceError before anything runs)."""
    try:
        factory = factory or loop_factory()
    except EventLoopChoiceError:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
