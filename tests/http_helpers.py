"""HTTP helpers for tests: a daemon config for tests of the HTTP port (where the probes do not
matter), and a loopback server for a test double's handler."""

from __future__ import annotations

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
