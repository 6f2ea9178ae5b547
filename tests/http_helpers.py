"""HTTP helpers for tests: a daemon config for tests of the HTTP port (where the probes do not
matter), a loopback server for a test double's handler, and a relay that counts connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import yaml
from aiohttp import web

from lakeprobe.lake import free_ports


def write_daemon_config(path: Path, **server: object) -> Path:
    """A valid config with `server` keys, whose one target is a dead loopback port probed
    once an hour."""
    listen_port, dead_port = free_ports(2)
    endpoint = {"name": "dead", "url": f"https://127.0.0.1:{dead_port}", "test_dir": "/lp"}
    config = {
        "server": {"listen": f"127.0.0.1:{listen_port}", **server},
        "defaults": {"interval": "1h", "timeout": "10s"},
        "sites": [{"name": "DEAD", "endpoints": [endpoint]}],
        "probes": [{"name": "webdav", "type": "webdav"}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def serve_handler(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve every method and path with `handle` on a free 127.0.0.1 port; yields the base
    URL (http://127.0.0.1:PORT); the server is stopped on exit."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class CountingRelay:
    """A TCP relay on a free 127.0.0.1 port to `port` on 127.0.0.1, counting the connections
    clients open (TLS passes through untouched): `async with CountingRelay(p) as relay:`."""

    def __init__(self, port: int) -> None:
        self.target_port, self.port, self.connections = port, 0, 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()
