"""The iperf3 client (probes/clients/iperf3.py) against real iperf3 servers on loopback
(lakeprobe/lake/iperf3.py), the lake's iperf3 servers, and iperf3:// endpoints in the config."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need_binaries

from iperf3_helpers import hold
from lakeprobe.config import parse_config
from lakeprobe.config.plan import build_plan
from lakeprobe.lake import LocalLake
from lakeprobe.lake.iperf3 import Iperf3Server
from lakeprobe.probes.clients.iperf3 import (
    Iperf3Outcome,
    Iperf3Request,
    iperf3_address,
    iperf3_command,
    parse_iperf3_json,
    run_iperf3,
)
from lakeprobe.probes.core.serverlocks import ServerLocks


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Iperf3Server]:
    """A started iperf3 server on 127.0.0.1."""
    need_binaries("iperf3")
    with Iperf3Server(tmp_path / "iperf3") as started:
        yield started


def _children() -> list[str]:
    """Command lines of this process's children (zombies included, until reaped)."""
    pid = os.getpid()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{child}/cmdline").read_bytes().decode() for child in children]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("iperf3://127.0.0.1:5202", ("127.0.0.1", 5202)),
        ("iperf3://[::1]:5203", ("::1", 5203)),
        ("iperf3://ps.example.org", ("ps.example.org", 5201)),
        ("iperf3://ps.example.org/", ("ps.example.org", 5201)),
    ],
)
def test_address(url: str, address: tuple[str, int]) -> None:
    """Host and port come from the URL; without a port, iperf3's default 5201."""
    assert iperf3_address(url) == address


@pytest.mark.parametrize(
    "url",
    [
        "https://h:5201",
        "iperf3://h:5201/path",
        "iperf3://u:p@h:5201",
        "iperf3://h:5201?x=1",
        "iperf3://-R:5201",
        "iperf3://[::zz]:5201",
        "iperf3://h:99999",
        "iperf3://:5201",
    ],
)
def test_bad_address(url: str) -> None:
    """Anything but iperf3://host[:port] is refused, and so is a host iperf3 could read as an
    option."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        iperf3_address(url)


def test_command() -> None:
    """The command line: no shell, host and port from the URL, -J, the IP version, -R."""
    request = Iperf3Request("iperf3://[::1]:5300", 6, seconds=2, reverse=True, connect_timeout=3)
    assert iperf3_command(request, "/usr/bin/iperf3") == [
        "/usr/bin/iperf3", "-c", "::1", "-p", "5300", "-J", "-t", "2", "-6", "-R",
        "--connect-timeout", "3000",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("the server is busy running a test. try again later", Iperf3Outcome.BUSY),
        ("unable to connect to server: Connection refused", Iperf3Outcome.CONNECT),
        ("unable to connect to server: No route to host", Iperf3Outcome.CONNECT),
        ("unable to connect to server: Name or service not known", Iperf3Outcome.RESOLVE),
        ("unable to connect to server: Address family for hostname not supported",
         Iperf3Outcome.RESOLVE),
        ("control socket has closed unexpectedly", Iperf3Outcome.ERROR),
    ],
)  # fmt: skip
def test_error_key(error: str, outcome: Iperf3Outcome) -> None:
    """iperf3 -J exits 0 on failure: the `error` key decides, whatever else is there."""
    end = '{"sum_received": {"bits_per_second": 5}}'
    text = f'{{"start": {{}}, "end": {end}, "error": "{error}"}}'
    result = parse_iperf3_json(text)
    assert (result.outcome, result.detail, result.bits_per_second) == (outcome, error, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "iperf3: error - unable to connect",
        "[]",
        '{"error": 3}',
        '{"end": {}}',
        '{"end": []}',
        '{"end": {"sum_received": {"bits_per_second": "fast"}}}',
        '{"end": {"sum_received": {"bits_per_second": true}}}',
        '{"end": {"sum_received": {"bits_per_second": -1}}}',
        '{"end": {"sum_received": {"bits_per_second": NaN}}}',
        '{"end": {"sum_received": {"bits_per_second": 1e400}}}',
        '{"end": {"sum_received": {"bits_per_second": 1}, "sum_sent": {"retransmits": -2}}}',
        '{"end": {"sum_received": {"bits_per_second": 1}, "sum_sent": {"retransmits": 1e30}}}',
        "[" * 100_000,
    ],
)
def test_malformed_output(text: str) -> None:
    """Output that is not iperf3's JSON is MALFORMED, never an exception."""
    assert parse_iperf3_json(text).outcome is Iperf3Outcome.MALFORMED


def test_retransmits_optional() -> None:
    """A sender that does not count retransmits (not Linux) leaves them unknown, not zero."""
    result = parse_iperf3_json('{"end": {"sum_received": {"bits_per_second": 8e9}}}')
    assert (result.outcome, result.bits_per_second, result.retransmits) == (
        Iperf3Outcome.OK, 8e9, None,
    )  # fmt: skip


@pytest.mark.parametrize("reverse", [False, True])
async def test_real_test(server: Iperf3Server, reverse: bool) -> None:
    """A real 1 s test on loopback, either direction: throughput > 0 and a retransmit count."""
    request = Iperf3Request(server.url, 4, seconds=1, reverse=reverse)
    result = await run_iperf3(request, ServerLocks(), deadline=10)
    assert result.ok, result.detail
    assert (result.bits_per_second or 0) > 1e6
    assert isinstance(result.retransmits, int)
    assert result.retransmits >= 0
    assert result.attempts == 1


async def test_stopped_server(server: Iperf3Server) -> None:
    """A stopped server: CONNECT, with iperf3's own words."""
    server.stop()
    result = await run_iperf3(Iperf3Request(server.url, 4, seconds=1), ServerLocks(), 5)
    assert result.outcome is Iperf3Outcome.CONNECT
    assert result.detail == "unable to connect to server: Connection refused"


async def test_busy_then_success(server: Iperf3Server) -> None:
    """A server busy with someone else's test answers "busy"; without retries that is the
    result, with them the test runs once the other one ends."""
    holder = hold(server, 2)
    try:
        once = Iperf3Request(server.url, 4, seconds=1, busy_retries=0)
        busy = await run_iperf3(once, ServerLocks(), 5)
        assert busy.outcome is Iperf3Outcome.BUSY
        assert "busy" in busy.detail
        patient = Iperf3Request(server.url, 4, seconds=1, busy_retries=4, busy_backoff=0.5)
        result = await run_iperf3(patient, ServerLocks(), 10)
        assert result.ok, result.detail
        assert result.attempts > 1
    finally:
        assert holder.wait(10) == 0


async def test_busy_until_deadline(server: Iperf3Server) -> None:
    """Still busy when the deadline comes: BUSY (the server's state), not a timeout."""
    holder = hold(server, 3)
    try:
        request = Iperf3Request(server.url, 4, seconds=1, busy_retries=9, busy_backoff=0.5)
        result = await run_iperf3(request, ServerLocks(), 1.2)
        assert result.outcome is Iperf3Outcome.BUSY
        assert "deadline" in result.detail
    finally:
        holder.kill()
        holder.wait()


async def test_one_test_at_a_time(server: Iperf3Server) -> None:
    """Two of our targets on one server take turns (the lock), so neither sees it busy."""
    locks = ServerLocks()
    request = Iperf3Request(server.url, 4, seconds=1, busy_retries=0)
    results = await asyncio.gather(*(run_iperf3(request, locks, 10) for _ in range(2)))
    assert [result.outcome for result in results] == [Iperf3Outcome.OK] * 2
    assert len(locks) == 0  # weakly held: gone once nobody holds or awaits it


async def test_lock_wait_is_bounded(server: Iperf3Server) -> None:
    """Waiting for our own other test counts against the deadline, and says so."""
    locks = ServerLocks()
    async with locks.lock("127.0.0.1", server.port):
        request = Iperf3Request(server.url, 4, seconds=1)
        result = await run_iperf3(request, locks, 0.3)
    assert result.outcome is Iperf3Outcome.TIMEOUT
    assert result.detail.startswith("waiting for our other test")
    assert result.attempts == 0


async def test_deadline_kills_the_client(server: Iperf3Server) -> None:
    """A server that accepts and never answers (SIGSTOP) holds iperf3 forever: the deadline
    kills it, and it is reaped (no child left, not even a zombie)."""
    server.pause()
    started = time.monotonic()
    result = await run_iperf3(Iperf3Request(server.url, 4, seconds=1), ServerLocks(), 1.0)
    assert time.monotonic() - started < 2.5
    assert result.outcome is Iperf3Outcome.TIMEOUT
    assert result.detail == "the test took over 1 s"
    assert not [cmd for cmd in _children() if "iperf3\0-c" in cmd]


async def test_not_json(tmp_path: Path) -> None:
    """Whatever the binary prints, the result is a value: MALFORMED for non-JSON, ERROR for
    no output and a non-zero exit, ERROR when it cannot run."""
    fake = tmp_path / "fake-iperf3"
    fake.write_text("#!/bin/sh\necho 'iperf3: something odd'\n")
    fake.chmod(0o755)
    request = Iperf3Request("iperf3://127.0.0.1:9", 4, seconds=1)
    result = await run_iperf3(request, ServerLocks(), 5, binary=str(fake))
    assert result.outcome is Iperf3Outcome.MALFORMED
    fake.write_text("#!/bin/sh\necho 'usage: ...' >&2\nexit 1\n")
    result = await run_iperf3(request, ServerLocks(), 5, binary=str(fake))
    assert (result.outcome, result.detail) == (Iperf3Outcome.ERROR, "iperf3 exited 1: usage: ...")
    result = await run_iperf3(request, ServerLocks(), 5, binary=str(tmp_path / "missing"))
    assert result.outcome is Iperf3Outcome.ERROR
    assert result.detail.startswith("cannot run")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_ipv6_server(tmp_path: Path) -> None:
    """A server bound to ::1 serves -6 tests; asked for IPv4, its address does not resolve."""
    need_binaries("iperf3")
    with Iperf3Server(tmp_path, "::1") as server:
        assert server.url == f"iperf3://[::1]:{server.port}"
        ok = await run_iperf3(Iperf3Request(server.url, 6, seconds=1), ServerLocks(), 10)
        assert ok.ok, ok.detail
        wrong = await run_iperf3(Iperf3Request(server.url, 4, seconds=1), ServerLocks(), 10)
        assert wrong.outcome is Iperf3Outcome.RESOLVE


def test_server_binds_loopback_only(tmp_path: Path) -> None:
    """Only loopback addresses: a lake server is never reachable from outside."""
    with pytest.raises(ValueError, match="loopback only"):
        Iperf3Server(tmp_path, "0.0.0.0")


@pytest.mark.lake
async def test_lake_iperf3(tmp_path: Path) -> None:
    """LocalLake(iperf3=...) runs a server per chosen site, stop_iperf3 stops one (connection
    refused), close() stops the rest."""
    need_binaries("iperf3")
    with LocalLake(2, base_dir=tmp_path, iperf3=["SITE-B"]) as lake:
        url = lake.iperf3_url("SITE-B")
        assert url == f"iperf3://127.0.0.1:{lake.iperf3_server('SITE-B').port}"
        with pytest.raises(KeyError, match="SITE-A"):
            lake.iperf3_url("SITE-A")
        result = await run_iperf3(Iperf3Request(url, 4, seconds=1), ServerLocks(), 10)
        assert result.ok, result.detail
        lake.stop_iperf3("SITE-B")
        refused = await run_iperf3(Iperf3Request(url, 4, seconds=1), ServerLocks(), 5)
        assert refused.outcome is Iperf3Outcome.CONNECT
        lake.iperf3_server("SITE-B").start()
        server = lake.iperf3_server("SITE-B")
        assert server.running
    assert not server.running


def test_config_accepts_iperf3_endpoints() -> None:
    """An iperf3:// endpoint is valid config (port optional), and no storage probe selects
    it: their schemes are explicit."""
    config = parse_config("""
sites:
  - name: A
    endpoints:
      - {name: x, url: "root://a:1094"}
      - {name: w, url: "davs://a:443"}
      - {name: perf, url: "iperf3://a:5201"}
      - {name: perf-default, url: "iperf3://[::1]"}
  - name: B
    endpoints:
      - {name: w, url: "davs://b:443"}
      - {name: perf, url: "iperf3://b"}
probes:
  - {name: xr, type: xrootd}
  - {name: dav, type: webdav}
  - {name: tpc, type: http-tpc}
  - {name: fix, type: fixity}
""")
    assert sorted(job.key.job_id for job in build_plan(config)) == [
        "dav|A|w", "dav|B|w", "fix|A|w", "fix|A|x", "fix|B|w",
        "tpc|A->B|pull", "tpc|A->B|push", "tpc|B->A|pull", "tpc|B->A|push", "xr|A|x",
    ]  # fmt: skip
