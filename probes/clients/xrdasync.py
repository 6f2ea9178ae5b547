"""asyncio over the XRootD Python client's callback API, and XRootD errors as `Reason`s.

Every call is asynchronous on the XrdCl side: it returns at once and XrdCl calls back on one
of its own threads as `cb(status, response, hostlist)`. The callback hands the answer to the
event loop with `call_soon_threadsafe`; no thread ever waits for a server. Each call carries
XrdCl's own `timeout=` (whole seconds, from the caller's deadline) and is awaited under the
caller's asyncio deadline too: if asyncio gives up first, the late callback finds the future
cancelled and is dropped, while XrdCl ends the request at its own timeout.

XRootD reports failures as status values, never exceptions; here a failed status raises
`XrdError`, whose message is already redacted.

Calls go to the binding's own objects (`pyxrootd.client`, which `XRootD.client` wraps): their
callback receives the raw host list, which `xrdleak.release` needs to free what the 5.5
binding leaks on every callback (see xrdleak.py); the wrapper's per-call objects are saved too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lakeprobe.probes.clients import xrdleak
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason, StepOutcome, failed
from lakeprobe.probes.credentials.secrets import Secret, redact

log = logging.getLogger(__name__)

# Process-wide XrdCl settings, applied once before the first call (XrdCl.EnvPutInt, never
# os.environ). Measured against xrootd 5.5.3 on loopback, see tests/test_probe_xrootd.py.
# No setting makes XrdCl check a roots:// host spelled localhost, 127.0.0.1 or [::1] (it
# skips the check for those, XrdClTls.cc): xrdhandshake/xrdtls check every name instead.
CLIENT_SETTINGS: dict[str, int] = {
    # Check timeouts every second: with the default 15, `timeout=5` fires after 15 s.
    "TimeoutResolution": 1,
    # One connection attempt, no retries: a stopped server (connection refused) fails at
    # once as a connection error instead of retrying until the request times out.
    "ConnectionRetry": 1,
    # Bound of that attempt (TCP connect + handshake). A server that accepts and never
    # answers is cut by the per-call timeout first; this only bounds a call with more time.
    "ConnectionWindow": 10,
    # Default for a call without `timeout=`; every call here passes its own.
    "RequestTimeout": 60,
    # Do not replay a connection error to later requests (default: for 1800 s): a restarted
    # server must be seen as up by the very next probe.
    "StreamErrorWindow": 0,
}

# XrdCl status codes (XrdClStatus.hh).
ERR_INVALID_ADDR = 101
ERR_SOCKET_ERROR = 102
ERR_SOCKET_TIMEOUT = 103
ERR_SOCKET_DISCONNECTED = 104
ERR_STREAM_DISCONNECT = 107
ERR_CONNECTION_ERROR = 108
ERR_TLS_ERROR = 110
ERR_HANDSHAKE_FAILED = 202
ERR_LOGIN_FAILED = 203
ERR_AUTH_FAILED = 204
ERR_OPERATION_EXPIRED = 206
ERR_ERROR_RESPONSE = 400  # the server answered kXR_error; `errno` holds its kXR code
# Server error codes (XProtocol.hh, kXR_*), in `errno` when code is ERR_ERROR_RESPONSE.
KXR_NO_SPACE = 3009
KXR_NOT_AUTHORIZED = 3010
KXR_NOT_FOUND = 3011
KXR_UNSUPPORTED = 3013
KXR_TLS_REQUIRED = 3028
KXR_AUTH_FAILED = 3030
KXR_REQ_TIMED_OUT = 3034

_BY_CODE = {
    ERR_INVALID_ADDR: Reason.DNS,
    ERR_SOCKET_ERROR: Reason.CONNECT,
    ERR_SOCKET_TIMEOUT: Reason.TIMEOUT,
    ERR_SOCKET_DISCONNECTED: Reason.CONNECT,
    ERR_STREAM_DISCONNECT: Reason.CONNECT,
    ERR_CONNECTION_ERROR: Reason.CONNECT,
    ERR_TLS_ERROR: Reason.TLS,
    ERR_HANDSHAKE_FAILED: Reason.TLS,
    ERR_LOGIN_FAILED: Reason.AUTH,
    ERR_AUTH_FAILED: Reason.AUTH,
    ERR_OPERATION_EXPIRED: Reason.TIMEOUT,
}
_BY_SERVER_ERROR = {
    KXR_NOT_AUTHORIZED: Reason.AUTH,
    KXR_AUTH_FAILED: Reason.AUTH,
    KXR_NOT_FOUND: Reason.NOT_FOUND,
    KXR_NO_SPACE: Reason.NO_SPACE,
    KXR_TLS_REQUIRED: Reason.TLS,
    KXR_REQ_TIMED_OUT: Reason.TIMEOUT,
}
_BY_ERRNO = {
    errno.EACCES: Reason.AUTH,
    errno.EPERM: Reason.AUTH,
    errno.ENOENT: Reason.NOT_FOUND,
    errno.ECONNREFUSED: Reason.CONNECT,
    errno.EHOSTUNREACH: Reason.CONNECT,
    errno.ENETUNREACH: Reason.CONNECT,
    errno.ETIMEDOUT: Reason.TIMEOUT,
    errno.ENOSPC: Reason.NO_SPACE,
    errno.EDQUOT: Reason.NO_SPACE,
}


@dataclass(frozen=True, slots=True)
class XrdStatus:
    """An XRootDStatus as plain values; `message` is redacted, and empty when ok."""

    ok: bool
    code: int = 0  # XrdCl code: ERR_* above
    errno: int = 0  # kXR_* server code when code == ERR_ERROR_RESPONSE, else a POSIX errno
    message: str = ""

    @classmethod
    def of(cls, status: Any) -> XrdStatus:
        """From an XRootD.client XRootDStatus, or the binding's own status dict."""
        if isinstance(status, dict):
            fields = (status["ok"], status["code"], status["errno"], status["message"])
        else:
            fields = (status.ok, status.code, status.errno, status.message)
        ok, code, number, message = fields
        if ok:  # "[SUCCESS]": nothing to tell, and no text to scrub on every call
            return cls(True, int(code), int(number))
        return cls(False, int(code), int(number), redact(str(message).strip()))


def reason_for(status: XrdStatus) -> Reason:
    """The failure reason of a status: by XrdCl code, then server error, then errno. A full
    disk is kXR_NoSpace on a write, but kXR_FSError ("Local error: no space left on device")
    when a TPC destination's helper hits it: a generic server error saying "no space" is
    NO_SPACE too."""
    if status.ok:
        return Reason.NONE
    if status.code == ERR_ERROR_RESPONSE:
        reason = _BY_SERVER_ERROR.get(status.errno, Reason.SERVER_ERROR)
        if reason is Reason.SERVER_ERROR and NO_SPACE_TEXT.search(status.message):
            return Reason.NO_SPACE
        return reason
    if status.code in _BY_CODE:
        return _BY_CODE[status.code]
    return _BY_ERRNO.get(status.errno, Reason.PROTOCOL_ERROR)


class XrdError(Exception):
    """A call that failed; str() is "<operation>: <redacted XRootD message>"."""

    def __init__(self, operation: str, status: XrdStatus) -> None:
        super().__init__(f"{operation}: {status.message}")
        self.status = status

    @property
    def reason(self) -> Reason:
        return reason_for(self.status)


@functools.cache
def client_module() -> Any:
    """`XRootD.client`, imported and configured on first use (not at import time)."""
    import XRootD.client.flags  # noqa: F401  (the submodule, as `client.flags`)
    from XRootD import client

    for key, value in CLIENT_SETTINGS.items():
        if not client.EnvPutInt(key, value):  # False: an XRD_* variable of the process wins
            log.warning("XrdCl %s=%s from the environment overrides lakeprobe's %d",
                        key, client.EnvGetInt(key), value)  # fmt: skip
    return client


@functools.cache
def raw_client() -> Any:
    """`pyxrootd.client`, the binding's objects under XRootD.client, configured as above."""
    client_module()
    from pyxrootd import client  # type: ignore[import-untyped]

    return client


def effective_settings() -> dict[str, int]:
    """What XrdCl will use for CLIENT_SETTINGS' keys."""
    client = client_module()
    return {key: int(client.EnvGetInt(key)) for key in CLIENT_SETTINGS}


def timeout_for(deadline: float) -> int:
    """XrdCl's per-call timeout for an event-loop deadline: whole seconds, rounded up (XrdCl
    checks expiry once a second, so it ends the request within about a second of the
    deadline either way); asyncio's deadline is the exact bound."""
    remaining = deadline - asyncio.get_running_loop().time()
    return min(65535, max(1, math.ceil(remaining)))


def with_authz(path: str, token: Secret | None) -> str:
    """`path` with the bearer token as CGI (`?authz=`); call it only at the XrdCl call."""
    if token is None:
        return path
    return f"{path}{'&' if '?' in path else '?'}authz={token.reveal()}"


Callback = Callable[[Any, Any, Any], None]


async def call(operation: str, start: Callable[[Callback], Any], keep: object = None) -> Any:
    """Start an XrdCl call with `start(callback)` and await its response.
    `keep` is held until XrdCl calls back, even if the caller gives up: XrdCl reads write
    buffers after the call has returned and the binding does not keep them alive; the File
    is kept too, so that it is never destroyed with a call in flight."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[tuple[Any, Any]] = loop.create_future()

    def settle(status: Any, response: Any) -> None:
        if not future.done():  # cancelled: the caller gave up, drop the late answer
            future.set_result((status, response))

    def on_reply(status: Any, response: Any, hosts: Any, _keep: object = keep) -> None:
        # On an XrdCl thread, holding the GIL. Must never raise: the binding would print the
        # traceback. First, before anything else is allocated: free what the binding leaked
        # (a bug there must not lose the answer: logged, and the answer still goes through).
        try:
            xrdleak.release(hosts)
        except Exception:
            log.exception("releasing the XRootD binding's leaked objects failed")
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, status, response)

    submitted = XrdStatus.of(start(on_reply))
    if not submitted.ok:  # refused before it was sent: XrdCl will not call back
        raise XrdError(operation, submitted)
    status, response = await future
    result = XrdStatus.of(status)
    if not result.ok:
        raise XrdError(operation, result)
    return response


@dataclass(frozen=True, slots=True)
class StatInfo:
    size: int
    flags: int

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & client_module().flags.StatInfoFlags.IS_DIR)


async def _invoke(owner: Any, method: str, *args: object, deadline: float, keep: object = None
                  ) -> Any:  # fmt: skip
    """`owner.method(*args, timeout=..., callback=...)` awaited; `owner` is kept alive too."""
    bound = getattr(owner, method)
    return await call(
        method, lambda cb: bound(*args, timeout=timeout_for(deadline), callback=cb), (owner, keep)
    )


class XrdFileSystem:
    """Metadata calls on one endpoint (`root://host:port`). Paths are absolute; the token,
    when given, is added to every path as CGI at the moment of the call."""

    def __init__(self, url: str, token: Secret | None = None) -> None:
        self._fs = raw_client().FileSystem(url)
        self._token = token

    async def ping(self, deadline: float) -> None:
        await _invoke(self._fs, "ping", deadline=deadline)

    async def stat(self, path: str, deadline: float) -> StatInfo:
        info = await _invoke(self._fs, "stat", with_authz(path, self._token), deadline=deadline)
        xrdleak.release_statinfo(info)
        return StatInfo(size=int(info["size"]), flags=int(info["flags"]))

    async def checksum(self, path: str, deadline: float) -> tuple[str, str]:
        """(algorithm, value) as the server reports them, e.g. ("adler32", "062c0215")."""
        code = client_module().flags.QueryCode.CHECKSUM
        raw = await _invoke(self._fs, "query", code, with_authz(path, self._token),
                            deadline=deadline)  # fmt: skip
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw or "")
        fields = text.replace("\x00", " ").split()  # "adler32 062c0215\x00"
        if len(fields) < 2:
            return (fields[0] if fields else "", "")
        return fields[0].lower(), fields[1]

    async def dirlist(self, path: str, deadline: float) -> list[str]:
        """Names of the entries of a directory."""
        listing = await _invoke(self._fs, "dirlist", with_authz(path, self._token), 0,
                                deadline=deadline)  # fmt: skip
        if not isinstance(listing, dict):
            return []
        for entry in listing["dirlist"]:
            xrdleak.release_statinfo(entry["statinfo"])  # None: dirlist without stat flags
        return [str(entry["name"]) for entry in listing["dirlist"]]

    async def rm(self, path: str, deadline: float) -> None:
        await _invoke(self._fs, "rm", with_authz(path, self._token), deadline=deadline)


def _release_only(_status: Any, _response: Any, hosts: Any) -> None:
    """Callback of a call nobody awaits: only frees what the binding leaked."""
    xrdleak.release(hosts)


class XrdFile:
    """One remote file: open, write/read at offsets, close. Use `async with`: leaving the block
    with the file still open (a failure, a timeout) closes it in the background, unawaited."""

    def __init__(self, token: Secret | None = None) -> None:
        self._file = raw_client().File()
        self._token = token
        self._open = False

    async def __aenter__(self) -> XrdFile:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):  # best effort: the server may be gone
                self._file.close(timeout=5, callback=_release_only)

    async def open(
        self, url: str, *, write: bool, deadline: float, overwrite: bool = False,
        makepath: bool = False,
    ) -> None:  # fmt: skip
        """Read, or write a new file (NEW); `overwrite` replaces an existing one (DELETE),
        `makepath` creates missing parent directories."""
        flags = client_module().flags
        mode = flags.OpenFlags.READ
        if write:
            mode = flags.OpenFlags.DELETE if overwrite else flags.OpenFlags.NEW
            if makepath:
                mode |= flags.OpenFlags.MAKEPATH
        access = flags.AccessMode.UR | flags.AccessMode.UW | flags.AccessMode.GR
        url = with_authz(url, self._token)
        await _invoke(self._file, "open", url, mode, access, deadline=deadline)
        self._open = True

    async def write(self, data: bytes, offset: int, deadline: float) -> None:
        await _invoke(self._file, "write", data, offset, len(data), deadline=deadline, keep=data)

    async def read(self, offset: int, size: int, deadline: float) -> bytes:
        return bytes(await _invoke(self._file, "read", offset, size, deadline=deadline) or b"")

    async def close(self, deadline: float) -> None:
        self._open = False
        await _invoke(self._file, "close", deadline=deadline)


CHUNK_BYTES = 8 * 1024 * 1024


async def upload(
    url: str, data: bytes, deadline: float, token: Secret | None = None, *,
    overwrite: bool = False, makepath: bool = False,
) -> None:  # fmt: skip
    """Create a new file (it must not exist, unless `overwrite`) with `data`: open, write in
    chunks, close."""
    async with XrdFile(token) as remote:
        await remote.open(url, write=True, deadline=deadline, overwrite=overwrite,
                          makepath=makepath)  # fmt: skip
        for offset in range(0, len(data), CHUNK_BYTES):
            await remote.write(data[offset : offset + CHUNK_BYTES], offset, deadline)
        await remote.close(deadline)


async def download(url: str, size: int, deadline: float, token: Secret | None = None) -> bytes:
    """Read a file: `size` bytes expected, read on until a short read to see any extra bytes."""
    chunks: list[bytes] = []
    offset = 0
    async with XrdFile(token) as remote:
        await remote.open(url, write=False, deadline=deadline)
        while True:
            chunk = await remote.read(offset, CHUNK_BYTES, deadline)
            chunks.append(chunk)
            offset += len(chunk)
            if len(chunk) < CHUNK_BYTES or offset > size:
                break
        await remote.close(deadline)
    return b"".join(chunks)


StepAction = Callable[[], Awaitable[StepOutcome]]


def guarded(action: StepAction) -> StepAction:
    """A step action in which an XrdError becomes a failed step with its mapped reason."""

    async def run() -> StepOutcome:
        try:
            return await action()
        except XrdError as error:
            return failed(error.reason, str(error))

    return run
