"""iperf3 client: one bounded TCP test against an iperf3 server, read from its JSON (`-J`).

`iperf3 -c HOST -p PORT -J -t SECONDS -4|-6 [-R] --connect-timeout MS` runs as a child process
(no shell) in a session of its own; when the deadline comes, or the caller is cancelled, the
whole process group is killed and reaped. Its `--connect-timeout` is not enough on its own: a
server that accepts and then says nothing (stopped, overloaded) holds the client forever.

With `-J` iperf3 exits 0 even when the test failed: the JSON `error` key says so. A server runs
one test at a time and tells a second client "the server is busy running a test. try again
later": that is retried after a short backoff, and our own tests against one server are
serialised by `ServerLocks` (held by the caller's owner, probes/core/serverlocks.py).

Which side is which: `end.sum_received` is the receiver's view (the server's without `-R`,
sent back to the client at the end; ours with `-R`), `end.sum_sent` the sender's, whose
`retransmits` are counted by the sending host's kernel (Linux only; absent elsewhere). So the
throughput is always `sum_received.bits_per_second` and the retransmits always
`sum_sent.retransmits`, in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import json
import math
import os
import re
import signal
from dataclasses import dataclass, replace
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from lakeprobe.probes.core.serverlocks import ServerLocks

SCHEME = "iperf3"
DEFAULT_PORT = 5201  # iperf3's own default: `iperf3://host` means port 5201
MAX_SECONDS = 60
BUSY_BACKOFF_SECONDS = 1.0
_DETAIL_LIMIT = 300
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_RESOLVE_ERRORS = (
    "name or service not known",
    "temporary failure in name resolution",
    "no address associated",
    "address family for hostname not supported",  # e.g. -6 to a host without an IPv6 address
)


class Iperf3Outcome(enum.Enum):
    OK = "ok"
    BUSY = "busy"  # still busy after the retries
    CONNECT = "connect"  # refused, unreachable, connect timed out
    RESOLVE = "resolve"  # the host name has no address (of this IP version)
    TIMEOUT = "timeout"  # our deadline: the test (or the wait for our own lock) took too long
    ERROR = "error"  # any other iperf3 error, or iperf3 could not run
    MALFORMED = "malformed"  # output that is not iperf3's JSON


@dataclass(frozen=True, slots=True)
class Iperf3Result:
    outcome: Iperf3Outcome
    bits_per_second: float | None = None  # end.sum_received: what arrived
    retransmits: int | None = None  # end.sum_sent: None when the sender's OS does not count
    detail: str = ""  # iperf3's own error text, or ours; free text, never a label
    attempts: int = 1  # tests started (busy answers included)

    @property
    def ok(self) -> bool:
        return self.outcome is Iperf3Outcome.OK


@dataclass(frozen=True, slots=True)
class Iperf3Request:
    url: str  # iperf3://host[:port]
    ip_version: int  # 4 or 6
    seconds: int = 5
    reverse: bool = False  # -R: the server sends, we receive
    busy_retries: int = 3
    busy_backoff: float = BUSY_BACKOFF_SECONDS  # times the retry number
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.ip_version not in (4, 6):
            raise ValueError(f"ip_version must be 4 or 6, not {self.ip_version!r}")
        if not 1 <= self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be 1..{MAX_SECONDS}, not {self.seconds}")
        if self.busy_retries < 0 or self.busy_backoff < 0 or self.connect_timeout <= 0:
            raise ValueError("busy_retries, busy_backoff >= 0 and connect_timeout > 0")
        iperf3_address(self.url)


def iperf3_address(url: str) -> tuple[str, int]:
    """(host, port) of `iperf3://host[:port]` (IPv6 literals in brackets). ValueError for any
    other URL, and for a host iperf3 could take for an option."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not an {SCHEME}:// URL: {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"credentials, query and fragment are not allowed: {url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"an {SCHEME} URL has no path: {url!r}")
    host = parts.hostname or ""
    if not _valid_host(host):
        raise ValueError(f"bad host {host!r} in {url!r}")
    port = parts.port  # ValueError for a port out of range
    return host, DEFAULT_PORT if port is None else port


def _valid_host(host: str) -> bool:
    if ":" in host:
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(host).version == 6
        return False
    return bool(_HOST_NAME.fullmatch(host))


def iperf3_command(request: Iperf3Request, binary: str = "iperf3") -> list[str]:
    host, port = iperf3_address(request.url)
    command = [binary, "-c", host, "-p", str(port), "-J", "-t", str(request.seconds)]
    command.append(f"-{request.ip_version}")
    if request.reverse:
        command.append("-R")
    return [*command, "--connect-timeout", str(max(1, round(request.connect_timeout * 1000)))]


async def run_iperf3(
    request: Iperf3Request, locks: ServerLocks, deadline: float, binary: str = "iperf3"
) -> Iperf3Result:
    """One test within `deadline` seconds (lock wait, busy retries and backoff included),
    never raising for what the server or iperf3 does."""
    host, port = iperf3_address(request.url)
    lock = locks.lock(host, port)
    state = _Progress()
    try:
        async with asyncio.timeout(deadline), lock:
            state.acquired = True
            for attempt in range(1, request.busy_retries + 2):
                if attempt > 1:
                    await asyncio.sleep(request.busy_backoff * (attempt - 1))
                state.testing = True
                result = replace(await _attempt(request, binary), attempts=attempt)
                state.last, state.testing = result, False
                if result.outcome is not Iperf3Outcome.BUSY:
                    break
            return result
    except TimeoutError:
        return state.at_deadline(deadline)


@dataclass(slots=True)
class _Progress:
    """Where run_iperf3 was when its deadline came."""

    acquired: bool = False  # holds the server's lock
    testing: bool = False  # an iperf3 client is running
    last: Iperf3Result | None = None  # the last finished attempt

    def at_deadline(self, deadline: float) -> Iperf3Result:
        """BUSY when still waiting out a busy server; else TIMEOUT, saying what took long."""
        last = self.last
        if not self.testing and last is not None and last.outcome is Iperf3Outcome.BUSY:
            return replace(last, detail=f"{last.detail} (still at the {deadline:g} s deadline)")
        what = "the test" if self.acquired else "waiting for our other test against this server"
        attempts = (0 if last is None else last.attempts) + int(self.testing)
        return Iperf3Result(
            Iperf3Outcome.TIMEOUT, detail=f"{what} took over {deadline:g} s", attempts=attempts
        )


async def _attempt(request: Iperf3Request, binary: str) -> Iperf3Result:
    try:
        returncode, out, err = await _run(iperf3_command(request, binary))
    except OSError as exc:  # no such binary, not executable
        return Iperf3Result(Iperf3Outcome.ERROR, detail=f"cannot run {binary}: {exc.strerror}")
    if not out.strip() and returncode != 0:  # a usage error, a crash: no JSON at all
        tail = err.decode(errors="replace").strip()[-_DETAIL_LIMIT:]
        return Iperf3Result(Iperf3Outcome.ERROR, detail=f"iperf3 exited {returncode}: {tail}")
    return parse_iperf3_json(out.decode(errors="replace"))


async def _run(command: list[str]) -> tuple[int, bytes, bytes]:
    """Run to completion; on cancellation (the deadline) kill its process group and reap it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}  # English errors
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # exited, not reaped: pid still ours
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.communicate()  # drain to EOF and reap: no zombie, pipes closed
    assert proc.returncode is not None
    return proc.returncode, out, err


def parse_iperf3_json(text: str) -> Iperf3Result:
    """The result of one iperf3 `-J` output; MALFORMED for anything else, never raising."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Iperf3Result(Iperf3Outcome.MALFORMED, detail=f"not JSON: {exc}"[:_DETAIL_LIMIT])
    if not isinstance(document, dict):
        return Iperf3Result(Iperf3Outcome.MALFORMED, detail="not a JSON object")
    error = document.get("error")
    if error is not None:
        if not isinstance(error, str):
            return Iperf3Result(Iperf3Outcome.MALFORMED, detail="error is not a string")
        return Iperf3Result(_classify(error), detail=error[:_DETAIL_LIMIT])
    return _measurement(document.get("end"))


def _classify(error: str) -> Iperf3Outcome:
    lowered = error.lower()
    if "server is busy" in lowered:
        return Iperf3Outcome.BUSY
    if lowered.startswith("unable to connect"):
        if any(marker in lowered for marker in _RESOLVE_ERRORS):
            return Iperf3Outcome.RESOLVE
        return Iperf3Outcome.CONNECT
    return Iperf3Outcome.ERROR


def _measurement(end: Any) -> Iperf3Result:
    received = end.get("sum_received") if isinstance(end, dict) else None
    sent = end.get("sum_sent") if isinstance(end, dict) else None
    bits = received.get("bits_per_second") if isinstance(received, dict) else None
    if not (_is_number(bits) and math.isfinite(bits) and bits >= 0):
        return Iperf3Result(
            Iperf3Outcome.MALFORMED, detail="no end.sum_received.bits_per_second number"
        )
    retransmits = sent.get("retransmits") if isinstance(sent, dict) else None
    if retransmits is not None and not (_is_number(retransmits) and 0 <= retransmits < 2**63):
        return Iperf3Result(Iperf3Outcome.MALFORMED, detail="end.sum_sent.retransmits")
    count = None if retransmits is None else int(retransmits)
    return Iperf3Result(Iperf3Outcome.OK, bits_per_second=float(bits), retransmits=count)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
