"""First contact sorts new endpoints into hanging and answering, and so keeps a healthy site's
first runs from queuing behind hundreds of new hung endpoints. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from scheduling_helpers import ScriptedProbes, job, sample, scheduler

from lakeprobe.lake import free_ports
from lakeprobe.probes.core.target import Target
from lakeprobe.service.firstcontact import FirstContact


@pytest.fixture
def blackholes() -> Iterator[list[int]]:
    """Ports whose listen backlog is full and never accepted: a connect hangs, as to a
    blackholed host."""
    held = []
    ports = []
    for _ in range(12):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        held += [server, socket.create_connection(("127.0.0.1", port))]
        ports.append(port)
    yield ports
    for sock in held:
        sock.close()


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """Accepts connections and never says a word (a tarpit, a frozen server)."""
    writers: list[asyncio.StreamWriter] = []

    def keep(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


def target(url: str) -> Target:
    return Target("S", url, url, "/t")


@pytest.mark.parametrize(
    ("kind", "scheme", "hangs"),
    [
        ("blackhole", "http", True),
        ("silent", "https", True),  # TCP accepted, no TLS answer
        ("silent", "root", True),  # TCP accepted, no XRootD handshake answer
        ("silent", "http", False),  # a TCP connect is all http needs
        ("refused", "https", False),  # a quick refusal is an answer
        ("refused", "root", False),
    ],
)
async def test_greetings(
    kind: str, scheme: str, hangs: bool, blackholes: list[int], silent: int
) -> None:
    """Only an endpoint that leaves its greeting unanswered counts as hanging."""
    port = {"blackhole": blackholes[0], "silent": silent, "refused": free_ports(1)[0]}[kind]
    contact = FirstContact(timeout=0.3)
    assert await contact.hangs((target(f"{scheme}://127.0.0.1:{port}"),)) is hangs
    await contact.aclose()


async def test_a_healthy_site_is_not_queued_behind_new_hung_endpoints(
    blackholes: list[int],
) -> None:
    """From the very start, twelve new endpoints that hang and four slots: the healthy
    target's first runs are not stuck behind them while they are found out."""

    async def hang(probe_target: Target) -> None:
        if probe_target.endpoint != "healthy":
            await asyncio.sleep(60)

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    healthy_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    probes = ScriptedProbes(hang)
    sched, _, _, registry = scheduler(capacity=4, per_endpoint=1,
                                      contact=FirstContact(timeout=0.3))  # fmt: skip
    sched.start()
    hung = [job(probes, f"hung{i}", interval=1.0, timeout=0.9, url=f"http://127.0.0.1:{port}")
            for i, port in enumerate(blackholes)]  # fmt: skip
    sched.apply([*hung, job(probes, "healthy", interval=0.2, timeout=0.15, url=healthy_url)])
    await asyncio.sleep(2.5)
    ran = len(probes.starts["healthy"])
    await sched.shutdown(1)
    server.close()
    assert ran >= 9, f"healthy ran {ran} times in 2.5 s at a 0.2 s interval"
    assert sample(registry, "lakeprobe_scheduler_missed_runs_total", probe="scripted",
                  cause="no_slot") > 0  # fmt: skip


async def test_iperf3_servers_are_not_greeted() -> None:
    """An iperf3 server takes any connection for a test client (a bare connect is a failed
    test there, and can reset another target's test): its endpoint gets no greeting."""
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    greeter = FirstContact(timeout=1.0)
    try:
        target = Target("SITE-A", "iperf3", f"iperf3://127.0.0.1:{port}", "/")
        assert await greeter.hangs((target,)) is False
        http = Target("SITE-A", "web", f"http://127.0.0.1:{port}", "/")
        assert await greeter.hangs((http,)) is False  # the same port over http is greeted
        await asyncio.sleep(0.05)
        assert connections == 1
    finally:
        await greeter.aclose()
        server.close()
        await server.wait_closed()
