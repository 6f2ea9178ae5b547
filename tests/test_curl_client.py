"""HttpClient over libcurl on the asyncio loop: what the switch from aiohttp must keep or give.
TLS sessions are resumed across a run's connections when the server closes each one (as
XrdHttp does after a 404); the environment's proxy is never used; small bodies go out with
the headers and no form Content-Type; a cancelled request closes its connection; bodies over
the limit are refused. Against real loopback servers (an asyncio TLS server with the test CA)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.probes.clients.httpclient import HttpClient, RequestFailed
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target

LOG = logging.getLogger("test.curl_client")


@dataclass
class RawServer:
    """HTTP/1.1 by hand: records each connection's TLS resumption and each request's head
    and body; answers 200 with `body`, closing the connection when `close` is set."""

    close: bool = True
    body: bytes = b"ok"
    hold: bool = False  # never answer (for cancellation)
    resumed: list[bool] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)  # a request head arrived
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        self.resumed.append(bool(tls is not None and tls.session_reused))
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                self.heads.append(head)
                self.received.set()
                length = next(
                    (int(line.split(":", 1)[1]) for line in head.split("\r\n")
                     if line.lower().startswith("content-length:")), 0,
                )  # fmt: skip
                self.bodies.append(await reader.readexactly(length))
                if self.hold:
                    await reader.read()  # until the client closes
                    self.closed.set()
                    return
                connection = "close" if self.close else "keep-alive"
                body = b"" if head.startswith("HEAD ") else self.body  # HEAD: headers only
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
                    f"Connection: {connection}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(server: RawServer, tls: ssl.SSLContext | None) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


def server_tls(pki: TestPki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.host_cert, pki.host_key)
    return context


def client(url: str, ca_dir: Path | None, seconds: float = 10) -> HttpClient:
    target = Target(site="S", endpoint="e", url=url, test_dir="/t", ca_dir=ca_dir)
    deadline = asyncio.get_running_loop().time() + seconds
    ctx = ProbeContext(
        StepRecorder(deadline, 10, 1), deadline, "h", LOG, StateStore.memory(), ProbeResources()
    )
    return HttpClient(target, ctx)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_tls_session_resumed_when_the_server_closes(
    pki: TestPki, version: ssl.TLSVersion
) -> None:
    """Three requests to a server that closes after every answer: three connections, and
    the second and third resume the first one's TLS session (no full handshake), with TLS
    1.3 tickets and with TLS 1.2."""
    server = RawServer(close=True)
    tls = server_tls(pki)
    tls.maximum_version = version
    async with serving(server, tls) as port, client(f"davs://localhost:{port}", pki.ca_dir) as http:
        for name in ("a", "b", "c"):
            reply = await http.request("GET", f"/t/{name}", expect={200})
            assert reply.body == b"ok"
    assert len(server.resumed) == 3
    assert server.resumed == [False, True, True]


async def test_keep_alive_connection_reused(pki: TestPki) -> None:
    """A server that keeps the connection: every request of the run on one connection."""
    server = RawServer(close=False)
    async with (
        serving(server, server_tls(pki)) as port,
        client(f"davs://localhost:{port}", pki.ca_dir) as http,
    ):
        for name in ("a", "b", "c"):
            await http.request("HEAD" if name == "b" else "GET", f"/t/{name}", expect={200})
    assert len(server.resumed) == 1
    assert [head.split(" ", 1)[0] for head in server.heads] == ["GET", "HEAD", "GET"]


async def test_untrusted_certificate_is_tls(pki: TestPki, tmp_path: Path) -> None:
    """A server whose CA the client does not trust fails with TLS, not connect."""
    other = make_test_pki(tmp_path / "other")
    server = RawServer()
    async with (
        serving(server, server_tls(pki)) as port,
        client(f"davs://localhost:{port}", other.ca_dir) as http,
    ):
        with pytest.raises(RequestFailed) as failure:
            await http.request("GET", "/t/a", expect={200})
    assert failure.value.outcome.reason is Reason.TLS
    assert server.heads == []


async def test_proxy_from_the_environment_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """http_proxy/https_proxy/all_proxy pointing at a dead loopback port change nothing: the
    request goes straight to the endpoint."""
    for name in ("http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    server = RawServer(close=False)
    async with serving(server, None) as port, client(f"http://127.0.0.1:{port}", None) as http:
        reply = await http.request("GET", "/t/a", expect={200})
    assert reply.status == 200
    assert server.heads[0].startswith("GET /t/a HTTP/1.1\r\n")


async def test_small_body_sent_with_its_length_and_no_form_type() -> None:
    """A body below the inline size arrives whole with Content-Length and without libcurl's
    form Content-Type; a caller's own Content-Type is kept."""
    server = RawServer(close=False)
    async with serving(server, None) as port, client(f"http://127.0.0.1:{port}", None) as http:
        await http.request("PUT", "/t/a", expect={200}, data=b"12345")
        await http.request(
            "POST", "/t/b", expect={200}, data=b"{}", headers={"Content-Type": "application/json"}
        )
    first, second = (head.lower() for head in server.heads)
    assert server.bodies == [b"12345", b"{}"]
    assert "content-length: 5\r\n" in first
    assert "content-type" not in first
    assert "expect:" not in first
    assert "content-type: application/json\r\n" in second


async def test_cancelled_request_closes_its_connection() -> None:
    """Cancelling a request in flight (the TPC stall watch does) closes the connection, so
    the server sees the request end."""
    server = RawServer(hold=True)
    async with serving(server, None) as port, client(f"http://127.0.0.1:{port}", None) as http:
        request = asyncio.ensure_future(http.request("GET", "/t/a", expect={200}))
        await asyncio.wait_for(server.received.wait(), 5)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(server.closed.wait(), 5)


async def test_body_over_the_limit_is_refused() -> None:
    """An answer longer than max_body stops the transfer with a protocol error."""
    server = RawServer(close=False, body=b"x" * 5000)
    async with serving(server, None) as port, client(f"http://127.0.0.1:{port}", None) as http:
        with pytest.raises(RequestFailed) as failure:
            await http.request("GET", "/t/a", expect={200}, max_body=4096)
    assert failure.value.outcome.reason is Reason.PROTOCOL_ERROR
    assert "body over 4096 bytes" in failure.value.outcome.detail


async def test_large_upload_over_tls_arrives_whole(pki: TestPki) -> None:
    """An 8 MiB body over TLS (sent in bursts of records per writable event) arrives whole
    and in order, then the connection serves the next request."""
    server = RawServer(close=False)
    data = bytes(range(256)) * (8 * 1024 * 1024 // 256) + b"tail"
    async with (
        serving(server, server_tls(pki)) as port,
        client(f"davs://localhost:{port}", pki.ca_dir) as http,
    ):
        await http.request("PUT", "/t/big", expect={200}, data=data)
        await http.request("GET", "/t/next", expect={200})
    assert server.bodies[0] == data
    assert len(server.resumed) == 1


async def test_a_failing_callback_ends_the_request_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """When libcurl aborts its multi interface (here: our socket callback raises), the
    transfers in flight fail at once with an error that says so, instead of hanging until
    the run's deadline."""
    from lakeprobe.probes.clients import curlmulti

    def broken(*_: object) -> None:
        raise ValueError("broken callback")

    monkeypatch.setattr(curlmulti.CurlMulti, "_on_socket", broken)
    server = RawServer(hold=True)
    async with serving(server, None) as port, client(f"http://127.0.0.1:{port}", None) as http:
        with pytest.raises(RuntimeError, match=r"^libcurl's multi interface failed: "):
            await asyncio.wait_for(http.request("GET", "/t/a", expect={200}), 5)
