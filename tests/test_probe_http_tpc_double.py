"""The http-tpc probe against a loopback test double that speaks XrdHttp's wire format (201,
then perf markers, then a verdict line) but can be told to stall, crawl, go silent, forget
the verdict or fail: the cases a healthy XRootD lake does not produce on demand."""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from http_helpers import serve_handler

from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import adler32_hex, source_payload
from lakeprobe.probes.credentials.tokens import FileToken
from lakeprobe.probes.transfer.http_tpc import PROBE_TYPE, HttpTpcParams

SIZE = 4096
STALL = 1.0
Script = list[tuple[float, bytes]]  # (seconds to wait, then bytes to send)


def marker(moved: int) -> bytes:
    return (
        f"Perf Marker\nTimestamp: {int(time.time())}\nStripe Index: 0\n"
        f"Stripe Bytes Transferred: {moved}\nTotal Stripe Count: 1\nEnd\n"
    ).encode()


SCRIPTS: dict[str, Script] = {
    "success": [(0, marker(0)), (0.05, marker(1000)), (0.05, marker(2000)),
                (0.05, b"success: Created")],
    "stall": [(0, marker(0)), (0.1, marker(100)), (0.1, marker(200)),
              *[(0.1, marker(200))] * 100],
    "crawl": [(0.1 if i else 0, marker(10 * i)) for i in range(100)],  # 100 B/s
    "silent": [(0, marker(0)), (10.0, b"success: Created")],
    "no_verdict": [(0, marker(0)), (0.05, marker(SIZE))],
    "failure": [(0, marker(0)), (0.05, b"failure: Internal logic error led to early abort")],
    "echo": [(0, marker(0)), (0, b"failure: refused Authorization: Bearer src-token-0123456789")],
    # Numbers int() refuses: '²' passes str.isdigit(); 5000 digits exceed Python's limit.
    "hostile_numbers": [(0, marker(0)),
                        *[(0.02, b"Perf Marker\n" + line + b"\nEnd\n") for line in (
                            "Stripe Bytes Transferred: \u00b2".encode(),
                            b"Stripe Index: " + b"7" * 5000,
                            b"Stripe Bytes Transferred: " + b"9" * 5000)],
                        (0.02, b"success: Created")],
}  # fmt: skip


EMPTY_LISTING = b'<D:multistatus xmlns:D="DAV:"></D:multistatus>'


@dataclass
class FakeTpc:
    """Both endpoints of a pair on one plain-http loopback server: HEAD answers the source
    file's size and adler32 (for the source and for the copy, 404 once it was deleted),
    MKCOL 405, DELETE 204,
    PROPFIND (the destination sweep) an empty listing, and COPY 201 with the body of
    `script`, paced as scripted."""

    script: Script = field(default_factory=list)
    url: str = ""
    copies: list[dict[str, str]] = field(default_factory=list)  # COPY request headers
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    dirs: set[str] | None = None  # set: MKCOL as a strict server (409 without the parent)
    mkcols: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # the probe verifies its DELETE by HEAD

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD" and request.path not in self.deleted:
            return web.Response(body=source_payload(SIZE), headers=self.digest())
        if request.method == "HEAD":
            return web.Response(status=404)
        if request.method == "MKCOL":
            return web.Response(status=self.mkcol(request.path))
        if request.method == "DELETE":
            self.deleted.add(request.path)
            return web.Response(status=204)
        if request.method == "PROPFIND":
            return web.Response(status=207, body=EMPTY_LISTING, content_type="application/xml")
        self.copies.append(dict(request.headers))
        response = web.StreamResponse(status=201, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            for delay, chunk in self.script:
                await self.wait(request, delay)
                await response.write(chunk)
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            return response
        await response.write_eof()
        return response

    def mkcol(self, path: str) -> int:
        self.mkcols.append(path)
        if not path.endswith("/"):  # RFC 4918 servers (nginx) want the collection's slash
            return 409
        path = path.rstrip("/") or "/"
        if self.dirs is None or path in self.dirs:
            return 405
        if posixpath.dirname(path) not in self.dirs:
            return 409
        self.dirs.add(path)
        return 201

    async def wait(self, request: web.Request, seconds: float) -> None:
        """Sleep, but notice a client that hung up (a write would fail too, later)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError
            await asyncio.sleep(min(0.02, seconds))

    @staticmethod
    def digest() -> dict[str, str]:
        return {"Digest": f"adler32={adler32_hex(source_payload(SIZE))}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTpc]:
    double = FakeTpc()
    async with serve_handler(double.handle) as double.url:
        yield double


async def probe(
    fake: FakeTpc,
    mode: str = "pull",
    min_rate: float | None = None,
    tokens: Path | None = None,
    test_dir: str = "/t",
) -> ProbeResult:
    def side(name: str) -> Target:
        token = FileToken(tokens / name) if tokens else None
        return Target(site=name, endpoint="fake", url=fake.url, test_dir=test_dir, token=token,
                      insecure_token_transport=True)  # the double speaks plain http  # fmt: skip

    params = HttpTpcParams(
        file_size_bytes=SIZE, stall_seconds=STALL, min_rate_bytes_per_second=min_rate
    )
    outcome = await run_probe(
        PROBE_TYPE, PairTarget(side("src"), side("dst"), mode), params,
        timeout=8.0, probe_host="h", log=logging.getLogger("test.http_tpc"),
    )  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def step(result: ProbeResult, name: str) -> tuple[Status, Reason, float, str]:
    found = next(s for s in result.steps if s.name == name)
    return found.status, found.reason, found.duration_seconds, found.detail


@pytest.mark.parametrize(
    ("script", "min_rate", "reason", "seconds"),
    [
        ("stall", None, Reason.STALL, (1.2, 1.9)),  # last progress at 0.2 s
        ("crawl", 1000.0, Reason.STALL, (1.0, 1.9)),  # growing, but at 100 B/s
        ("silent", None, Reason.STALL, (1.0, 1.9)),  # one marker, then nothing at all
        ("no_verdict", None, Reason.PROTOCOL_ERROR, (0.0, 0.5)),
        ("failure", None, Reason.TPC_FAILURE, (0.0, 0.5)),
    ],
)
async def test_copy_failures(
    fake: FakeTpc,
    script: str,
    min_rate: float | None,
    reason: Reason,
    seconds: tuple[float, float],
) -> None:
    """201 is never enough: no progress (at the minimum rate) for stall_seconds aborts the
    COPY (the double sees the client hang up) with `stall`; a body without a verdict is a
    protocol error; `failure:` is tpc_failure with the remote text in the detail. The copy
    is deleted in every case."""
    fake.script = SCRIPTS[script]
    result = await probe(fake, min_rate=min_rate)
    _status, copy_reason, duration, detail = step(result, "copy")
    assert (result.status, result.reason, copy_reason) == (Status.CRITICAL, reason, reason)
    assert seconds[0] <= duration <= seconds[1], detail
    assert step(result, "delete")[0] is Status.OK
    if reason is Reason.STALL:
        await asyncio.wait_for(fake.disconnected.wait(), 2.0)
        assert detail.startswith(f"COPY: no progress{' at 1000 B/s or more' if min_rate else ''}")
    if script == "failure":
        assert detail == "COPY: 201, then failure: Internal logic error led to early abort"


@pytest.mark.parametrize("mode", ["pull", "push"])
async def test_success_headers_and_measurements(fake: FakeTpc, mode: str, tmp_path: Path) -> None:
    """Pull sends `Source:` to the destination, push `Destination:` to the source; the active
    side's token is the Authorization, the passive side's goes in TransferHeaderAuthorization,
    and no `Credential` header is sent. Measurements: the file size (XrdHttp's markers lag),
    a throughput, the time to the first marker."""
    (tmp_path / "src").write_text("src-token-0123456789\n")
    (tmp_path / "dst").write_text("dst-token-0123456789\n")
    fake.script = SCRIPTS["success"]
    result = await probe(fake, mode, tokens=tmp_path)
    assert result.status is Status.OK, result.steps
    assert next(s.name for s in result.steps) == "credential"
    (headers,) = fake.copies
    active, passive = ("dst", "src") if mode == "pull" else ("src", "dst")
    assert headers["Authorization"] == f"Bearer {active}-token-0123456789"
    assert headers["TransferHeaderAuthorization"] == f"Bearer {passive}-token-0123456789"
    assert "Credential" not in headers
    if mode == "pull":
        assert headers["Source"] == f"{fake.url}/t/lakeprobe-source-h-{SIZE}"
    else:
        assert headers["Destination"].startswith(f"{fake.url}/t/lakeprobe-h-")
    assert result.measurements[Measurement.TRANSFER_BYTES] == SIZE
    assert 0 < result.measurements[Measurement.FIRST_MARKER] < 0.1
    assert result.measurements[Measurement.TRANSFER_THROUGHPUT] > 0
    assert "token-0123456789" not in repr(result)


async def test_remote_text_is_redacted(fake: FakeTpc, tmp_path: Path) -> None:
    """A failure text that echoes a token never reaches the step detail."""
    (tmp_path / "src").write_text("src-token-0123456789\n")
    (tmp_path / "dst").write_text("dst-token-0123456789\n")
    fake.script = SCRIPTS["echo"]
    result = await probe(fake, tokens=tmp_path)
    assert result.reason is Reason.TPC_FAILURE
    assert "token-0123456789" not in repr(result)
    assert "Bearer ***" in step(result, "copy")[3]


async def test_mkcol_creates_missing_parents(fake: FakeTpc) -> None:
    """A strict WebDAV server answers 409 to MKCOL under a missing parent (and without the
    trailing slash): the probe walks up until an ancestor is created or exists, then
    creates the missing ones top-down, always with the slash."""
    fake.dirs, fake.script = {"/"}, SCRIPTS["success"]
    result = await probe(fake, test_dir="/a/b/t")
    assert result.status is Status.OK, result.steps
    assert fake.mkcols == ["/a/b/t/", "/a/b/", "/a/", "/a/b/", "/a/b/t/"]


async def test_unreadable_token_is_credential(fake: FakeTpc, tmp_path: Path) -> None:
    """A token file that cannot be read: UNKNOWN credential; nothing is sent after it."""
    fake.script = SCRIPTS["success"]
    result = await probe(fake, tokens=tmp_path / "missing")
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert fake.copies == []
    assert step(result, "delete")[0] is Status.SKIPPED


async def test_hostile_marker_numbers_are_garbage(fake: FakeTpc) -> None:
    """Perf markers whose numbers are not 1-20 ASCII digits are dropped as garbage: the copy
    is judged by its verdict (here OK), never an internal error."""
    fake.script = SCRIPTS["hostile_numbers"]
    result = await probe(fake)
    assert (result.status, result.reason) == (Status.OK, Reason.NONE), result.steps
    assert step(result, "copy")[3].startswith("1 perf markers, success: Created")
