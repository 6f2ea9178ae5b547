"""An aiohttp application served on 127.0.0.1 (a free port) from its own event loop in a
daemon thread: the lake's API doubles (Tape REST, perfSONAR archive), usable from tests of
any kind, synchronous or on another loop, and from other processes."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

from lakeprobe.lake.pki import TestPki

log = logging.getLogger(__name__)

START_BOUND_SECONDS = 10.0
STOP_BOUND_SECONDS = 5.0
# After the runner's cleanup, before the loop stops: TLS transports finish closing
# (close_notify, then the socket); one the stopped loop never closed is an unclosed socket
# when the garbage collector finds it.
CLOSE_SETTLE_SECONDS = 0.2


class ThreadedApp:
    """`with Double(...) as served:` serves `_app()` over https with the PKI's host
    certificate (http without one) on `served.port`. Subclasses build the application."""

    name = "threaded app"  # for thread names and errors

    def __init__(self, pki: TestPki | None) -> None:
        self.pki = pki
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name=self.name.replace(" ", "-"), daemon=True
        )
        self._thread.start()
        if not ready.wait(START_BOUND_SECONDS) or self.port == 0:
            raise RuntimeError(f"{self.name} did not start")
        log.debug("%s on port %d", self.name, self.port)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(_close(self._runner), loop)
            future.result(STOP_BOUND_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_BOUND_SECONDS)
        self._loop = self._thread = self._runner = None

    def _serve(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        finally:
            ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        tls = None
        if self.pki is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.pki.host_cert, self.pki.host_key)
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])


async def _close(runner: web.AppRunner) -> None:
    await runner.cleanup()
    await asyncio.sleep(CLOSE_SETTLE_SECONDS)
