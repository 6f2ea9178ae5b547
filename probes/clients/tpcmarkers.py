"""The body of an HTTP-TPC COPY answer: perf markers while the copy runs, then a verdict.

The status line (201) is sent before the copy even starts; only the last body line tells
how it ended. XrdHttp 5.5.3, as captured on the local lake (dCache and StoRM send the same
keys, one block per stripe):

    Perf Marker
    Timestamp: 1795311090
    Stripe Index: 0
    Stripe Bytes Transferred: 756219904
    Total Stripe Count: 1
    RemoteConnections: tcp:127.0.0.1:59235
    End
    success: Created            (or `failure: <reason>`, often without a final newline)

`MarkerParser` is fed the body as it arrives, in chunks cut anywhere; `StallWatch` turns the
byte counts into a deadline; `failure_reason` maps a failure text onto a Reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lakeprobe.probes.clients.httpparse import parse_decimal
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason

MAX_LINE = 8192  # longer lines are cut: a broken server cannot make the parser hoard memory
MAX_STRIPES = 1024  # markers of further stripes are garbage: bounds the parser's memory
_KEYS = frozenset({"stripe index", "stripe bytes transferred", "timestamp"})  # the rest: unread


@dataclass(frozen=True, slots=True)
class Verdict:
    success: bool
    text: str  # what followed `success:` / `failure:`; remote free text, never a label


@dataclass(slots=True)
class MarkerParser:
    """Incremental: `feed(chunk, now)` as bytes arrive, `finish(now)` at the end of the body.
    Bytes transferred = the sum over stripes of each stripe's latest count."""

    started: float  # clock value when the COPY was sent
    markers: int = 0
    first_marker_at: float | None = None  # clock value when the first marker was complete
    last_marker_at: float | None = None
    server_timestamp: int | None = None  # `Timestamp:` of the latest marker (server clock)
    stripes: dict[int, int] = field(default_factory=dict)
    garbage: int = 0  # stray lines, and markers dropped (unreadable numbers, too many stripes)
    last_line: str = ""  # the last non-empty line so far
    _buffer: bytearray = field(default_factory=bytearray)
    _block: dict[str, str] | None = None  # the marker being read

    @property
    def bytes_transferred(self) -> int:
        return sum(self.stripes.values())

    @property
    def first_marker_seconds(self) -> float | None:
        return None if self.first_marker_at is None else self.first_marker_at - self.started

    def feed(self, data: bytes, now: float) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:  # no newline in sight: take what we have
                    self._line(bytes(self._buffer[:MAX_LINE]), now)
                    del self._buffer[:]
                return
            line = bytes(self._buffer[: min(end, MAX_LINE)])
            del self._buffer[: end + 1]
            self._line(line, now)

    def finish(self, now: float) -> Verdict | None:
        """The verdict: the body's last non-empty line, if it is `success:` or `failure:`.
        None (a protocol error) for anything else, including a body cut off mid-marker."""
        if self._buffer:
            self._line(bytes(self._buffer), now)
            del self._buffer[:]
        return parse_verdict(self.last_line)

    def _line(self, raw: bytes, now: float) -> None:
        line = raw.rstrip(b"\r").decode("utf-8", "replace").strip()
        if not line:
            return
        self.last_line = line
        if line.lower() == "perf marker":
            if self._block is not None:
                self.garbage += 1  # the previous block never ended: drop it
            self._block = {}
        elif parse_verdict(line) is not None:
            if self._block is not None:
                self.garbage += 1  # a verdict cuts a marker short: drop the marker
            self._block = None
        elif self._block is None:
            self.garbage += 1
        elif line.lower() == "end":
            self._commit(self._block, now)
            self._block = None
        else:
            key, colon, value = line.partition(":")
            if not colon:
                self.garbage += 1
            elif key.strip().lower() in _KEYS:
                self._block[key.strip().lower()] = value.strip()

    def _commit(self, block: dict[str, str], now: float) -> None:
        index = parse_decimal(block.get("stripe index", "0"))
        transferred = parse_decimal(block.get("stripe bytes transferred", ""))
        new_stripe = index not in self.stripes and len(self.stripes) >= MAX_STRIPES
        if index is None or transferred is None or new_stripe:
            self.garbage += 1
            return
        self.stripes[index] = transferred
        self.server_timestamp = parse_decimal(block.get("timestamp", ""))
        self.markers += 1
        self.last_marker_at = now
        if self.first_marker_at is None:
            self.first_marker_at = now


def parse_verdict(line: str) -> Verdict | None:
    key, colon, text = line.partition(":")
    if not colon or key.strip().lower() not in ("success", "failure"):
        return None
    return Verdict(key.strip().lower() == "success", text.strip())


@dataclass(slots=True)
class StallWatch:
    """A copy stalls when its byte count has not grown by at least `min_rate` bytes per
    second (any growth when `min_rate` is None) for `stall_seconds`. Armed by the first
    observation; `deadline` is the clock value at which the copy counts as stalled."""

    stall_seconds: float
    min_rate: float | None = None
    _since: float | None = None  # start of the current window
    _bytes: int = 0  # bytes at the start of the window

    @property
    def deadline(self) -> float | None:
        return None if self._since is None else self._since + self.stall_seconds

    def observe(self, transferred: int, now: float) -> None:
        if self._since is None:
            self._since, self._bytes = now, transferred
            return
        grown = transferred - self._bytes
        if grown > 0 and grown >= (self.min_rate or 0.0) * (now - self._since):
            self._since, self._bytes = now, transferred


_REMOTE_STATUS = re.compile(r"remote side failed with status code (\d{3})", re.IGNORECASE)
# curl's "Empty reply from server": the passive side closed the connection without an answer
# (XrdHttp does when a pushed upload cannot be written, e.g. on a full disk).
_NO_ANSWER = re.compile(r"server returned nothing|empty reply from server", re.IGNORECASE)
_DNS = re.compile(r"could(?:n't| not) resolve", re.IGNORECASE)
_CONNECT = re.compile(
    r"could(?:n't| not) connect|connection refused|failed to connect|no route to host",
    re.IGNORECASE,
)
_TLS = re.compile(r"\bssl\b|\btls\b|certificate", re.IGNORECASE)
_TIMEOUT = re.compile(r"timed out|timeout was reached", re.IGNORECASE)
_MISSING = re.compile(r"no such file|not found|does not exist", re.IGNORECASE)
_WRITE = re.compile(r"unable to create|write failure|no space|quota|finalize", re.IGNORECASE)


def failure_reason(text: str, mode: str) -> Reason:
    """The Reason of a `failure: <text>` verdict, for a copy in `mode` (pull or push).

    `Remote side failed with status code N` (XrdHttp) and an empty reply (curl) blame the
    passive side: the source in pull mode (SOURCE_MISSING), the destination in push mode
    (DESTINATION_ERROR).
    Transport errors of the active side's own connection to the passive side keep their
    transport reason (curl's "Couldn't connect to server" -> CONNECT); anything else is
    TPC_FAILURE. A full disk on either side (its text, or a 507 relayed) is NO_SPACE.
    """
    remote = _REMOTE_STATUS.search(text)
    if NO_SPACE_TEXT.search(text) or (remote is not None and remote.group(1) == "507"):
        return Reason.NO_SPACE
    if remote is not None or _NO_ANSWER.search(text):
        return Reason.SOURCE_MISSING if mode == "pull" else Reason.DESTINATION_ERROR
    for pattern, reason in (
        (_DNS, Reason.DNS),
        (_CONNECT, Reason.CONNECT),
        (_TLS, Reason.TLS),
        (_TIMEOUT, Reason.TIMEOUT),
        (_MISSING, Reason.SOURCE_MISSING),
        (_WRITE, Reason.DESTINATION_ERROR),
    ):
        if pattern.search(text):
            return reason
    return Reason.TPC_FAILURE
