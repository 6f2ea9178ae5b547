"""Log lines that hostile clients can cause, at a bounded rate.

Out of descriptors, asyncio reports every failed accept through the loop's exception handler
with a traceback (a flood of connections once grew the log by 57 MB in 30 s), and aiohttp logs
every unparsable request with a traceback. While serving, bounded_flood_logs() logs each kind
at most once per `every` seconds, with the count of those left out; everything else (bugs
included) is logged as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from lakeprobe.service.openfiles import open_files_limit

log = logging.getLogger("lakeprobe.http")
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
REPORT_EVERY_SECONDS = 10.0

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
Clock = Callable[[], float]


class Throttle:
    """At most one report per `every` seconds; counts the ones left out."""

    def __init__(self, every: float = REPORT_EVERY_SECONDS, clock: Clock = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._quiet_until = float("-inf")
        self._left_out = 0

    def allow(self) -> str | None:
        """None to leave this one out; else a note on those left out before it."""
        now = self._clock()
        if now < self._quiet_until:
            self._left_out += 1
            return None
        self._quiet_until = now + self._every
        return self.note()

    def note(self) -> str:
        left_out, self._left_out = self._left_out, 0
        more = f"{left_out} more since the last report; " if left_out else ""
        return f"{more}at most one report every {self._every:g} s"

    @property
    def left_out(self) -> int:
        return self._left_out


class ResourceErrorLog:
    """A loop exception handler: reports of exhausted resources (EMFILE, ENFILE...) are
    throttled; all others go to the previous handler."""

    def __init__(self, previous: ExceptionHandler | None, throttle: Throttle) -> None:
        self._previous = previous
        self.throttle = throttle

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in RESOURCE_ERRNOS):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        if (note := self.throttle.allow()) is not None:
            message = context.get("message", "out of system resource")
            log.error("%s: %s (%s; open files limit %d)", message, error.strerror, note,
                      open_files_limit())  # fmt: skip

    def flush(self) -> None:
        if self.throttle.left_out:
            log.error("out of system resource: %s", self.throttle.note())


class BadRequestLog(logging.Filter):
    """On aiohttp's server logger: a request that could not be parsed (the client's fault)
    becomes one throttled warning line without a traceback. Errors of handlers pass."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        note = self.throttle.allow()
        if note is None:
            return False
        problem = " ".join(str(error.message).split())[:200]  # client text: one line, bounded
        record.msg, record.args = "%s: %d %s (%s)", (record.getMessage(), error.code, problem, note)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextlib.contextmanager
def bounded_flood_logs(every: float = REPORT_EVERY_SECONDS) -> Iterator[None]:
    """Install the throttles on the running loop and aiohttp's server logger until exit."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    resource_errors = ResourceErrorLog(previous, Throttle(every))
    bad_requests = BadRequestLog(Throttle(every))
    server_log = logging.getLogger("aiohttp.server")
    loop.set_exception_handler(resource_errors)
    server_log.addFilter(bad_requests)
    try:
        yield
    finally:
        server_log.removeFilter(bad_requests)
        loop.set_exception_handler(previous)
        resource_errors.flush()
