"""Send one HTTP-TPC COPY and follow its answer: status, perf markers, stall, verdict.

The body is fed to MarkerParser chunk by chunk as it arrives (HttpClient's `sink`); every
chunk moves the stall deadline of an `asyncio.timeout` that, when it fires, cancels the
request (the HTTP client then closes the connection, which XrdHttp takes as the end of the
copy).
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
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason, StepOutcome, failed, passed
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
    status: int = 0  # the active side's status, kept when it refused the COPY (0: answered)


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
    except TimeoutError:  # only our stall timer: the client's timeouts become RequestFailed
        return _stalled(parser, stall_seconds, min_rate, loop.time())
    if reply.status not in COPY_STARTED:
        refused = dataclasses.replace(reply, body=bytes(head))
        step = status_failure(refused, refused_reason(reply, bytes(head), mode))
        return CopyOutcome(step, status=reply.status)
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
    return copy_refused_reason(reply.status, head.decode("utf-8", "replace"), mode)


def copy_refused_reason(status: int, text: str, mode: str) -> Reason:
    """refused_reason from the status and the answer's text: gfal2 reports the same refusal
    as `copy HTTP <status>` (probes/clients/gfalcopy.py), mapped here alike."""
    if status == 507 or NO_SPACE_TEXT.search(text):
        return Reason.NO_SPACE
    if status in (401, 403):
        return Reason.AUTH
    if status == 404 or "no such file" in text.lower():
        return Reason.SOURCE_MISSING if mode == "push" else Reason.DESTINATION_ERROR
    if status in (409, 412):
        return Reason.DESTINATION_ERROR
    return status_reason(status)


async def ensure_collection(
    http: HttpClient,
    directory: str,
    *,
    token: Secret | None = None,
    reason: Reason | None = Reason.DESTINATION_ERROR,
) -> StepOutcome:
    """Create `directory` and its missing parents, by RFC 4918: MKCOL with a trailing slash
    (nginx answers 409 without one), 201 created, 405 exists, 409 a parent is missing. On
    409 it walks up until an ancestor is created or answers otherwise (exists, or refuses:
    then the creation below decides), then creates the missing ones top-down. Push and pull
    need it: XrdHttp and nginx do not create parents (400 and 409/500). `token` replaces the
    client's; a refusal fails with `reason` (None: by status code)."""
    directory = posixpath.normpath(directory)
    if directory in ("/", "//"):
        return passed("the test directory is the root")
    missing: list[str] = []
    status = 0
    for current in _self_and_ancestors(directory):
        reply = await _mkcol(http, current, token)
        status = reply.status
        if status != 409:
            if current == directory and status not in MKCOL_OK:
                return status_failure(reply, reason)
            break
        missing.append(current)
    if not missing:
        return passed("MKCOL: 201, created" if status == 201 else f"MKCOL: {status}, exists")
    for current in reversed(missing):
        reply = await _mkcol(http, current, token)
        if reply.status not in MKCOL_OK:
            return status_failure(reply, reason)
    parents = len(missing) - 1 + (status == 201)  # the walk up's last MKCOL may create one
    return passed(f"MKCOL: 409, created with {parents} missing parents")


def _self_and_ancestors(directory: str) -> list[str]:
    """`directory` and its ancestors below the root, deepest first: /a/b -> [/a/b, /a]."""
    parts = directory.strip("/").split("/")
    return ["/" + "/".join(parts[:depth]) for depth in range(len(parts), 0, -1)]


async def _mkcol(http: HttpClient, directory: str, token: Secret | None) -> Reply:
    return await http.request("MKCOL", directory + "/", expect=ANY_STATUS, token=token)


def _clip(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
