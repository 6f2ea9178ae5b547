"""The HTTP-TPC body parser, the stall watch and the failure-text reasons, table-driven.
The XrdHttp bodies are captured verbatim from the local lake (xrootd 5.5.3), chunk by chunk
as the server sent them: a 1.5 GB pull and push, and the failures the probe tests provoke."""

from __future__ import annotations

import pytest

from lakeprobe.probes.clients.tpcmarkers import (
    MAX_LINE,
    MAX_STRIPES,
    MarkerParser,
    StallWatch,
    failure_reason,
)
from lakeprobe.probes.core.outcome import Reason


def marker(stamp: int, moved: int, stripe: int = 0, count: int = 1, remote: bool = True) -> bytes:
    text = (
        f"Perf Marker\nTimestamp: {stamp}\nStripe Index: {stripe}\n"
        f"Stripe Bytes Transferred: {moved}\nTotal Stripe Count: {count}\n"
    )
    remote_line = "RemoteConnections: tcp:127.0.0.1:59235\n" if remote else ""
    return (text + remote_line + "End\n").encode()


# Captured: COPY (pull) of 1.5 GB, site A -> site B; 201, then these chunks over 7.5 s.
PULL_BIG = [
    b"Perf Marker\nTimestamp: 1795311085\nStripe Index: 0\nStripe Bytes Transferred: 0\n"
    b"Total Stripe Count: 1\nRemoteConnections: tcp:127.0.0.1:59235\nEnd\n",
    b"Perf Marker\nTimestamp: 1795311090\nStripe Index: 0\nStripe Bytes Transferred: 756219904\n"
    b"Total Stripe Count: 1\nRemoteConnections: tcp:127.0.0.1:59235\nEnd\n",
    b"success: Created",
]
# Captured: COPY (push) of the same file; the first marker has no RemoteConnections yet.
PUSH_BIG = [
    marker(1795311093, 0, remote=False),
    marker(1795311098, 547422208),
    marker(1795311103, 1178599424),
    b"success: Created",
]
# Captured: pull of a source that does not exist (the answer was 201 all the same).
PULL_MISSING = [
    marker(1795311111, 0),
    b'failure: Remote side failed with status code 404; error message: "Unable to open '
    b'/lakeprobe/nope; no such file or directory "',
]
# Captured: pull from a stopped source; push into a read-only directory.
PULL_SOURCE_DOWN = [marker(1795311125, 0, remote=False), b"failure: Couldn't connect to server"]
PUSH_READ_ONLY = [
    marker(1795311124, 0, remote=False),
    b"failure: Remote side failed with status code 403",
]

TWO_STRIPES = [
    marker(1, 100, 0, 2) + marker(1, 50, 1, 2),
    marker(2, 300, 0, 2) + marker(2, 70, 1, 2),
    b"success: ok\n",
]


def split(chunks: list[bytes], size: int) -> list[bytes]:
    body = b"".join(chunks)
    return [body[i : i + size] for i in range(0, len(body), size)]


def crlf(chunks: list[bytes]) -> list[bytes]:
    return [chunk.replace(b"\n", b"\r\n") for chunk in chunks]


SUCCESS = (True, "Created")
MISSING_TEXT = PULL_MISSING[1].decode().removeprefix("failure: ")
# fmt: off
PARSER_CASES = [
    # id, chunks as they arrive, verdict, bytes, complete markers, garbage lines
    ("pull-captured", PULL_BIG, SUCCESS, 756219904, 2, 0),
    ("push-captured", PUSH_BIG, SUCCESS, 1178599424, 3, 0),
    ("7-byte-chunks", split(PUSH_BIG, 7), SUCCESS, 1178599424, 3, 0),
    ("byte-by-byte", split(PULL_BIG, 1), SUCCESS, 756219904, 2, 0),
    ("crlf", crlf(PUSH_BIG), SUCCESS, 1178599424, 3, 0),
    ("crlf-split", split(crlf(PULL_BIG), 3), SUCCESS, 756219904, 2, 0),
    ("two-stripes-latest-each", TWO_STRIPES, (True, "ok"), 370, 4, 0),
    ("failure-captured", PULL_MISSING, (False, MISSING_TEXT), 0, 1, 0),
    ("source-down-captured", PULL_SOURCE_DOWN, (False, "Couldn't connect to server"), 0, 1, 0),
    ("read-only-captured", PUSH_READ_ONLY,
     (False, "Remote side failed with status code 403"), 0, 1, 0),
    ("garbage-around-markers",
     [b"hello\n", PULL_BIG[0], b"<html>\nnot: a marker line\n", *PULL_BIG[1:]],
     SUCCESS, 756219904, 2, 3),
    ("garbage-in-marker-blank-tail",
     [PULL_BIG[0], b"Perf Marker\nno colon\nStripe Bytes Transferred: 5\nEnd\n",
      b"success: Created\n\n\n"],
     SUCCESS, 5, 2, 1),
    ("malformed-numbers-dropped",
     [b"Perf Marker\nStripe Bytes Transferred: -5\nEnd\nPerf Marker\nStripe Index: x\n"
      b"Stripe Bytes Transferred: 9\nEnd\nsuccess: Created"],
     SUCCESS, 0, 0, 2),
    # '²' passes str.isdigit() and int() refuses it; int() refuses over 4300 digits too.
    ("hostile-numbers-dropped",
     ["Perf Marker\nStripe Bytes Transferred: \u00b2\nEnd\n".encode(),
      b"Perf Marker\nStripe Index: " + b"7" * 5000 + b"\nStripe Bytes Transferred: 1\nEnd\n",
      b"Perf Marker\nStripe Bytes Transferred: 1" + b"0" * 20 + b"\nEnd\nsuccess: Created"],
     SUCCESS, 0, 0, 3),
    ("no-verdict", PUSH_BIG[:-1], None, 1178599424, 3, 0),
    ("cut-mid-marker", [PULL_BIG[0], PULL_BIG[1][:60]], None, 0, 1, 1),
    ("empty-body", [b""], None, 0, 0, 0),
    ("marker-after-verdict", [b"success: Created\n", PULL_BIG[0]], None, 0, 1, 0),
    ("error-text", [b"Unable to open /x; no such file or directory"], None, 0, 0, 1),
    ("verdict-cuts-marker",
     [b"Perf Marker\nStripe Bytes Transferred: 1\n", b"failure: aborted"],
     (False, "aborted"), 0, 0, 1),
    ("overlong-line", [b"x" * (MAX_LINE + 10), b"\n", *PULL_BIG], SUCCESS, 756219904, 2, 1),
]
# fmt: on


@pytest.mark.parametrize(
    ("chunks", "verdict", "moved", "markers", "garbage"),
    [pytest.param(*case[1:], id=case[0]) for case in PARSER_CASES],
)
def test_parser(
    chunks: list[bytes],
    verdict: tuple[bool, str] | None,
    moved: int,
    markers: int,
    garbage: int,
) -> None:
    """Chunks cut anywhere give the same result; the verdict is the last non-empty line and
    nothing else; bytes = sum over stripes of each stripe's latest count; stray lines are
    counted and skipped, never fatal."""
    parser = MarkerParser(started=100.0)
    for i, chunk in enumerate(chunks):
        parser.feed(chunk, now=100.0 + i)
    result = parser.finish(now=200.0)
    assert ((result.success, result.text) if result else None) == verdict
    assert (parser.bytes_transferred, parser.markers, parser.garbage) == (moved, markers, garbage)


def test_marker_times() -> None:
    """The first marker counts when its `End` arrives; the server's Timestamp is kept apart."""
    parser = MarkerParser(started=10.0)
    parser.feed(PULL_BIG[0][:20], now=10.5)
    assert parser.first_marker_seconds is None
    parser.feed(PULL_BIG[0][20:], now=10.75)
    parser.feed(PULL_BIG[1], now=15.0)
    assert parser.first_marker_seconds == 0.75
    assert (parser.last_marker_at, parser.server_timestamp) == (15.0, 1795311090)


def test_stripe_cap() -> None:
    """Markers of more than MAX_STRIPES stripes bound the parser's memory: markers of further
    stripes are garbage; the stripes already known still update."""
    parser = MarkerParser(started=0.0)
    parser.feed(b"".join(marker(1, 1, stripe=i) for i in range(MAX_STRIPES + 5)), now=1.0)
    parser.feed(marker(2, 10, stripe=0), now=2.0)
    assert (len(parser.stripes), parser.garbage, parser.stripes[0]) == (MAX_STRIPES, 5, 10)
    assert parser.bytes_transferred == MAX_STRIPES - 1 + 10


@pytest.mark.parametrize(
    ("min_rate", "observations", "deadline"),
    [
        (None, [], None),
        (None, [(0.0, 0)], 60.0),
        (None, [(0.0, 0), (5.0, 0), (10.0, 0)], 60.0),  # markers without progress
        (None, [(0.0, 0), (5.0, 1)], 65.0),  # any growth counts
        (None, [(0.0, 0), (5.0, 10), (9.0, 10)], 65.0),
        (1024.0, [(0.0, 0), (5.0, 1024)], 60.0),  # 205 B/s: too slow
        (1024.0, [(0.0, 0), (5.0, 5120)], 65.0),  # exactly 1 KiB/s
        (1024.0, [(0.0, 0), (5.0, 4000), (10.0, 10240)], 70.0),  # catches up over the window
    ],
)
def test_stall_watch(
    min_rate: float | None, observations: list[tuple[float, int]], deadline: float | None
) -> None:
    """Stalled = `stall_seconds` (60 here) without growth of at least min_rate per second."""
    watch = StallWatch(60.0, min_rate)
    for now, moved in observations:
        watch.observe(moved, now)
    assert watch.deadline == deadline


@pytest.mark.parametrize(
    ("text", "mode", "reason"),
    [
        (MISSING_TEXT, "pull", Reason.SOURCE_MISSING),
        ("Remote side failed with status code 403", "push", Reason.DESTINATION_ERROR),
        ("Remote side failed with status code 500", "pull", Reason.SOURCE_MISSING),
        ("Couldn't connect to server", "pull", Reason.CONNECT),
        ("Couldn't connect to server", "push", Reason.CONNECT),
        ("Couldn't resolve host name", "push", Reason.DNS),
        ("SSL certificate problem: unable to get local issuer certificate", "pull", Reason.TLS),
        ("Timeout was reached", "pull", Reason.TIMEOUT),
        ("Unable to open /a; no such file or directory", "push", Reason.SOURCE_MISSING),
        ("Unknown filesystem write failure.", "pull", Reason.DESTINATION_ERROR),
        ("Failed to finalize and close file handle.", "pull", Reason.DESTINATION_ERROR),
        (
            "Internal logic error led to early abort; current offset is 0",
            "push",
            Reason.TPC_FAILURE,
        ),
        ("", "pull", Reason.TPC_FAILURE),
    ],
)
def test_failure_reason(text: str, mode: str, reason: Reason) -> None:
    """XrdHttp's "Remote side failed" blames the passive side (source in pull, destination
    in push); curl transport errors keep their transport reason; the rest is tpc_failure."""
    assert failure_reason(text, mode) is reason
