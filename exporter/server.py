"""The HTTP side: /metrics, health, readiness and reload, with the daemon's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from lakeprobe.exporter.daemon import Daemon
from lakeprobe.exporter.exposition import CONTENT_TYPE

DAEMON = web.AppKey("daemon", Daemon)
log = logging.getLogger("lakeprobe.server")


async def metrics(request: web.Request) -> web.StreamResponse:
    """Streamed one metric family at a time: a large lake's body is never held whole."""
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)
    for chunk in request.app[DAEMON].metrics_chunks():
        await response.write(chunk)
    await response.write_eof()
    return response


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    if not request.app[DAEMON].started:
        return web.Response(status=503, text="starting\n")
    return web.Response(text="ready\n")


async def reload(request: web.Request) -> web.Response:
    problems = request.app[DAEMON].reload()
    if problems:
        text = "config rejected, running config kept:\n" + "\n".join(problems) + "\n"
        return web.Response(status=400, text=text)
    return web.Response(text="reloaded\n")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    daemon = app[DAEMON]
    daemon.start()
    yield
    await daemon.stop()


def make_app(daemon: Daemon) -> web.Application:
    app = web.Application()
    app[DAEMON] = daemon
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.cleanup_ctx.append(_lifecycle)
    return app


@contextlib.contextmanager
def signal_handlers(daemon: Daemon, stop: asyncio.Event) -> Iterator[None]:
    """SIGHUP reloads; SIGINT/SIGTERM stop. Restored on exit."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(daemon: Daemon, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set)."""
    stop = stop or asyncio.Event()
    host, _, port = daemon.config.server.listen.rpartition(":")
    runner = web.AppRunner(make_app(daemon), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host.strip("[]"), int(port))
        await site.start()
        log.info("serving /metrics on http://%s/metrics", daemon.config.server.listen)
        with signal_handlers(daemon, stop):
            await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
