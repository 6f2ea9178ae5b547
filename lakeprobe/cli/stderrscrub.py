"""Scrub credentials from everything the process writes to stderr, C libraries included.

lakeprobe's own log records are redacted by their formatter, but the C libraries in the
process write to file descriptor 2 directly: XrdCl with XRD_LOGLEVEL=Debug prints request
URLs with `?authz=<token>`, and gfal2/davix have their own debug output. For the commands
that run probes, `scrubbed_stderr()`:

- points fd 2 at a pipe. A reader thread splits what arrives into lines, redacts each
  (`lakeprobe.probes.credentials.secrets.redact`: known secret values and token shapes) and queues
  them; a writer thread writes them to the original stderr. Writers to fd 2 never wait for
  that stderr: when it is stuck, the bounded queue overflows and the lines are dropped and
  counted (a notice says how many), instead of stalling an XrdCl thread mid-request. A line
  is passed on when complete, or at 64 KiB, or at the end.
- replaces `sys.stderr` by a stream that redacts line by line and writes to the original
  stderr synchronously, so Python output (log records, tracebacks, warnings) keeps its order
  and is complete even when the process ends with os._exit after flushing (and, as without
  the scrubber, waits for a stuck stderr).
- points faulthandler at the original stderr: after a crash the threads above are gone.

On exit it restores fd 2, sys.stderr and faulthandler and lets the threads drain for at most
a second each. Not covered: an XrdCl log file (XRD_LOGFILE) bypasses stderr altogether, and child
processes started meanwhile inherit the pipe (the lake's own servers log to files).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO, cast

from lakeprobe.probes.credentials.secrets import redact

MAX_LINE = 64 * 1024  # a longer line without a newline is passed on in pieces
QUEUE_CHUNKS = 64  # up to 64 reads of at most 64 KiB wait for a stuck stderr
DRAIN_SECONDS = 1.0


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RedactingStream:
    """sys.stderr's stand-in: writes redacted complete lines to `fd`; flush() the rest.
    Only what Python's writers to sys.stderr use (logging, traceback, warnings, print)."""

    errors = "backslashreplace"
    closed = False

    def __init__(self, fd: int, encoding: str) -> None:
        self._fd = fd
        self._pending = ""
        self._lock = threading.Lock()
        self.encoding = encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            cut = self._pending.rfind("\n") + 1
            if cut == 0 and len(self._pending) < MAX_LINE:
                return len(text)
            cut = cut or len(self._pending)
            lines, self._pending = self._pending[:cut], self._pending[cut:]
            self._emit(lines)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, ""
            if lines:
                self._emit(lines)

    def _emit(self, text: str) -> None:
        with contextlib.suppress(OSError):  # stderr gone: nothing to tell anyone
            write_all(self._fd, redact(text).encode(self.encoding, self.errors))


class _Pump:
    """fd 2 -> pipe -> reader thread (redacts) -> bounded queue -> writer thread -> `out`."""

    def __init__(self, read_fd: int, out: int) -> None:
        self._read_fd, self._out = read_fd, out
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)  # None: the end
        self._dropped = 0  # bytes; only the reader thread changes it
        self.reader = threading.Thread(target=self._read, name="stderr-scrub-read", daemon=True)
        self.writer = threading.Thread(target=self._write, name="stderr-scrub-write", daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.writer.start()

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self._read_fd, MAX_LINE):
            pending += chunk
            cut = pending.rfind(b"\n") + 1 or (len(pending) if len(pending) >= MAX_LINE else 0)
            if cut:
                self._offer(pending[:cut])
                pending = pending[cut:]
        if pending:
            self._offer(pending)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=DRAIN_SECONDS)

    def _offer(self, lines: bytes) -> None:
        text = redact(lines.decode("utf-8", "backslashreplace")).encode("utf-8")
        if self._dropped:
            text = f"[lakeprobe: {self._dropped} bytes of stderr dropped]\n".encode() + text
        try:
            self._queue.put_nowait(text)
            self._dropped = 0
        except queue.Full:  # stderr is stuck: drop rather than block fd 2's writers
            self._dropped += len(lines)

    def _write(self) -> None:
        while (data := self._queue.get()) is not None:
            with contextlib.suppress(OSError):
                write_all(self._out, data)


@contextlib.contextmanager
def scrubbed_stderr() -> Iterator[None]:
    """Within the block, everything written to stderr (sys.stderr and fd 2) is redacted."""
    previous = sys.stderr
    previous.flush()
    original = os.dup(2)
    os.set_inheritable(original, False)
    stream = RedactingStream(original, getattr(previous, "encoding", None) or "utf-8")
    read_fd, write_fd = os.pipe()
    pump = _Pump(read_fd, original)
    pump.start()
    had_faulthandler = faulthandler.is_enabled()
    os.dup2(write_fd, 2)  # from here on, the finally below restores everything
    try:
        os.close(write_fd)
        sys.stderr = cast(TextIO, stream)
        faulthandler.enable(file=cast(TextIO, stream))  # a crash kills the threads
        yield
    finally:
        stream.flush()
        sys.stderr = previous
        faulthandler.disable()
        if had_faulthandler:  # where it wrote before is unknown: stderr's likeliest
            with contextlib.suppress(AttributeError, ValueError, OSError):
                faulthandler.enable(file=previous)
        _restore(pump, original, read_fd)


def _restore(pump: _Pump, original: int, read_fd: int) -> None:
    """fd 2 back to the original; the pipe's last writer gone, the threads drain and end."""
    os.dup2(original, 2)
    pump.reader.join(DRAIN_SECONDS)
    pump.writer.join(DRAIN_SECONDS)
    # A thread still running (a child process holds the pipe; stderr stuck) keeps its fd:
    # closing it would let the number be reused under that thread.
    if not pump.reader.is_alive():
        os.close(read_fd)
    if not pump.writer.is_alive():
        os.close(original)
