"""libcurl's multi interface driven by the running asyncio loop (the "multi_socket" API).

libcurl tells us which sockets to watch and when to wake it (M_SOCKETFUNCTION,
M_TIMERFUNCTION); the loop's add_reader/add_writer and call_later do the watching; every
wake-up is a `socket_action`, after which finished transfers resolve their futures. Transfers
run entirely in C (HTTP framing, TLS, connection reuse): only the request's own callbacks
(headers, body chunks, upload slices) run Python, on the loop's thread.

A cancelled `perform` removes its handle at once, which closes that transfer's connection: a
server sees the request end, as it would from any client that gives up.
"""

from __future__ import annotations

import asyncio
import select

import pycurl

WRITE_BURST = 64  # sends per writable event, at most (64 TLS records: 1 MiB)


def _writable(fd: int) -> bool:
    poller = select.poll()  # not select.select: a daemon's descriptors may pass FD_SETSIZE
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


class CurlFailure(Exception):
    """A transfer that libcurl ended with an error: `code` is the CURLcode."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class CurlMulti:
    """One multi handle (its own connection cache) on the running loop. Close it with
    `close()`; the transfers still running are cancelled."""

    def __init__(self, max_connections: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, max_connections)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._watched: dict[int, int] = {}  # fd -> POLL_IN | POLL_OUT bits being watched
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0  # loop time the timer fires (uvloop's handles have no when())
        self._running: dict[pycurl.Curl, asyncio.Future[None]] = {}
        self._closed = False

    async def perform(self, curl: pycurl.Curl) -> None:
        """Run one transfer; raises CurlFailure when libcurl ends it with an error."""
        if self._closed:
            raise RuntimeError("CurlMulti used after close()")
        done: asyncio.Future[None] = self._loop.create_future()
        self._running[curl] = done
        self._multi.add_handle(curl)  # libcurl asks for a timer at once: the transfer starts
        try:
            await done
        finally:
            if self._running.pop(curl, None) is not None:  # cancelled while running
                self._multi.remove_handle(curl)
                self._check_done()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for curl, done in list(self._running.items()):
            self._multi.remove_handle(curl)
            if not done.done():
                done.cancel()
        self._running.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._multi.close()  # closes the cached connections; may still report sockets
        for fd in list(self._watched):
            self._unwatch(fd)

    # --- what libcurl asks for ----------------------------------------------------------

    def _on_socket(self, event: int, fd: int, _multi: object, _data: object) -> None:
        if event == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        wanted = event & (pycurl.POLL_IN | pycurl.POLL_OUT)
        watched = self._watched.get(fd, 0)
        if wanted & pycurl.POLL_IN and not watched & pycurl.POLL_IN:
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        elif watched & pycurl.POLL_IN and not wanted & pycurl.POLL_IN:
            self._loop.remove_reader(fd)
        if wanted & pycurl.POLL_OUT and not watched & pycurl.POLL_OUT:
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        elif watched & pycurl.POLL_OUT and not wanted & pycurl.POLL_OUT:
            self._loop.remove_writer(fd)
        self._watched[fd] = wanted

    def _unwatch(self, fd: int) -> None:
        watched = self._watched.pop(fd, 0)
        if watched & pycurl.POLL_IN:
            self._loop.remove_reader(fd)
        if watched & pycurl.POLL_OUT:
            self._loop.remove_writer(fd)

    def _on_timer(self, milliseconds: int) -> None:
        """libcurl moves its wake-up after nearly every send; a wake-up that is already due
        sooner is kept (waking early only makes libcurl tell us the new time), so a 1 GiB
        upload does not reschedule a loop timer 65,536 times."""
        if milliseconds < 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        when = self._loop.time() + milliseconds / 1000
        if self._timer is not None:
            if self._timer_due <= when:
                return
            self._timer.cancel()
        self._timer, self._timer_due = self._loop.call_at(when, self._on_timeout), when

    def _on_timeout(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, action: int) -> None:
        if self._closed:
            return
        self._socket_action(fd, action)
        if action == pycurl.CSELECT_OUT:
            # libcurl sends one TLS record (16 KiB) per call: a 1 GiB upload would cost 65,536
            # trips through the loop. Go on while the socket still takes more.
            for _ in range(WRITE_BURST - 1):
                if not self._watched.get(fd, 0) & pycurl.POLL_OUT or not _writable(fd):
                    break
                self._socket_action(fd, action)
        self._check_done()

    def _socket_action(self, fd: int, action: int) -> None:
        while True:
            try:
                status, _running = self._multi.socket_action(fd, action)
            except pycurl.error as error:  # e.g. a callback of ours raised: libcurl aborted
                self._abort(f"libcurl's multi interface failed: {error.args[-1]}")
                return
            if status != pycurl.E_CALL_MULTI_PERFORM:
                return

    def _abort(self, why: str) -> None:
        """End every running transfer with `why`: a bug on our side (not the server's), so
        the runs report it at once instead of waiting for their deadline."""
        for curl, done in list(self._running.items()):
            del self._running[curl]
            self._multi.remove_handle(curl)
            if not done.done():
                done.set_exception(RuntimeError(why))

    def _check_done(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None)
            for curl, code, message in failed:
                self._finish(curl, CurlFailure(code, message))
            if queued == 0:
                return

    def _finish(self, curl: pycurl.Curl, failure: CurlFailure | None) -> None:
        done = self._running.pop(curl, None)
        self._multi.remove_handle(curl)
        if done is None or done.done():
            return
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
