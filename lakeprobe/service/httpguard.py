"""The daemon's listening socket, guarded: a cap on open connections, a deadline for each
request head, and a bound on each request's handling.

aiohttp has no request-head timeout of its own (its keep-alive timer runs from a connection's
start, and only once the TLS handshake is done), and asyncio's create_server() offers no hook
between accept() and the protocol. So GuardedSite, an aiohttp site, accepts connections itself
(loop.sock_accept) and hands each to aiohttp through loop.connect_accepted_socket (TLS
included), both public asyncio API. The protocol asyncio gets is a _Connection, which forwards
every call to the aiohttp RequestHandler that runner.server() makes (exactly what TCPSite's
create_server() would use) and keeps the connection's slot and deadline:

- At the cap, the connection that has waited longest without a request being handled (idle
  keep-alive, a slow request head, a TLS handshake) is closed to make room (cause `evicted`);
  only when every connection is serving a request is the new one closed at once (`limit`).
  So slow clients cannot crowd out a scrape whose request arrives in one piece.
- A request head must be complete within `header_timeout` of the accept (the TLS handshake
  included) or of the first byte after the previous response (cause `header_timeout`). An
  idle keep-alive connection is aiohttp's to close (keepalive_timeout).
- The middleware marks a connection busy while a request is handled, bounds the handling by
  `request_timeout` (cause `request_timeout`), and keeps quiet about clients that leave before
  their answer (aiohttp would log a traceback for each).

GuardedSite (httpsite.py) owns the listening sockets and runs ConnectionGuard.accept on each.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("lakeprobe.http")
CAUSES = ("limit", "evicted", "header_timeout", "request_timeout")
ACCEPT_RETRY_SECONDS = 1.0  # after a failed accept (out of descriptors), as asyncio waits

MakeHandler = Callable[[], asyncio.Protocol]


@dataclass(frozen=True, slots=True)
class Limits:
    """From the server config (its defaults are the only ones)."""

    max_connections: int
    header_timeout: float
    request_timeout: float


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry, open_connections: Callable[[], int]) -> None:
        self.accepted = Counter(
            "lakeprobe_http_connections_accepted",
            "Connections accepted on the HTTP port",
            registry=registry,
        )
        self.rejected = Counter(
            "lakeprobe_http_connections_rejected",
            "Connections the guard refused or closed: limit (all busy), evicted (idle or slow, "
            "to make room), header_timeout, request_timeout",
            ["cause"],
            registry=registry,
        )
        for cause in CAUSES:
            self.rejected.labels(cause)
        self.accept_errors = Counter(
            "lakeprobe_http_accept_errors",
            "Failed accepts on the HTTP port (mostly: out of file descriptors)",
            registry=registry,
        )
        Gauge(
            "lakeprobe_http_connections_open", "Open HTTP connections", registry=registry
        ).set_function(open_connections)


class ConnectionGuard:
    """Slots, deadlines and counters of the connections GuardedSite accepts."""

    def __init__(self, limits: Limits, registry: CollectorRegistry) -> None:
        self.limits = limits  # replaced on reload: applies to new connections and requests
        self.metrics = HttpMetrics(registry, lambda: len(self._open))
        self._open: set[_Connection] = set()
        # Not handling a request, longest waiting first: the order of eviction.
        self._waiting: dict[_Connection, None] = {}

    async def accept(
        self, sock: socket.socket, make_handler: MakeHandler, tls: ssl.SSLContext | None
    ) -> None:
        """Accept on `sock` until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as error:
                self.metrics.accept_errors.inc()
                # Reported as asyncio reports its own: serve() rate-limits these.
                loop.call_exception_handler(
                    {"message": "accept() failed", "exception": error, "socket": sock}
                )
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            self._admit(client, make_handler, tls)

    def _admit(
        self, client: socket.socket, make_handler: MakeHandler, tls: ssl.SSLContext | None
    ) -> None:
        if len(self._open) >= self.limits.max_connections:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                client.close()
                self.metrics.rejected.labels("limit").inc()
                return
            oldest.shed()
            self.metrics.rejected.labels("evicted").inc()
        connection = _Connection(self, make_handler)
        self._open.add(connection)
        self._waiting[connection] = None
        self.metrics.accepted.inc()
        connection.open(client, tls, self.limits.header_timeout)

    def release(self, connection: _Connection) -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    def busy(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)

    def idle(self, connection: _Connection) -> None:
        if connection in self._open:
            self._waiting[connection] = None

    def shed_waiting(self) -> None:
        """Close the connections not handling a request (at shutdown)."""
        for connection in list(self._waiting):
            connection.shed()

    def shed_all(self) -> None:
        for connection in list(self._open):
            connection.shed()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while `handler` runs, bounded by request_timeout."""
        connection = _connection_of(request)
        if connection is not None:
            connection.request_started()
        try:
            async with asyncio.timeout(self.limits.request_timeout) as deadline:
                return await handler(request)
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own
            return self._timed_out(request, connection)
        except ConnectionError:
            transport = request.transport
            if transport is not None and not transport.is_closing():
                raise  # not the client's connection
            # The client left (closed or half-closed) before the answer: aiohttp would log a
            # traceback for each, a flood any client can cause. Writing this one fails quietly.
            return web.Response(status=503, text="client gone\n")
        finally:
            if connection is not None:
                connection.request_finished()

    def _timed_out(self, request: web.Request, connection: _Connection | None) -> web.Response:
        seconds = self.limits.request_timeout
        self.metrics.rejected.labels("request_timeout").inc()
        log.warning(
            "%s %s from %s took longer than %g s: closing the connection",
            request.method, request.path, request.remote, seconds,
        )  # fmt: skip
        if request.writer.output_size > 0 and connection is not None:
            connection.shed()  # a response has begun: it cannot be replaced
        response = web.Response(status=503, text=f"request took longer than {seconds:g} s\n")
        response.force_close()
        return response


def _connection_of(request: web.Request) -> _Connection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, _Connection) else None


class _Connection(asyncio.Protocol):
    """One accepted socket. Forwards asyncio's calls to aiohttp's handler, made once the
    transport exists (after the TLS handshake with TLS)."""

    def __init__(self, guard: ConnectionGuard, make_handler: MakeHandler) -> None:
        self._guard = guard
        self._make_handler = make_handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._setup: asyncio.Task[Any] | None = None
        self._adopted = False  # asyncio took the socket over (closes it from then on)
        self._deadline: asyncio.TimerHandle | None = None
        self._serving = 0
        self._shed = False

    def open(self, client: socket.socket, tls: ssl.SSLContext | None, head_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._await_head(head_timeout)
        # asyncio's handshake timeout is only a backstop: the head deadline covers it.
        handshake_timeout = 2 * head_timeout if tls else None
        setup = loop.connect_accepted_socket(
            self._adopt, client, ssl=tls, ssl_handshake_timeout=handshake_timeout
        )
        self._setup = loop.create_task(setup)
        self._setup.add_done_callback(partial(self._setup_done, client))

    def _adopt(self) -> _Connection:
        """The protocol factory: called as asyncio wraps the socket in a transport."""
        self._adopted = True
        return self

    def _setup_done(self, client: socket.socket, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            # A failed handshake, a peer gone, or shed: an expected end, not worth a log line.
            if not task.cancelled():
                log.debug("connection setup failed: %r", task.exception())
            if not self._adopted:
                client.close()
            self._end()

    def shed(self) -> None:
        """Close now: no more data in or out."""
        if self._shed:
            return
        self._shed = True
        self._end()
        if self._transport is not None:
            self._transport.abort()
        elif self._setup is not None:
            self._setup.cancel()

    def _end(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.release(self)

    def _await_head(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._deadline = None
        self._guard.metrics.rejected.labels("header_timeout").inc()
        self.shed()

    def request_started(self) -> None:
        self._serving += 1
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.busy(self)

    def request_finished(self) -> None:
        self._serving -= 1
        if not self._serving and not self._shed:
            self._guard.idle(self)

    # asyncio.Protocol, forwarded to aiohttp's handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self._shed:
            self._transport.abort()
            return
        self._handler = self._make_handler()
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._serving and self._deadline is None and not self._shed:
            self._await_head(self._guard.limits.header_timeout)  # a request after a response
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        if self._handler is not None:
            self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()
