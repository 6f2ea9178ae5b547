"""Send one HTTP-TPC COPY and follow its answer: status, perf markers, stall, verdict.

The body is fed to MarkerParser chunk by chunk as it arrives (HttpClient's `sink`); every
chunk moves the stall deadline of an `asyncio.timeout` that, when it fires, cancels the
request (aiohttp then closes the connection, which XrdHttp takes as the end of the copy).
The stall watch is armed by the first body bytes: until the COPY is answered, the client's
connect/read timeouts and the run deadline apply, and their reason is TIMEOUT.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
from dataclasses import dataclass

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    Reply,
    status_failure,
    status_reason,
)
from lakeprobe.probes.clients.tpcmarkers import MarkerParser, StallWatch, failure_reason
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed, passed
from lakeprobe.probes.credentials.secrets import Secret, redact

COPY_STARTED = frozenset({201, 202})
MKCOL_OK = frozenset({201, 405})  # 405: it exists already
MAX_BODY = 4 * 1024 * 1024  # ~150 bytes of markers per stripe every few seconds
HEAD_BYTES = 512  # kept for the detail of a refused COPY
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    step: StepOutcome
    answered: bool = False  # the active side accepted the COPY (201/202) and sent a body
    bytes_transferred: int = 0  # from the perf markers
    first_marker_seconds: float | None = None  # COPY sent -> first complete perf marker
    seconds: float = 0.0  # COPY sent -> verdict (or stall)
    markers: int = 0


async def stream_copy(
    http: HttpClient,
    path: str,
    headers: dict[str, str],
    mode: str,
    stall_seconds: float,
    min_rate: float | None = None,
) -> CopyOutcome:
    """COPY `path` on the active side. Raises RequestFailed for transport failures."""
    loop = asyncio.get_running_loop()
    parser = MarkerParser(started=loop.time())
    watch = StallWatch(stall_seconds, min_rate)
    head = bytearray()
    try:
        async with asyncio.timeout(None) as timer:

            def sink(chunk: bytes) -> None:
                now = loop.time()
                head.extend(chunk[: max(0, HEAD_BYTES - len(head))])
                parser.feed(chunk, now)
                watch.observe(parser.bytes_transferred, now)
                timer.reschedule(watch.deadline)

            reply = await http.request(
                "COPY", path, expect=ANY_STATUS, headers=headers, sink=sink, max_body=MAX_BODY
            )
    except TimeoutError:  # only our stall timer: aiohttp's timeouts become RequestFailed
        return _stalled(parser, stall_seconds, min_rate, loop.time())
    if reply.status not in COPY_STARTED:
        refused = dataclasses.replace(reply, body=bytes(head))
        return CopyOutcome(status_failure(refused, refused_reason(reply, bytes(head), mode)))
    now = loop.time()
    verdict, seconds = parser.finish(now), now - parser.started
    if verdict is None:
        last = parser.last_line or "an empty body"
        step = failed(Reason.PROTOCOL_ERROR, _clip(f"COPY: {reply.status}, no verdict: {last}"))
    elif not verdict.success:
        text = f"COPY: {reply.status}, then failure: {verdict.text}"
        step = failed(failure_reason(verdict.text, mode), _clip(text))
    else:
        step = passed(
            _clip(f"{parser.markers} perf markers, success: {verdict.text} in {seconds:.3f} s")
        )
    return _outcome(step, parser, seconds)


def _outcome(step: StepOutcome, parser: MarkerParser, seconds: float) -> CopyOutcome:
    return CopyOutcome(
        step,
        answered=True,
        bytes_transferred=parser.bytes_transferred,
        first_marker_seconds=parser.first_marker_seconds,
        seconds=seconds,
        markers=parser.markers,
    )


def _stalled(
    parser: MarkerParser, stall_seconds: float, min_rate: float | None, now: float
) -> CopyOutcome:
    floor = f" at {min_rate:g} B/s or more" if min_rate else ""
    detail = (
        f"COPY: no progress{floor} for {stall_seconds:g} s: "
        f"{parser.bytes_transferred} bytes after {parser.markers} perf markers"
    )
    return _outcome(failed(Reason.STALL, detail), parser, now - parser.started)


def refused_reason(reply: Reply, head: bytes, mode: str) -> Reason:
    """The Reason of a COPY answered with an error status (before any copy started).
    XrdHttp: push of a missing source 400 `Unable to open ...; no such file or directory`;
    pull into a missing directory 400 `Unable to create ...; no such file or directory`;
    pull into a read-only directory 401 `... permission denied`; `Overwrite: F` onto an
    existing file 412."""
    text = head.decode("utf-8", "replace").lower()
    if reply.status in (401, 403):
        return Reason.AUTH
    if reply.status == 404 or "no such file" in text:
        return Reason.SOURCE_MISSING if mode == "push" else Reason.DESTINATION_ERROR
    if reply.status in (409, 412, 507):
        return Reason.DESTINATION_ERROR
    return status_reason(reply.status)


async def ensure_collection(
    http: HttpClient,
    directory: str,
    *,
    token: Secret | None = None,
    reason: Reason | None = Reason.DESTINATION_ERROR,
) -> StepOutcome:
    """MKCOL `directory`; on 409 (RFC 4918: a parent is missing) its ancestors top-down, then
    it. 201 and 405 (exists) are fine. Pull needs it: XrdHttp does not create parents (400).
    `token` replaces the client's; a refusal fails with `reason` (None: by status code)."""
    directory = posixpath.normpath(directory)
    if directory == "/":
        return passed("the test directory is the root")
    reply = await http.request("MKCOL", directory, expect=ANY_STATUS, token=token)
    if reply.status in MKCOL_OK:
        return passed(f"MKCOL: {reply.status}")
    if reply.status != 409:
        return status_failure(reply, reason)
    parts = directory.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        ancestor = "/" + "/".join(parts[:depth])
        reply = await http.request("MKCOL", ancestor, expect=ANY_STATUS, token=token)
        if reply.status not in MKCOL_OK:
            return status_failure(reply, reason)
    return passed(f"MKCOL: 409, created with its {len(parts) - 1} parents")


def _clip(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
