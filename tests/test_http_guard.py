"""The HTTP port's connection guard, on real sockets on 127.0.0.1: the cap, eviction of idle
and slow connections, the request-head deadline, the request bound, and slowloris against the
real daemon while /metrics is scraped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from http_helpers import write_daemon_config
from prometheus_client import CollectorRegistry

from daemon_helpers import pick, running_daemon, scrape, wait_for
from lakeprobe.config.model import ServerConfig
from lakeprobe.lake import free_ports
from lakeprobe.service.httpguard import ConnectionGuard, Limits
from lakeprobe.service.httpsite import GuardedSite
from lakeprobe.service.server import limits_of

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def limits(**changes: Any) -> Limits:
    """The configured defaults, with `changes`."""
    return dataclasses.replace(limits_of(ServerConfig()), **changes)


class Site:
    """A small aiohttp app behind a GuardedSite, with a handler that waits for `release`."""

    def __init__(self, limits: Limits, keepalive_timeout: float = 30.0) -> None:
        self.registry = CollectorRegistry()
        self.guard = ConnectionGuard(limits, self.registry)
        self.release = asyncio.Event()
        self.keepalive_timeout = keepalive_timeout
        self.port = free_ports(1)[0]
        self._clients: list[asyncio.StreamWriter] = []

    def count(self, cause: str) -> float:
        value = self.registry.get_sample_value(
            "lakeprobe_http_connections_rejected_total", {"cause": cause}
        )
        return value or 0.0

    @property
    def open_connections(self) -> float:
        return self.registry.get_sample_value("lakeprobe_http_connections_open") or 0.0

    async def _wait(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(text="released\n")

    async def _hello(self, request: web.Request) -> web.Response:
        return web.Response(text="hello\n")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        app = web.Application(middlewares=[self.guard.middleware])
        app.router.add_get("/wait", self._wait)
        app.router.add_get("/", self._hello)
        runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=self.keepalive_timeout)
        await runner.setup()
        try:
            await GuardedSite(runner, "127.0.0.1", self.port, self.guard).start()
            yield
        finally:
            self.release.set()
            for writer in self._clients:
                writer.close()
            await runner.cleanup()
            self.guard.shed_all()

    async def connect(self) -> Connection:
        """A raw client connection, closed when the site stops."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._clients.append(writer)
        return reader, writer


async def closed_within(connection: Connection, seconds: float) -> bool:
    """True if the server closes the connection within `seconds` (EOF or reset)."""
    reader, _ = connection
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_idle_connections_over_the_cap_evict_the_oldest() -> None:
    """With max_connections 4, three more idle connections close the three oldest at once;
    the open count stays 4 and the evictions are counted."""
    site = Site(limits(max_connections=4, header_timeout=30))
    async with site.running():
        first = [await site.connect() for _ in range(4)]
        await wait_for(lambda: site.open_connections == 4, timeout=5, what="4 open")
        newer = [await site.connect() for _ in range(3)]
        for connection in first[:3]:
            assert await closed_within(connection, 2)
        assert not await closed_within(first[3], 0.3)
        assert not any([await closed_within(c, 0.1) for c in newer])
        assert site.open_connections == 4
        assert site.count("evicted") == 3
        assert site.count("limit") == 0


async def test_when_every_connection_is_busy_a_new_one_is_refused() -> None:
    """Three requests in progress fill a cap of 3: a fourth connection is closed at once and
    counted as `limit`; the three requests still complete."""
    site = Site(limits(max_connections=3))
    async with site.running(), aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{site.port}/wait"
        busy = [asyncio.create_task(_get(session, url)) for _ in range(3)]
        await wait_for(lambda: site.open_connections == 3, timeout=5, what="3 busy")
        await asyncio.sleep(0.2)  # the three requests are being handled
        refused = await site.connect()
        assert await closed_within(refused, 2)
        assert site.count("limit") == 1
        site.release.set()
        assert await asyncio.gather(*busy) == [(200, "released\n")] * 3


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as reply:
        return reply.status, await reply.text()


async def test_a_slow_request_head_is_closed_after_header_timeout() -> None:
    """A connection trickling a request head is closed header_timeout after it connected,
    however often it sends a byte; the close is counted."""
    site = Site(limits(header_timeout=1.0))
    async with site.running():
        connection = await site.connect()
        started = time.monotonic()
        trickle = asyncio.create_task(_trickle(connection, every=0.2))
        assert await closed_within(connection, 3)
        elapsed = time.monotonic() - started
        trickle.cancel()
        assert 0.9 < elapsed < 1.8, elapsed
        assert site.count("header_timeout") == 1


async def _trickle(connection: Connection, every: float) -> None:
    """Send a request head that never ends, one header every `every` seconds."""
    _, writer = connection
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    with contextlib.suppress(ConnectionError):
        while True:
            await asyncio.sleep(every)
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()


async def test_after_a_response_idle_waits_for_keepalive_and_a_new_head_for_header_timeout() -> (
    None
):
    """After a response, a silent keep-alive connection is kept past header_timeout (until
    keepalive_timeout); the first byte of a next request starts a new header_timeout."""
    site = Site(limits(header_timeout=0.5), keepalive_timeout=30)
    async with site.running():
        reader, writer = connection = await site.connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"hello\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert not await closed_within(connection, 1.0)  # idle: twice header_timeout
        writer.write(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        assert await closed_within(connection, 3)
        assert 0.4 < time.monotonic() - started < 1.5
        assert site.count("header_timeout") == 1


async def test_a_request_over_request_timeout_gets_503() -> None:
    """A handler running past request_timeout is cut off: 503, counted, connection closed."""
    site = Site(limits(request_timeout=0.5))
    async with site.running(), aiohttp.ClientSession() as session:
        started = time.monotonic()
        status, text = await _get(session, f"http://127.0.0.1:{site.port}/wait")
        assert (status, text) == (503, "request took longer than 0.5 s\n")
        assert time.monotonic() - started < 3
        assert site.count("request_timeout") == 1


async def test_slowloris_does_not_stop_scrapes(tmp_path: Path) -> None:
    """300 connections trickling request heads, opened over 1.5 s against the daemon with the
    default cap (128) and header_timeout 2 s, while /metrics is scraped every 0.1 s: every
    scrape answers within 1 s, the open-connection count never exceeds the cap, and every
    slow connection is closed within header_timeout of its start (evicted sooner, or closed
    at its deadline)."""
    config = write_daemon_config(tmp_path / "lakeprobe.yaml", header_timeout=2)
    async with running_daemon(config) as (_, base):
        port = int(base.rpartition(":")[2])
        slow = [asyncio.create_task(_slow_client(port, delay=i * 0.005)) for i in range(300)]
        scrapes: list[tuple[float, float]] = []
        while not all(task.done() for task in slow):
            scrapes.append(await _timed_scrape(base))
            await asyncio.sleep(0.1)
        lifetimes = [task.result() for task in slow]
        samples = await scrape(base)
    durations = [duration for duration, _ in scrapes]
    assert len(scrapes) >= 15
    assert max(durations) < 1.0, max(durations)
    assert max(open_count for _, open_count in scrapes) <= 128
    assert max(lifetimes) < 2.0 + 0.5, max(lifetimes)
    rejected = pick(samples, "lakeprobe_http_connections_rejected_total")
    by_cause = {dict(labels)["cause"]: value for labels, value in rejected.items()}
    assert by_cause["evicted"] + by_cause["header_timeout"] >= 300, by_cause  # scrapes may be
    assert by_cause["header_timeout"] >= 100


async def _slow_client(port: int, delay: float) -> float:
    """Seconds from connect until the server closed the trickling connection."""
    await asyncio.sleep(delay)
    connection = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    trickle = asyncio.create_task(_trickle(connection, every=0.3))
    try:
        assert await closed_within(connection, 10)
        return time.monotonic() - started
    finally:
        trickle.cancel()
        connection[1].close()


async def _timed_scrape(base: str) -> tuple[float, float]:
    """(seconds the scrape took, lakeprobe_http_connections_open it reported)."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as reply:
        assert reply.status == 200
        text = await reply.text()
    line = next(x for x in text.splitlines() if x.startswith("lakeprobe_http_connections_open "))
    return time.monotonic() - started, float(line.split()[1])
