"""Threads for blocking library calls that cannot be interrupted (XrdCl and gfal2 copies).

A thread cannot be killed: a call stuck on a hung endpoint holds it until the library gives
up by itself. `BlockingThreads` bounds how many there are and counts the busy ones, and
among them those whose caller has given up (abandoned). One instance lives as long as its
owner (the daemon, or one CLI run; probes/core/resources.py), never as module state.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

DEFAULT_THREADS = 16
T = TypeVar("T")


class Ticket:
    """One call's place in the pool: queued -> running -> done, and whether it was abandoned.
    Read and written under its pool's lock."""

    __slots__ = ("abandoned", "state")

    def __init__(self) -> None:
        self.state = "queued"
        self.abandoned = False


class BlockingThreads:
    """A bounded pool of threads for blocking calls, with counts of busy and abandoned ones."""

    def __init__(self, size: int = DEFAULT_THREADS, name: str = "lakeprobe-copy") -> None:
        self.size = size
        self._name = name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # made on first use
        self._running = 0
        self._abandoned = 0

    @property
    def running(self) -> int:
        """Threads busy with a call, including those whose caller has given up."""
        with self._lock:
            return self._running

    @property
    def abandoned(self) -> int:
        """Threads still busy with a call whose caller has given up (a hung endpoint)."""
        with self._lock:
            return self._abandoned

    def submit(self, work: Callable[[], T], ticket: Ticket) -> asyncio.Future[T]:
        """Run `work` on a pool thread; the future resolves on the running loop."""
        with self._lock:
            if self._pool is None:  # only copy and gfal2 probes get here: imported on need
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self._name)
            pool = self._pool
        return asyncio.get_running_loop().run_in_executor(pool, self._tracked, work, ticket)

    def abandon(self, ticket: Ticket) -> int | None:
        """The caller gives up: count the call as abandoned while its thread is busy. Returns
        how many threads abandoned calls now hold, or None if this one holds none."""
        with self._lock:
            if ticket.state != "running" or ticket.abandoned:
                return None
            ticket.abandoned = True
            self._abandoned += 1
            return self._abandoned

    def shutdown(self) -> None:
        """Stop taking work; threads still busy finish on their own (they are not joined)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _tracked(self, work: Callable[[], T], ticket: Ticket) -> T:
        with self._lock:
            self._running += 1
            ticket.state = "running"
        try:
            return work()
        finally:
            with self._lock:
                self._running -= 1
                if ticket.abandoned:
                    self._abandoned -= 1
                ticket.state = "done"
