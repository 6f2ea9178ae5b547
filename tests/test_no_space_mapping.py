"""Storage full is `no_space` whatever the wire says: HTTP 507 or a refusal saying so, XRootD
kXR_NoSpace / ENOSPC / "no space left", gfal2's and the TPC verdicts' texts, and an upload
the server breaks off (XrdHttp on a full disk) once a 1-byte PUT or an OPTIONS shows that the
server itself is up. The strings are the ones captured on the local lake (test_no_space.py)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lakeprobe.probes.clients.copyjob import CopyEnd
from lakeprobe.probes.clients.gfalcopy import gfal_reason
from lakeprobe.probes.clients.httpclient import HttpClient, Reply, RequestFailed, status_failure
from lakeprobe.probes.clients.httpheaders import Headers
from lakeprobe.probes.clients.tpcmarkers import failure_reason
from lakeprobe.probes.clients.xrdasync import XrdStatus, reason_for
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target

LOG = logging.getLogger("test.no_space_mapping")
DST = "/lakeprobe/lakeprobe-h-1-abc"


def reply(status: int, body: bytes) -> Reply:
    return Reply("PUT", status, "", Headers(), body, len(body), 0.1)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (507, b"", Reason.NO_SPACE),
        (500, b"Unable to write /x; no space left on device", Reason.NO_SPACE),
        (403, b"Disk quota exceeded", Reason.NO_SPACE),
        (500, b"Unable to write /x; input/output error", Reason.SERVER_ERROR),
        (403, b"Unable to create /x; permission denied", Reason.AUTH),
    ],
)
def test_http_status(status: int, body: bytes, reason: Reason) -> None:
    """507 (RFC 4918 Insufficient Storage) and a refusal whose body says the storage is full
    are no_space; other refusals keep their status reason."""
    assert status_failure(reply(status, body)).reason is reason


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (XrdStatus(False, 400, 3009, "[3009] Unable to write /x; no space left on device"),
         Reason.NO_SPACE),
        (XrdStatus(False, 400, 3005, "[3005] [ERROR] Local error: no space left on device:"),
         Reason.NO_SPACE),
        (XrdStatus(False, 400, 3005, "[3005] Unable to open /x; input/output error"),
         Reason.SERVER_ERROR),
        (XrdStatus(False, 1, errno.ENOSPC, "no space"), Reason.NO_SPACE),
        (XrdStatus(False, 1, errno.EDQUOT, "quota"), Reason.NO_SPACE),
        (XrdStatus(False, 400, 3011, "[3011] Unable to open /x; no such file"), Reason.NOT_FOUND),
    ],
)  # fmt: skip
def test_xrootd_status(status: XrdStatus, reason: Reason) -> None:
    """kXR_NoSpace (3009), a kXR_FSError saying "no space" (a TPC destination's helper),
    ENOSPC and EDQUOT are no_space; 3011 stays kXR_NotFound."""
    assert reason_for(status) is reason


def ends() -> tuple[CopyEnd, CopyEnd]:
    return tuple(  # type: ignore[return-value]
        CopyEnd(Target(site, "root", f"root://{site}", "/lakeprobe"), path)
        for site, path in (("a", "/lakeprobe/src"), ("b", DST))
    )


@pytest.mark.parametrize(
    ("code", "message", "mode", "reason"),
    [
        (19, "Error on XrdCl::CopyProcess::Run(): [ERROR] Server responded with an error: "
             "[3005] [ERROR] Local error: no space left on device:  (destination)",
         "pull", Reason.NO_SPACE),
        (5, "TRANSFER ERROR: Copy failed (3rd pull). Last attempt: Transfer failure: Error when "
            f"interacting with local filesystem: Unable to write {DST}; no space left on device",
         "pull", Reason.NO_SPACE),
        (5, "TRANSFER ERROR: Copy failed (3rd push). Last attempt: Transfer failure: Server "
            "returned nothing (no headers, no data)", "push", Reason.DESTINATION_ERROR),
        (5, "TRANSFER ERROR: Copy failed (3rd push). Last attempt: Transfer failure: Remote "
            "side failed with status code 403", "push", Reason.DESTINATION_ERROR),
        (13, "TRANSFER ERROR: Copy failed (3rd pull). Last attempt: copy HTTP 401 : "
             "Authentication Error", "pull", Reason.AUTH),
        (5, "TRANSFER ERROR: Copy failed (3rd pull). Last attempt: copy HTTP 500 : "
            "Unable to open /lakeprobe/src", "pull", Reason.SERVER_ERROR),
        (5, "copy HTTP 507 : Insufficient Storage", "pull", Reason.NO_SPACE),
        (errno.ENOSPC, "write failed", "pull", Reason.NO_SPACE),
    ],
)  # fmt: skip
def test_gfal2_reason(code: int, message: str, mode: str, reason: Reason) -> None:
    """gfal2 relays the wire text the native engines read; it maps the same way: a COPY
    refused with 500 whose text names the source is server_error (as natively), not
    source_missing."""
    source, destination = ends()
    assert gfal_reason(code, message, source, destination, mode) is reason


@pytest.mark.parametrize(
    ("text", "mode", "reason"),
    [
        (f"Error when interacting with local filesystem: Unable to write {DST}; no space "
         "left on device (code=28)", "pull", Reason.NO_SPACE),
        ("Remote side failed with status code 507", "push", Reason.NO_SPACE),
        ("Server returned nothing (no headers, no data)", "push", Reason.DESTINATION_ERROR),
        ("Server returned nothing (no headers, no data)", "pull", Reason.SOURCE_MISSING),
    ],
)  # fmt: skip
def test_tpc_verdict(text: str, mode: str, reason: Reason) -> None:
    """A COPY's `failure:` verdict: a full disk is no_space; an empty reply blames the
    passive side, like a relayed error status."""
    assert failure_reason(text, mode) is reason


class DroppingServer:
    """A raw HTTP server that resets every PUT with a body over 1 byte, as XrdHttp does on a
    full disk. `tiny` is its answer to a 1-byte PUT ("reset" resets it too) and `options`
    whether it answers OPTIONS at all."""

    def __init__(self) -> None:
        self.tiny = "reset"
        self.options = True
        self.requests: list[tuple[str, int]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method = head.split(" ", 1)[0]
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)  # fmt: skip
        self.requests.append((method, length))
        if method == "OPTIONS" and self.options:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif method == "PUT" and length == 1 and self.tiny != "reset":
            await reader.readexactly(1)
            status = self.tiny.encode()
            writer.write(b"HTTP/1.1 " + status + b" X\r\nContent-Length: 0\r\n\r\n")
        else:  # reset: unread body bytes and SO_LINGER 0 make the close an RST
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        await writer.drain()
        writer.close()


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[DroppingServer, str]]:
    server = DroppingServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield server, f"http://127.0.0.1:{port}"
    listener.close()
    await listener.wait_closed()


async def put(url: str, ca_dir: Path) -> RequestFailed:
    target = Target(site="S", endpoint="e", url=url, test_dir="/t", ca_dir=ca_dir)
    deadline = asyncio.get_running_loop().time() + 10
    ctx = ProbeContext(
        StepRecorder(deadline, 10, 1), deadline, "h", LOG, StateStore.memory(), ProbeResources()
    )
    async with HttpClient(target, ctx) as http:
        with pytest.raises(RequestFailed) as failure:
            await http.request("PUT", "/t/f", expect={201}, data=bytes(1024 * 1024))
    return failure.value


@pytest.mark.parametrize(
    ("tiny", "options", "reason", "detail"),
    [
        ("507", True, Reason.NO_SPACE, "a 1-byte PUT: PUT: 507"),
        ("201", True, Reason.NO_SPACE, "a 1-byte PUT was accepted"),
        ("reset", True, Reason.NO_SPACE, "while OPTIONS is answered"),
        ("403", True, Reason.AUTH, "a 1-byte PUT: PUT: 403"),
    ],
)
async def test_upload_broken_off(
    dropping: tuple[DroppingServer, str], tmp_path: Path, tiny: str, options: bool,
    reason: Reason, detail: str,
) -> None:  # fmt: skip
    """A PUT that is reset is followed by one 1-byte PUT: its answer names the reason; if
    that is reset too, an answered OPTIONS shows the server is up, so the server drops
    uploads: no_space, not connect."""
    server, url = dropping
    server.tiny, server.options = tiny, options
    failure = await put(url, tmp_path)
    assert failure.outcome.reason is reason, failure.outcome.detail
    assert failure.outcome.detail.startswith("PUT: ")
    assert detail in failure.outcome.detail
    sizes = [length for method, length in server.requests if method == "PUT"]
    uploads, probes = sizes[: sizes.index(1)], sizes[sizes.index(1) :]
    assert uploads  # the whole upload came first
    assert set(uploads) == {1024 * 1024}
    assert set(probes) == {1}


async def test_server_that_answers_nothing_stays_a_transport_failure(
    dropping: tuple[DroppingServer, str], tmp_path: Path
) -> None:
    """A server that resets every request, OPTIONS too, is not called full: the transport
    reason of the broken upload stands."""
    server, url = dropping
    server.options = False
    failure = await put(url, tmp_path)
    assert failure.outcome.reason in (Reason.CONNECT, Reason.PROTOCOL_ERROR)
    assert server.requests[-1] == ("OPTIONS", 0)  # asked (and retried), never answered
