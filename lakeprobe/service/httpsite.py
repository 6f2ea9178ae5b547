"""GuardedSite: an aiohttp site whose connections are accepted and kept by a ConnectionGuard
(httpguard.py) instead of asyncio's create_server()."""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiohttp import web

from lakeprobe.service.httpguard import ConnectionGuard


class GuardedSite(web.BaseSite):
    """An aiohttp site on HOST:PORT whose connections go through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._guard = host, port, guard
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        make_handler = self._runner.server
        assert make_handler is not None  # set by runner.setup(), which BaseSite requires
        self._sockets = listening_sockets(self._host, self._port, self._backlog)
        self._accepting = [
            asyncio.create_task(self._guard.accept(sock, make_handler, self._ssl_context))
            for sock in self._sockets
        ]

    async def stop(self) -> None:
        """Stop accepting and close idle connections; aiohttp's runner then lets requests in
        progress finish."""
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        self._guard.shed_waiting()
        await super().stop()


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of `host` (as asyncio's
    create_server binds them)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
