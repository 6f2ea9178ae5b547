"""The XRootD handshake pre-check (probes/clients/xrdhandshake.py): real XRootD servers pass it;
peers that are not XRootD servers (an aiohttp server, garbage, a claimed 2 GiB frame, a
silent peer) fail it within bounds, and XrdCl never talks to them. Hostile peers are small
asyncio servers on 127.0.0.1 that count the connections they get."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeprobe.lake import LocalLake
from lakeprobe.probes.authz.ops import OpFailed, XrdAuthzOps
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.transfer.xrootd_tpc import PROBE_TYPE as TPC
from lakeprobe.probes.transfer.xrootd_tpc import XrootdTpcParams

LOG = logging.getLogger("test.xrdhandshake")
GIB2 = 2**31
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Peer:
    url: str
    connections: int = 0


@contextlib.asynccontextmanager
async def peer(behaviour: Behaviour) -> AsyncIterator[Peer]:
    """A TCP server on 127.0.0.1 running `behaviour` per connection, behind a root:// URL;
    connections still open at the end are cut."""
    state, handlers = Peer(""), set[asyncio.Task[None]]()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await behaviour(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.url = f"root://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def http_peer() -> AsyncIterator[str]:
    """A real aiohttp server (no routes) behind a root:// URL."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert runner.addresses
    try:
        yield f"root://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def handshake() -> bytes:
    """A correct handshake answer: header (streamid 0, kXR_ok, 8), protocol 5.1.1, server."""
    return struct.pack(">2sHIii", b"\0\0", 0, 8, 0x511, 1)


async def stream_claim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int
                       ) -> None:  # fmt: skip
    """Send `size` zero bytes, as much as the client reads, then wait for it to hang up."""
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        writer.write(chunk)
        await writer.drain()
    await reader.read()


def claims_handshake(size: int) -> Behaviour:
    """A handshake answer whose header claims `size` bytes, followed by that many."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(20)
        writer.write(struct.pack(">2sHI", b"\0\0", 0, size))
        await stream_claim(reader, writer, size)

    return behave


def claims_protocol(size: int) -> Behaviour:
    """A correct handshake, then a kXR_protocol answer claiming `size` bytes."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(20)
        writer.write(handshake())
        request = await reader.readexactly(24)
        writer.write(struct.pack(">2sHI", request[:2], 0, size))
        await stream_claim(reader, writer, size)

    return behave


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(64)
    writer.write(b"\x8f\x13" + random.Random(8).randbytes(4094))
    await writer.drain()
    await reader.read()  # until the client hangs up


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(64)
    await reader.read()  # never answers; until the client hangs up


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(64)


async def refuses_protocol(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An XRootD server that answers kXR_protocol with kXR_error: still XRootD."""
    await reader.readexactly(20)
    writer.write(handshake())
    request = await reader.readexactly(24)
    message = b"Invalid request\0"
    writer.write(struct.pack(">2sHIi", request[:2], 4003, 4 + len(message), 3006) + message)
    await writer.drain()
    await reader.read(1)


async def check(url: str, seconds: float = 2.0) -> StepOutcome:
    return await check_xrootd(url, asyncio.get_running_loop().time() + seconds)


@pytest.mark.parametrize("scheme", ["root", "roots"])
@pytest.mark.lake
async def test_real_xrootd_passes(lake: LocalLake, scheme: str) -> None:
    """xrootd 5.5.3 passes for root:// and roots:// (the plain handshake precedes TLS; roots://
    then checks the certificate against the lake's CA), by name and on IPv6 loopback too;
    the detail names the server type and protocol."""
    port = lake.sites[0].root_port
    expected = "XRootD data server, protocol 5.1.1" + (", TLS" if scheme == "roots" else "")
    for host in ("127.0.0.1", "localhost", "[::1]"):
        url = f"{scheme}://{host}:{port}//lakeprobe/x?y=1"
        outcome = await check_xrootd(url, asyncio.get_running_loop().time() + 2, lake.pki.ca_dir)
        assert (outcome.status, outcome.detail) == (Status.OK, expected)


@pytest.mark.parametrize(
    ("behaviour", "reason", "detail"),
    [
        (claims_handshake(GIB2), Reason.PROTOCOL_ERROR,
         "not an XRootD server: its handshake answer claims 2147483648 bytes (XRootD sends 8)"),
        (claims_protocol(GIB2), Reason.PROTOCOL_ERROR,
         "not an XRootD server: its kXR_protocol answer claims 2147483648 bytes (at most 4096)"),
        (garbage, Reason.PROTOCOL_ERROR, "not an XRootD server: the first answer is 0x8f13"),
        (hang_up, Reason.CONNECT, "no answer to the XRootD handshake (connection closed)"),
        (silent, Reason.TIMEOUT, "no complete XRootD handshake answer"),
        (refuses_protocol, Reason.NONE,
         "XRootD data server, protocol 5.1.1 (kXR_protocol refused: [3006] Invalid request)"),
    ],
    ids=["huge-handshake", "huge-protocol", "garbage", "hang-up", "silent", "kxr-error"],
)  # fmt: skip
@pytest.mark.parametrize("scheme", ["root", "roots"])
async def test_peers(behaviour: Behaviour, reason: Reason, detail: str, scheme: str) -> None:
    """Each peer gets one connection and a verdict within the 1 s deadline (+0.5 s), the same
    for roots:// (which asks for TLS; kXR_error to that leaves TLS to XrdCl, which gives up)."""
    loop = asyncio.get_running_loop()
    async with peer(behaviour) as hostile:
        started = loop.time()
        outcome = await check(hostile.url.replace("root://", f"{scheme}://"), 1.0)
        took = loop.time() - started
    assert outcome.reason is reason
    assert detail in outcome.detail
    assert hostile.connections == 1
    assert took < 1.5


async def test_http_server_behind_root_url() -> None:
    """An aiohttp server answers the binary handshake with a 400: named as HTTP."""
    async with http_peer() as url:
        outcome = await check(url)
    assert (outcome.status, outcome.reason) == (Status.CRITICAL, Reason.PROTOCOL_ERROR)
    assert outcome.detail == "not an XRootD server: the first answer looks like HTTP (HTTP/1.0 400)"


async def test_refused_and_unresolvable() -> None:
    """Nothing listening: `connect`; a name that cannot resolve: `dns`."""
    refused = await check("root://127.0.0.1:1")
    unresolvable = await check("root://no-such-host.invalid:1094")
    assert (refused.reason, refused.detail) == (Reason.CONNECT, "127.0.0.1:1: Connection refused")
    assert unresolvable.reason is Reason.DNS


@settings(max_examples=40, deadline=None, derandomize=True)
@given(answer=st.binary(max_size=64))
def test_any_short_answer_is_a_verdict(answer: bytes) -> None:
    """Whatever a peer sends (then hanging up), the check returns a verdict, never raises:
    a failure unless it is a correct XRootD answer."""

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(64)
        writer.write(answer)
        await writer.drain()

    async def run() -> StepOutcome:
        async with peer(send) as hostile:
            return await check(hostile.url)

    outcome = asyncio.run(run())
    assert outcome.status is Status.CRITICAL
    assert outcome.reason in (Reason.PROTOCOL_ERROR, Reason.CONNECT)


async def test_token_authz_root_setup_checks_first() -> None:
    """token-authz over root://: the setup's first operation fails with the check's outcome
    when the endpoint is an HTTP server, before XrdCl is used."""
    async with http_peer() as url:
        deadline = asyncio.get_running_loop().time() + 3
        ctx = ProbeContext(StepRecorder(deadline, 10, 0.5), deadline, "testhost", LOG,
                           StateStore.memory(), ProbeResources())  # fmt: skip
        ops = XrdAuthzOps(Target("S", "root", url, "/lakeprobe"), ctx)
        with pytest.raises(OpFailed) as failure:
            await ops.ensure_file("/lakeprobe/f", b"x", Secret("not-a-real-token-value"))
    assert failure.value.outcome.reason is Reason.PROTOCOL_ERROR
    assert "looks like HTTP" in failure.value.outcome.detail


@pytest.mark.parametrize("hostile_side", ["source", "destination"])
@pytest.mark.lake
async def test_xrootd_tpc_checks_both_ends(lake: LocalLake, hostile_side: str) -> None:
    """xrootd-tpc: a hostile end fails the `source` step (protocol_error, the side named);
    the rest is skipped, and the hostile end saw only the check's one connection."""
    site = lake.sites[0]
    real = Target(site.name, "xrootd", site.root_url, lake.test_dir)
    async with peer(claims_protocol(GIB2)) as hostile:
        bad = Target("EVIL", "xrootd", hostile.url, lake.test_dir)
        src, dst = (bad, real) if hostile_side == "source" else (real, bad)
        outcome = await run_probe(TPC, PairTarget(src, dst, "pull"), XrootdTpcParams(),
                                  timeout=5, probe_host="testhost", log=LOG)  # fmt: skip
    steps = {step.name: step for step in outcome.result.steps}
    assert (steps["source"].status, steps["source"].reason) == (
        Status.CRITICAL, Reason.PROTOCOL_ERROR
    )  # fmt: skip
    assert steps["source"].detail.startswith(f"{hostile_side}: not an XRootD server")
    assert {steps[name].status for name in ("copy", "verify", "delete")} == {Status.SKIPPED}
    assert hostile.connections == 1


CHILD = """
import asyncio, json, logging, resource, sys, time
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.clients.xrdasync import XrdError, XrdFileSystem, client_module
from lakeprobe.probes.storage.xrootd import PROBE_TYPE, XrootdParams

def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def probe(url):
    target = Target("S", "xrootd", url, "/lakeprobe")
    out = await run_probe(PROBE_TYPE, target, XrootdParams(), timeout=2, probe_host="h",
                          log=logging.getLogger())
    ping = out.result.steps[0]
    return [out.result.status.name, out.result.reason.value, ping.name, ping.detail]

async def xrdcl_ping(url):
    loop = asyncio.get_running_loop()
    try:
        await XrdFileSystem(url).ping(loop.time() + 30)  # time to take in all 128 MiB
    except XrdError as error:
        return [str(error)]

async def main(mode, urls):
    client_module()  # XrdCl loaded, and one run made, before the baseline
    await probe("root://127.0.0.1:1")
    baseline = rss_kib()
    for url in urls:
        started = time.monotonic()
        result = await (probe(url) if mode == "probe" else xrdcl_ping(url))
        print(json.dumps({"result": result, "seconds": time.monotonic() - started,
                          "grew_mib": (rss_kib() - baseline) / 1024}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


@dataclass(frozen=True)
class ChildLine:
    result: list[str]  # probe: status, reason, first step, its detail; xrdcl: the error
    seconds: float
    grew_mib: float  # peak RSS growth since the baseline


async def run_child(mode: str, *urls: str) -> list[ChildLine]:
    """CHILD in a subprocess while this event loop serves the peers; one line per URL."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, mode, *urls,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    return [ChildLine(**json.loads(line)) for line in out.decode().splitlines()]


async def test_probe_memory_is_bounded_against_hostile_peers() -> None:
    """The xrootd probe in a fresh process against each hostile peer: CRITICAL
    protocol_error at `ping` (timeout for the silent one, within the run's 2 s), and the
    process's peak RSS grows by less than 4 MiB; each peer sees only the pre-check's
    connection, never XrdCl's. What XrdCl alone allocates against such peers is measured in
    benchmarks/xrootd_frame_memory.py (it grew by the claimed size)."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(http_peer())
        peers = [await stack.enter_async_context(peer(b)) for b in (
            claims_handshake(GIB2), claims_protocol(GIB2), garbage, silent
        )]  # fmt: skip
        lines = await run_child("probe", http, *(p.url for p in peers))
    expected = ["protocol_error"] * 4 + ["timeout"]
    assert [line.result[:3] for line in lines] == [["CRITICAL", r, "ping"] for r in expected]
    assert "looks like HTTP (HTTP/1.0 400)" in lines[0].result[3]
    assert max(line.grew_mib for line in lines) < 4, lines
    assert lines[-1].seconds < 2 + 1.5  # the run's deadline, plus slack: no hang
    assert [p.connections for p in peers] == [1, 1, 1, 1]  # the pre-check's: XrdCl never came
