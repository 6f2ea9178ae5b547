"""The HTTP side: /metrics, health, readiness and reload, with the daemon's lifecycle.

The port is guarded (httpguard.py: connection cap, request-head and request deadlines), may
speak TLS and ask for basic auth (webconfig.py), and POST /-/reload is off unless
server.enable_reload is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from lakeprobe.config.model import ServerConfig
from lakeprobe.config.webconfig import BasicAuthCheck, WebConfig, load_web_config
from lakeprobe.exporter.exposition import CONTENT_TYPE
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.httpguard import ConnectionGuard, Limits
from lakeprobe.service.httplog import bounded_flood_logs
from lakeprobe.service.httpsite import GuardedSite
from lakeprobe.service.openfiles import raise_open_files_limit

log = logging.getLogger("lakeprobe.server")
RELOAD_GRACE_SECONDS = 30.0  # at shutdown, for a reload in progress
RELOAD_DISABLED = "POST /-/reload is disabled: set server.enable_reload: true, or send SIGHUP\n"
RELOAD_LOOPBACK_ONLY = (
    "POST /-/reload is allowed from loopback only, unless server.web_config_file "
    "authenticates clients (basic_auth_users or client certificates)\n"
)


def limits_of(server: ServerConfig) -> Limits:
    return Limits(server.max_connections, server.header_timeout, server.request_timeout)


class Reloads:
    """Reloads started by SIGHUP or POST /-/reload, as tasks: held here until done (the loop
    keeps only weak references to tasks), failures logged. A successful reload also applies
    the new connection limits (what only a restart applies, the daemon names in a warning)."""

    def __init__(self, daemon: Daemon, guard: ConnectionGuard) -> None:
        self._daemon, self._guard = daemon, guard
        self._running: set[asyncio.Task[list[str]]] = set()

    def start(self) -> asyncio.Task[list[str]]:
        task = asyncio.create_task(self._reload())
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    async def finish(self, timeout: float) -> None:
        """Let reloads in progress end (bounded), then cancel what is left."""
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        for task in list(self._running):
            task.cancel()

    async def _reload(self) -> list[str]:
        problems = await self._daemon.reload_async()
        if not problems:
            self._guard.limits = limits_of(self._daemon.config.server)
        return problems

    def _done(self, task: asyncio.Task[list[str]]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("reload failed: %r", error, exc_info=error)


DAEMON = web.AppKey("daemon", Daemon)
WEB = web.AppKey("web", WebConfig)
RELOADS = web.AppKey("reloads", Reloads)


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
    """Off unless server.enable_reload; then from loopback, or from any client the web config
    authenticated (basic auth has already let it through)."""
    if not request.app[DAEMON].config.server.enable_reload:
        return web.Response(status=403, text=RELOAD_DISABLED)
    if not (request.app[WEB].authenticates_clients or _is_loopback(request.remote)):
        return web.Response(status=403, text=RELOAD_LOOPBACK_ONLY)
    # Shielded: a client that gives up (or the request timeout) does not cut a reload short.
    problems = await asyncio.shield(request.app[RELOADS].start())
    if problems:
        text = "config rejected, running config kept:\n" + "\n".join(problems) + "\n"
        return web.Response(status=400, text=text)
    return web.Response(text="reloaded\n")


def _is_loopback(remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    daemon = app[DAEMON]
    daemon.start()
    yield
    await app[RELOADS].finish(RELOAD_GRACE_SECONDS)
    await daemon.stop()


def make_app(daemon: Daemon, guard: ConnectionGuard, web_config: WebConfig) -> web.Application:
    middlewares: list[Middleware] = [guard.middleware]
    auth = BasicAuthCheck(web_config.users) if web_config.users else None
    if auth is not None:
        middlewares.append(auth.middleware)
    app = web.Application(middlewares=middlewares)
    if auth is not None:
        app.on_cleanup.append(auth.close)
    app[DAEMON] = daemon
    app[WEB] = web_config
    app[RELOADS] = Reloads(daemon, guard)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.cleanup_ctx.append(_lifecycle)
    return app


@contextlib.contextmanager
def signal_handlers(reloads: Reloads, stop: asyncio.Event) -> Iterator[None]:
    """SIGHUP starts a reload; SIGINT/SIGTERM stop. Restored on exit."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloads.start)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(daemon: Daemon, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set). An unusable web config raises ConfigError
    before anything listens."""
    stop = stop or asyncio.Event()
    server = daemon.config.server
    web_config = WebConfig()
    if server.web_config_file is not None:
        web_config = load_web_config(server.web_config_file)
    raise_open_files_limit()
    guard = ConnectionGuard(limits_of(server), daemon.registry)
    app = make_app(daemon, guard, web_config)
    runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=server.keepalive_timeout)
    host, _, port = server.listen.rpartition(":")
    with bounded_flood_logs():
        await runner.setup()
        try:
            site = GuardedSite(
                runner, host.strip("[]"), int(port), guard, ssl_context=web_config.ssl_context
            )
            await site.start()
            log.info("serving /metrics on %s/metrics", site.name)
            if web_config.users and web_config.ssl_context is None:
                log.warning("basic auth without TLS: passwords cross the network in clear text")
            with signal_handlers(app[RELOADS], stop):
                await stop.wait()
            log.info("shutting down")
        finally:
            await runner.cleanup()
            guard.shed_all()
