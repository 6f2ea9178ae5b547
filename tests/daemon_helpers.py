"""Run the real daemon in the test's event loop and read its /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import load_config
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.server import serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@contextlib.asynccontextmanager
async def running_daemon(config_path: Path) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = Daemon(config_path, load_config(config_path))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(daemon, stop))
    base = f"http://{daemon.config.server.listen}"
    try:
        await wait_for(lambda: _ready(base), timeout=10, what="daemon ready")
        yield daemon, base
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _ready(base: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/-/ready") as reply:
            return reply.status == 200
    except aiohttp.ClientError:
        return False


async def fetch(base: str, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(method, base + path) as reply:
        return reply.status, await reply.text()


async def scrape(base: str) -> Samples:
    _, text = await fetch(base)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pick(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    wanted = set(labels.items())
    return {k: v for (n, k), v in samples.items() if n == name and wanted <= k}


async def wait_for(
    check: Callable[[], object], *, timeout: float, what: str, every: float = 0.2
) -> None:
    """Poll an async or sync predicate until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


# The daemon's shutdown grace (lakeprobe/service/daemon.py: 10 s) plus what exit itself may take.
SHUTDOWN_BOUND = 15.0
