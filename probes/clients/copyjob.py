"""Blocking copy engines on a bounded pool of threads, watched from asyncio.

XrdCl's `CopyProcess.run()` and gfal2's `filecopy()` block their thread for the whole copy.
They run here, on the copy threads (probes/core/threads.py) the daemon owns and every copy
probe shares (`ctx.resources.threads`).
The event loop awaits the result and watches the progress the engine reports (`CopyWatch`,
a lock-guarded record the copy thread writes and the loop reads). When the loop gives up (the
step deadline, or no progress for `stall_seconds`), it asks the engine to stop: the
`cancelled` flag, polled by XrdCl's progress handler, and the engine's own `cancel` callable
(gfal2's `ctx.cancel()`). A thread cannot be killed: it stays busy until the engine notices
or hits its own timeout, which the engines set from the same deadline (some phases of both
engines cannot be interrupted: see probes/clients/xrdcopy.py and probes/clients/gfalcopy.py).
The pool counts the busy threads and those still busy for a probe that gave up; when every
thread is held by such a copy, a new copy is not even queued (the step is UNKNOWN). A copy
waiting for a free thread is bounded by its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import posixpath
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.resources import Notices
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.threads import BlockingThreads, Ticket
from lakeprobe.probes.credentials.secrets import Secret, redact

MAX_ENGINE_TIMEOUT = 65535  # XrdCl takes copy timeouts as 16-bit seconds

log = logging.getLogger(__name__)
T = TypeVar("T")


def exit_now_if_copies_hang(threads: BlockingThreads, code: int = 0) -> None:
    """For the CLI and the daemon, once their work is done: a copy thread still stuck in XrdCl
    or gfal2 (a hung endpoint) would hold up interpreter exit until the engine's own timeout,
    minutes later (ThreadPoolExecutor joins its threads at exit). Exit at once instead, logs
    flushed."""
    busy = threads.running
    if not busy:
        return
    log.warning("exiting with %d copy threads still busy on hung endpoints", busy)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass(frozen=True, slots=True)
class CopyEnd:
    """One side of a copy: an endpoint, an absolute path on it, the token loaded for it."""

    target: Target
    path: str
    token: Secret | None = None


class CopyError(Exception):
    """A failed copy: a Reason and a redacted free-text detail (and the step status)."""

    def __init__(self, reason: Reason, detail: str, status: Status = Status.CRITICAL) -> None:
        self.reason = reason
        self.detail = redact(detail)
        self.status = status
        super().__init__(self.detail)


@dataclass(frozen=True, slots=True)
class CopyStats:
    transferred: int  # bytes
    seconds: float  # duration of the transfer itself
    first_marker: float | None  # seconds from its start to the first progress report
    queued: float  # seconds spent waiting for a free copy thread
    transfer_type: str = ""  # as the engine names it: "3rd pull", "3rd push", ...
    note: str = ""  # a capability the engine found missing, e.g. no checksum at one end


class CopyWatch:
    """Progress of one copy. The copy thread calls begin/progress/activity/transfer_*; the loop
    reads, and calls cancel() when it gives up. Made on the event loop; `deadline` is
    event-loop time, kept as time.monotonic() for the copy thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline - asyncio.get_running_loop().time() + time.monotonic()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._submitted = time.monotonic()
        self._started: float | None = None
        self._transfer: list[float] = []  # [start] or [start, end] of the transfer stage
        self._ended: float | None = None
        self._landed: float | None = None  # the destination was seen holding every byte
        self._first_marker: float | None = None
        self._last_activity: float | None = None
        self.transferred = 0
        self.transfer_type = ""  # set by the engine
        self.ticket = Ticket()  # its place in the copy threads

    # Copy-thread side -----------------------------------------------------------------------
    def begin(self) -> None:
        with self._lock:
            self._started = self._last_activity = time.monotonic()

    def progress(self, transferred: int) -> None:
        now = time.monotonic()
        with self._lock:
            if self._first_marker is None:
                self._first_marker = now
            if transferred > self.transferred:
                self.transferred, self._last_activity = transferred, now

    def activity(self) -> None:
        """Something happened that is not a byte count (an engine event)."""
        with self._lock:
            self._last_activity = time.monotonic()

    def transfer_started(self) -> None:
        with self._lock:
            self._transfer = [time.monotonic()]

    def transfer_ended(self) -> None:
        with self._lock:
            if len(self._transfer) == 1:
                self._transfer.append(time.monotonic())

    def end(self) -> None:
        with self._lock:
            self._ended = time.monotonic()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def timeout_seconds(self) -> int:
        """Whole seconds left before the deadline, for the engine's own timeouts (at least 1)."""
        left = math.ceil(self.deadline - time.monotonic())
        return min(MAX_ENGINE_TIMEOUT, max(1, left))

    # Event-loop side ------------------------------------------------------------------------
    def running_for(self) -> float | None:
        """Seconds since the copy thread began; None while queued."""
        with self._lock:
            started = self._started
        return None if started is None else time.monotonic() - started

    def data_landed(self) -> None:
        """The destination now holds every byte (seen by a watcher stat-ing it, finer than
        the engine's own reports): the transfer ends here, not when the engine says so."""
        with self._lock:
            if self._landed is None and self._started is not None:
                self._landed = time.monotonic()

    def cancel(self) -> None:
        self._cancel.set()

    def idle_for(self) -> float | None:
        """Seconds since the last progress; None while the copy waits for a thread."""
        with self._lock:
            last = self._last_activity
        return None if last is None else time.monotonic() - last

    def stats(self, transferred: int | None = None) -> CopyStats:
        with self._lock:
            started = self._started if self._started is not None else self._submitted
            ended = self._ended if self._ended is not None else time.monotonic()
            if len(self._transfer) == 2:  # the engine told us when the data moved
                started, ended = self._transfer
            elif self._landed is not None:  # seen at the destination, before the engine noticed
                ended = min(ended, self._landed)
            first = self._first_marker
            return CopyStats(
                transferred=self.transferred if transferred is None else transferred,
                seconds=max(ended - started, 1e-6),
                first_marker=None if first is None else first - started,
                queued=(self._started or self._submitted) - self._submitted,
                transfer_type=self.transfer_type,
            )


def _watched(work: Callable[[], T], watch: CopyWatch) -> Callable[[], T]:
    """`work` as the copy thread runs it: timed, and skipped if given up while queued."""

    def run() -> T:
        try:
            watch.begin()
            if watch.cancelled:
                raise CopyError(Reason.TIMEOUT, "copy abandoned before it started")
            return work()
        finally:
            watch.end()

    return run


async def run_copy(
    threads: BlockingThreads,
    work: Callable[[], T],
    watch: CopyWatch,
    stall_seconds: float,
    cancel: Callable[[], None] | None = None,
) -> T:
    """Run the blocking `work` on one of `threads` and return its result. No progress for
    `stall_seconds` raises CopyError(STALL); on that or on cancellation (the step deadline),
    the engine is asked to stop (watch.cancel(), then `cancel`) before this returns. When
    every thread is held by an abandoned copy, nothing can run: CopyError, status UNKNOWN."""
    if threads.abandoned >= threads.size:
        detail = f"all {threads.size} copy threads are held by abandoned copies: not tested"
        raise CopyError(Reason.INTERNAL, detail, Status.UNKNOWN)
    future = threads.submit(_watched(work, watch), watch.ticket)
    try:
        while True:
            idle = watch.idle_for()
            wait = stall_seconds if idle is None else stall_seconds - idle
            if wait <= 0:
                detail = f"no progress for {stall_seconds:g} s ({watch.transferred} bytes)"
                raise CopyError(Reason.STALL, f"{detail}, copy abandoned")
            done, _ = await asyncio.wait({future}, timeout=wait)
            if done:
                return future.result()
    except BaseException:
        watch.cancel()
        future.cancel()  # never started: it will not run; running: its late result is dropped
        if cancel is not None:
            cancel()
        held = threads.abandon(watch.ticket)
        if held is not None:
            log.info("copy abandoned while its thread is busy: %d of %d copy threads held by "
                     "abandoned copies", held, threads.size)  # fmt: skip
        raise


def side_of(message: str, source: CopyEnd, destination: CopyEnd) -> str | None:
    """Which side an engine's error text is about: "source", "destination" or None."""
    lowered = message.lower()
    if "(destination)" in lowered or posixpath.normpath(destination.path) in message:
        return "destination"
    if "(source)" in lowered or posixpath.normpath(source.path) in message:
        return "source"
    return None


def warn_unapplied_ca_dir(
    target: Target, logger: logging.Logger, library: str, notices: Notices
) -> None:
    """XrdCl and davix (gfal2) read their CA directory from the process environment variable
    X509_CERT_DIR only; a different `target.ca_dir` is reported once per directory."""
    if target.ca_dir is None or target.protocol in ("root", "http", "dav"):
        return
    process_wide = os.environ.get("X509_CERT_DIR")
    if process_wide is not None and os.path.realpath(process_wide) == os.path.realpath(
        target.ca_dir
    ):
        return
    if notices.first(f"unapplied-ca-dir:{library}:{target.ca_dir}"):
        logger.warning(
            "%s: ca_dir %s is not applied by %s, which only reads X509_CERT_DIR (now %s) "
            "from the process environment; start the daemon with X509_CERT_DIR=%s",
            target.describe(), target.ca_dir, library, process_wide, target.ca_dir,
        )  # fmt: skip


def suppress_callback_errors(callback: Callable[..., None]) -> Callable[..., None]:
    """Wrap a callback the engine calls from C++: an exception escaping into the binding
    would abort the copy (or the process); it is dropped instead."""

    def safe(*args: object) -> None:
        with contextlib.suppress(Exception):
            callback(*args)

    return safe
