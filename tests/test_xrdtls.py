"""roots:// host names (probes/clients/xrdtls.py, run by xrdhandshake.check_xrootd): XrdCl 5.5
never checks the name for localhost, 127.0.0.1 or [::1], so lakeprobe makes the TLS handshake
itself and refuses a certificate issued for another host, on every spelling of the host.
Peers here are small asyncio servers on loopback speaking just enough XRootD, with TLS from
a test PKI; lake tests run real xrootd 5.5.3 sites, one serving a certificate for
`other.example` only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lakeprobe.lake import LocalLake
from lakeprobe.lake.lake import WRONG_HOST_NAME
from lakeprobe.lake.pki import TestPki, issue_host_cert, make_test_pki
from lakeprobe.probes.clients.xrdhandshake import KXR_GOTO_TLS, KXR_HAVE_TLS, check_xrootd
from lakeprobe.probes.clients.xrdtls import describe_names, names_match
from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SERVER = 1  # kXR_DataServer


def cert(dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), cn: str = "") -> dict[str, Any]:
    """A certificate as SSLSocket.getpeercert() decodes it."""
    san = tuple(("DNS", name) for name in dns) + tuple(("IP Address", ip) for ip in ips)
    decoded: dict[str, Any] = {"subject": ((("commonName", cn),),) if cn else ()}
    if san:
        decoded["subjectAltName"] = san
    return decoded


@pytest.mark.parametrize(
    ("host", "decoded", "valid"),
    [
        ("localhost", cert(("localhost",)), True),
        ("LocalHost.", cert(("localhost",)), True),
        ("localhost", cert(("other.example",)), False),
        ("127.0.0.1", cert(("localhost",), ("127.0.0.1",)), True),
        ("127.0.0.1", cert(("127.0.0.1",)), False),  # an address is matched to IP SANs only
        ("127.0.0.2", cert((), ("127.0.0.1",)), False),
        ("[::1]", cert((), ("0:0:0:0:0:0:0:1",)), True),
        ("::1", cert((), ("::1",)), True),
        ("xrd.example.org", cert(("*.example.org",)), True),
        ("a.xrd.example.org", cert(("*.example.org",)), False),  # one label only
        ("example.org", cert(("*.example.org",)), False),
        ("xrd.org", cert(("*.org",)), False),  # a wildcard needs two labels after it
        ("xrd.example.org", cert(("x*.example.org",)), False),  # no partial wildcards
        ("xrd.example.org", cert((), (), "xrd.example.org"), True),  # CN without DNS SANs
        ("xrd.example.org", cert(("other.example",), (), "xrd.example.org"), False),
        ("xrd.example.org", cert(), False),
    ],
)  # fmt: skip
def test_names_match(host: str, decoded: dict[str, Any], valid: bool) -> None:
    """RFC 6125 as OpenSSL's X509_check_host applies it for Python and curl."""
    assert names_match(host, decoded) is valid


def test_describe_names() -> None:
    """The names are listed as DNS:/IP: (IPv6 compressed), CN: when there is no SAN."""
    assert describe_names(cert(("a.b",), ("0:0:0:0:0:0:0:1",))) == "DNS:a.b, IP:::1"
    assert describe_names(cert((), (), "a.b")) == "CN:a.b"
    assert describe_names(cert(tuple(f"h{i}" for i in range(10)))).endswith("h7 and 2 more")


def protocol_answer(stream_id: bytes, flags: int) -> bytes:
    """The handshake answer (protocol 5.1.1, data server), then a kXR_protocol answer."""
    return struct.pack(">2sHIii2sHIiI", b"\0\0", 0, 8, 0x511, SERVER,
                       stream_id, 0, 8, 0x511, SERVER | flags)  # fmt: skip


def switches_to(context: ssl.SSLContext | None, flags: int = KXR_HAVE_TLS | KXR_GOTO_TLS,
                then: bytes = b"") -> Behaviour:  # fmt: skip
    """Answers kXR_protocol with `flags`, then TLS with `context` (None: answers the client's
    first TLS bytes with `then`)."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(20)
        request = await reader.readexactly(24)
        assert request[8] == 0x06, "roots:// asks for TLS (kXR_ableTLS|kXR_wantTLS)"
        writer.write(protocol_answer(request[:2], flags))
        await writer.drain()
        if context is not None:
            await writer.start_tls(context)
        elif then:
            await reader.read(1)  # the ClientHello
            writer.write(then)
        await reader.read()  # until the client hangs up

    return behave


@contextlib.asynccontextmanager
async def tls_peer(behaviour: Behaviour, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A server on loopback running `behaviour`; its roots:// URL with `host`."""
    tasks = set[asyncio.Task[None]]()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                await behaviour(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"roots://{host}:{server.sockets[0].getsockname()[1]}//lakeprobe"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def server_context(pki: TestPki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.host_cert, pki.host_key)
    return context


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory, lake_binaries: None
         ) -> tuple[TestPki, TestPki]:  # fmt: skip
    """The loopback PKI, and the same CA's certificate for other.example only (openssl
    names the CA file)."""
    base = tmp_path_factory.mktemp("pki")
    pki = make_test_pki(base / "ca")
    return pki, issue_host_cert(pki, base / "other", (WRONG_HOST_NAME,))


async def check(url: str, ca_dir: Path | None, seconds: float = 2.0) -> StepOutcome:
    return await check_xrootd(url, asyncio.get_running_loop().time() + seconds, ca_dir)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_names_checked_on_loopback(pkis: tuple[TestPki, TestPki], host: str) -> None:
    """The loopback certificate passes; a certificate for other.example from the same trusted
    CA fails `tls`, naming the host and the certificate's names."""
    good, other = pkis
    async with tls_peer(switches_to(server_context(good)), host) as url:
        passed = await check(url, good.ca_dir)
    async with tls_peer(switches_to(server_context(other)), host) as url:
        refused = await check(url, good.ca_dir)
    assert (passed.status, passed.detail) == (Status.OK, "XRootD data server, protocol 5.1.1, TLS")
    assert (refused.status, refused.reason) == (Status.CRITICAL, Reason.TLS)
    wrong = f"certificate is not valid for {host}: it names DNS:{WRONG_HOST_NAME}"
    assert refused.detail.endswith(wrong)


@pytest.mark.parametrize(
    ("behaviour", "reason", "detail"),
    [
        (switches_to(None, flags=0), Reason.TLS,
         "roots:// asked for TLS: the server offers no TLS (flags 0x00000001)"),
        (switches_to(None, flags=KXR_HAVE_TLS), Reason.TLS,
         "the server claims TLS but did not switch to it (flags 0x80000001)"),
        (switches_to(None, then=b"HTTP/1.1 400 Bad Request\r\n\r\n"), Reason.TLS,
         "TLS handshake failed: WRONG_VERSION_NUMBER"),
        (switches_to(None, then=bytes(8)), Reason.TLS, "TLS handshake failed"),
        (switches_to(None), Reason.TIMEOUT, "no complete XRootD handshake answer"),
    ],
    ids=["no-tls", "no-switch", "http-after-goto", "garbage-after-goto", "silent-after-goto"],
)  # fmt: skip
async def test_hostile_tls_peers(pkis: tuple[TestPki, TestPki], behaviour: Behaviour,
                                 reason: Reason, detail: str) -> None:  # fmt: skip
    """Peers that agree to TLS and then do not, or never offer it: a clear reason within the
    1 s deadline."""
    loop = asyncio.get_running_loop()
    async with tls_peer(behaviour) as url:
        started = loop.time()
        outcome = await check(url, pkis[0].ca_dir, 1.0)
    assert outcome.reason is reason
    assert detail in outcome.detail
    assert loop.time() - started < 1.5


async def test_untrusted_and_closing_peers(pkis: tuple[TestPki, TestPki], tmp_path: Path) -> None:
    """A chain from a CA not in the CA directory: `tls`, untrusted; a peer that hangs up
    after agreeing to TLS: `tls`, closed in the handshake."""
    empty = tmp_path / "empty-ca-dir"
    empty.mkdir()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(44)
        writer.write(protocol_answer(b"lp", KXR_HAVE_TLS | KXR_GOTO_TLS))
        await writer.drain()

    async with tls_peer(switches_to(server_context(pkis[0]))) as url:
        untrusted = await check(url, empty)
    async with tls_peer(hang_up) as url:
        closed = await check(url, pkis[0].ca_dir)
    assert (untrusted.reason, closed.reason) == (Reason.TLS, Reason.TLS)
    assert "TLS certificate not trusted: unable to get local issuer certificate" in untrusted.detail
    assert "connection closed in the TLS handshake" in closed.detail


CHILD = """
import asyncio, json, logging, sys
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.storage.xrootd import PROBE_TYPE, XrootdParams
from lakeprobe.probes.transfer.xrootd_tpc import PROBE_TYPE as TPC, XrootdTpcParams

async def main():
    log = logging.getLogger()
    for arg in sys.argv[1:]:
        urls = [Target(f"S{i}", "xrootd", u, "/lakeprobe") for i, u in enumerate(arg.split(","))]
        probe, target, params = (
            (PROBE_TYPE, urls[0], XrootdParams()) if len(urls) == 1
            else (TPC, PairTarget(urls[0], urls[1], "pull"), XrootdTpcParams())
        )
        out = await run_probe(probe, target, params, timeout=10, probe_host="h", log=log)
        first = out.result.steps[0]
        print(json.dumps([out.result.status.name, out.result.reason.value, first.detail]))

asyncio.run(main())
"""


@pytest.fixture
def wrong_name_lake(tmp_path: Path, lake_binaries: None) -> Iterator[LocalLake]:
    """SITE-A with the loopback certificate, SITE-B with one for other.example only."""
    with LocalLake(2, base_dir=tmp_path / "lake", wrong_name_sites=["SITE-B"]) as lake:
        lake.start()
        yield lake


@pytest.mark.lake
def test_probes_against_wrong_name_site(wrong_name_lake: LocalLake) -> None:
    """Real xrootd 5.5.3, in a child process (XrdCl reads X509_CERT_DIR once): the xrootd
    probe is OK on SITE-A and CRITICAL `tls` on SITE-B at every loopback spelling (XrdCl
    alone said OK); xrootd-tpc fails at its end check whichever side SITE-B is."""
    good, bad = (f"roots://{{}}:{site.root_port}" for site in wrong_name_lake.sites)
    args = [good.format("127.0.0.1"), *(bad.format(h) for h in ("127.0.0.1", "localhost", "[::1]")),
            f"{good.format('127.0.0.1')},{bad.format('127.0.0.1')}",
            f"{bad.format('localhost')},{good.format('localhost')}"]  # fmt: skip
    env = {**os.environ, "X509_CERT_DIR": str(wrong_name_lake.pki.ca_dir)}
    child = subprocess.run([sys.executable, "-c", CHILD, *args], env=env,
                           capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert results[0][:2] == ["OK", "none"]
    names = "it names DNS:other.example"
    hosts = ("127.0.0.1", "localhost", "::1")
    for (status, reason, detail), host in zip(results[1:4], hosts, strict=True):
        assert (status, reason) == ("CRITICAL", "tls")
        assert detail.endswith(f"TLS certificate is not valid for {host}: {names}")
    for (status, reason, detail), side in zip(results[4:], ("destination", "source"), strict=True):
        assert (status, reason) == ("CRITICAL", "tls")
        assert detail.startswith(f"{side}: ")
        assert detail.endswith(names)
