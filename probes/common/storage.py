"""One storage interface over root:// and HTTP(S)/WebDAV, for the probes that use a storage
as a tool (token-authz now; tape and integrity next), not as what they test step by step.

Every operation takes an absolute path on the target and an optional token (None: the
storage's own, if any), is bounded by a deadline (event-loop time) and either returns its
result or raises `StorageError`, whose `outcome` carries the Reason and whose `refused`
says the server refused the credential (HTTP 401/403, an XRootD auth error).
Over root:// the endpoint is proven an XRootD server (check_xrootd) before XrdCl is first
used through a storage (probes/clients/xrdhandshake.py says why).

`list` gives names: over HTTP the files of the directory (PROPFIND Depth 1, collections
left out), over root:// all its entries (XrdCl's plain dirlist has no types); callers filter
by name, as the sweep does. `write` over HTTP is a PUT whatever `overwrite` says (WebDAV
has no portable create-only); over root:// a create fails when the file exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    Reply,
    RequestFailed,
    status_failure,
)
from lakeprobe.probes.clients.httpcopy import ensure_collection
from lakeprobe.probes.clients.xrdasync import (
    KXR_UNSUPPORTED,
    XrdError,
    XrdFileSystem,
    download,
    upload,
)
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.common.httpdigest import head_with_digest
from lakeprobe.probes.common.sweep import list_http_files
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import normalize_adler32
from lakeprobe.probes.credentials.secrets import Secret

READ_LIMIT = 1024 * 1024  # default `max_bytes` of a read
ANSWER_BYTES = 64 * 1024  # body kept of answers that carry no data (error pages)
T = TypeVar("T")


class StorageError(Exception):
    """An expected failure of one operation. `said` is the server's answer in short, for a
    detail (`PUT 403`, `create: [3010] refused`, or the outcome's detail)."""

    def __init__(self, outcome: StepOutcome, said: str | None = None) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome
        self.said = said or outcome.detail

    @property
    def reason(self) -> Reason:
        return self.outcome.reason

    @property
    def refused(self) -> bool:
        """The server refused the credential (or its absence) for this operation."""
        return self.outcome.reason is Reason.AUTH


@dataclass(frozen=True, slots=True)
class Stat:
    size: int | None  # None: the server did not say (HTTP HEAD without Content-Length)
    is_dir: bool | None  # None: the protocol does not say (HTTP HEAD)


class Storage(Protocol):
    async def stat(self, path: str, token: Secret | None = None) -> Stat: ...

    async def checksum(self, path: str, token: Secret | None = None) -> str | None:
        """The server's adler32 (8 lowercase hex digits); None when it reports none."""
        ...

    async def read(
        self, path: str, token: Secret | None = None, *, max_bytes: int = READ_LIMIT
    ) -> bytes:
        """The whole file; longer than `max_bytes`: a protocol error."""
        ...

    async def write(
        self, path: str, data: bytes, token: Secret | None = None, *,
        overwrite: bool = False, parents: bool = False,
    ) -> str:  # fmt: skip
        """Store `data` (`parents`: create missing directories first); the answer in short."""
        ...

    async def delete(self, path: str, token: Secret | None = None) -> str: ...

    async def list(self, directory: str, token: Secret | None = None) -> list[str]: ...


class HttpStorage:
    """Over an open HttpClient; each request carries the call's token, else the client's own
    (`HttpClient.token`: the storage's)."""

    def __init__(self, http: HttpClient, deadline: float | None) -> None:
        """`deadline` None: bounded by the client's own timeouts (its context's deadline)."""
        self._http = http
        self._deadline = deadline

    async def _request(
        self, method: str, path: str, token: Secret | None, ok: Collection[int], *,
        headers: dict[str, str] | None = None, data: bytes | None = None,
        max_body: int = ANSWER_BYTES,
    ) -> Reply:  # fmt: skip
        """One request answered with a status in `ok`; else StorageError."""
        call = self._http.request(method, path, expect=ANY_STATUS, headers=headers, data=data,
                                  max_body=max_body, token=token)  # fmt: skip
        reply = await _bounded(method, self._deadline, _http_errors(call))
        if reply.status not in ok:
            raise StorageError(status_failure(reply), f"{method} {reply.status}")
        return reply

    async def stat(self, path: str, token: Secret | None = None) -> Stat:
        reply = await self._request("HEAD", path, token, {200})
        return Stat(reply.content_length, None)

    async def checksum(self, path: str, token: Secret | None = None) -> str | None:
        """None also when the server refuses digest requests (405/501, the file is there)."""
        call = _http_errors(head_with_digest(self._http, path, expect=ANY_STATUS, token=token))
        got = await _bounded("HEAD", self._deadline, call)
        if got.reply.status != 200:
            raise StorageError(status_failure(got.reply), f"HEAD {got.reply.status}")
        return got.adler32

    async def read(
        self, path: str, token: Secret | None = None, *, max_bytes: int = READ_LIMIT
    ) -> bytes:
        return (await self._request("GET", path, token, {200}, max_body=max_bytes)).body

    async def write(
        self, path: str, data: bytes, token: Secret | None = None, *,
        overwrite: bool = False, parents: bool = False,
    ) -> str:  # fmt: skip
        if parents:  # XrdHttp's PUT does not create parents
            mkcol = ensure_collection(self._http, posixpath.dirname(path), token=token, reason=None)
            made = await _bounded("MKCOL", self._deadline, _http_errors(mkcol))
            if not made.ok:
                raise StorageError(made)
        reply = await self._request("PUT", path, token, {200, 201, 204}, data=data)
        return f"PUT {reply.status}"

    async def delete(self, path: str, token: Secret | None = None) -> str:
        reply = await self._request("DELETE", path, token, {200, 202, 204})
        return f"DELETE {reply.status}"

    async def list(self, directory: str, token: Secret | None = None) -> list[str]:
        listing = _http_errors(list_http_files(self._http, directory, token))
        return await _bounded("PROPFIND", self._deadline, listing)


class XrdStorage:
    """Over root:// with the XRootD client; the token goes as `?authz=` CGI."""

    def __init__(self, target: Target, deadline: float, token: Secret | None = None) -> None:
        self._target = target
        self._deadline = deadline
        self._token = token
        self._proven = False  # the endpoint passed check_xrootd through this storage

    async def _call(self, op: str, action: Callable[[], Awaitable[T]]) -> T:
        """`action` after the endpoint is proven; XrdError becomes StorageError."""
        if not self._proven:  # XrdCl talks only to a proven XRootD
            target = self._target  # roots://: its certificate checked against its ca_dir
            checked = await check_xrootd(target.url, self._deadline, target.ca_dir)  # bounded
            if not checked.ok:
                raise StorageError(checked)
            self._proven = True
        try:
            return await _bounded(op, self._deadline, action())
        except XrdError as error:
            outcome = failed(error.reason, str(error))
            refused = f"{op}: [{error.status.errno}] refused"
            raise StorageError(outcome, refused if error.reason is Reason.AUTH else None) from None

    def _fs(self, token: Secret | None) -> XrdFileSystem:
        return XrdFileSystem(self._target.url, token or self._token)

    async def stat(self, path: str, token: Secret | None = None) -> Stat:
        info = await self._call("stat", lambda: self._fs(token).stat(path, self._deadline))
        return Stat(info.size, info.is_dir)

    async def checksum(self, path: str, token: Secret | None = None) -> str | None:
        fs = self._fs(token)

        async def query() -> tuple[str, str]:
            try:
                return await fs.checksum(path, self._deadline)
            except XrdError as error:
                if error.status.errno == KXR_UNSUPPORTED:  # no `xrootd.chksum` on the server
                    return "", ""
                raise

        algorithm, value = await self._call("checksum", query)
        return normalize_adler32(value) if algorithm == "adler32" and value else None

    async def read(
        self, path: str, token: Secret | None = None, *, max_bytes: int = READ_LIMIT
    ) -> bytes:
        url, token = self._target.url_for(path), token or self._token
        data = await self._call("read", lambda: download(url, max_bytes, self._deadline, token))
        if len(data) > max_bytes:
            raise StorageError(failed(Reason.PROTOCOL_ERROR, f"read: over {max_bytes} bytes"))
        return data

    async def write(
        self, path: str, data: bytes, token: Secret | None = None, *,
        overwrite: bool = False, parents: bool = False,
    ) -> str:  # fmt: skip
        url, token = self._target.url_for(path), token or self._token
        op = "overwrite" if overwrite else "create"
        await self._call(op, lambda: upload(url, data, self._deadline, token,
                                            overwrite=overwrite, makepath=parents))  # fmt: skip
        return f"{op}: done"

    async def delete(self, path: str, token: Secret | None = None) -> str:
        await self._call("delete", lambda: self._fs(token).rm(path, self._deadline))
        return "delete: done"

    async def list(self, directory: str, token: Secret | None = None) -> list[str]:
        fs = self._fs(token)
        return await self._call("list", lambda: fs.dirlist(directory, self._deadline))


async def _http_errors(call: Awaitable[T]) -> T:
    try:
        return await call
    except RequestFailed as failure:
        raise StorageError(failure.outcome) from None


async def _bounded(op: str, deadline: float | None, call: Awaitable[T]) -> T:
    """`call` cut off at `deadline`: a TIMEOUT StorageError (a caller's own, earlier timeout
    still ends it with its own TimeoutError)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await call
    except TimeoutError:
        raise StorageError(failed(Reason.TIMEOUT, f"{op}: no answer before the deadline")) from None


@contextlib.asynccontextmanager
async def storage_for(
    target: Target, ctx: ProbeContext, *, token: Secret | None = None,
    deadline: float | None = None,
) -> AsyncIterator[Storage]:  # fmt: skip
    """The storage of `target` by its protocol, for one run; `deadline` defaults to the
    run's. An HTTP storage's session closes on exit."""
    bound = ctx.deadline if deadline is None else deadline
    if target.protocol in ("root", "roots"):
        yield XrdStorage(target, bound, token)
        return
    async with HttpClient(target, ctx) as http:
        http.token = token
        yield HttpStorage(http, bound)
