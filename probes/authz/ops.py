"""The four operations of the token-authz cases, over HTTP (WebDAV) and root://, each
answering allowed, denied, or a failure that is neither (a dead endpoint, a 500, ...)."""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    RequestFailed,
    status_failure,
)
from lakeprobe.probes.clients.httpcopy import ensure_collection
from lakeprobe.probes.clients.xrdasync import XrdError, XrdFileSystem, download, upload
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret

DENIED_HTTP = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class Answer:
    """`allowed` True/False, or None when the request failed for another reason (`failure`)."""

    allowed: bool | None
    detail: str  # what the server said, e.g. "PUT 403"
    failure: StepOutcome | None = None


class AuthzOps(Protocol):
    async def read(self, path: str, token: Secret | None) -> Answer: ...
    async def create(self, path: str, data: bytes, token: Secret | None) -> Answer: ...
    async def overwrite(self, path: str, data: bytes, token: Secret | None) -> Answer: ...
    async def delete(self, path: str, token: Secret | None) -> Answer: ...
    async def ensure_file(self, path: str, data: bytes, token: Secret) -> str:
        """Create `path` (and its parents) unless it exists; raises OpFailed."""
        ...


class OpFailed(Exception):
    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class HttpAuthzOps:
    """Over an open HttpClient whose own token is unset: each request carries the case's."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    async def _ask(self, method: str, path: str, token: Secret | None, allowed: set[int],
                   data: bytes | None = None) -> Answer:  # fmt: skip
        try:
            reply = await self._http.request(
                method, path, expect=ANY_STATUS, token=token, data=data, max_body=64 * 1024
            )
        except RequestFailed as failure:
            return Answer(None, failure.outcome.detail, failure.outcome)
        said = f"{method} {reply.status}"
        if reply.status in allowed:
            return Answer(True, said)
        if reply.status in DENIED_HTTP:
            return Answer(False, said)
        return Answer(None, said, status_failure(reply))

    async def read(self, path: str, token: Secret | None) -> Answer:
        return await self._ask("GET", path, token, {200})

    async def create(self, path: str, data: bytes, token: Secret | None) -> Answer:
        return await self._ask("PUT", path, token, {200, 201, 204}, data)

    async def overwrite(self, path: str, data: bytes, token: Secret | None) -> Answer:
        return await self._ask("PUT", path, token, {200, 201, 204}, data)

    async def delete(self, path: str, token: Secret | None) -> Answer:
        return await self._ask("DELETE", path, token, {200, 202, 204})

    async def ensure_file(self, path: str, data: bytes, token: Secret) -> str:
        head = await self._ask("HEAD", path, token, {200})
        if head.allowed:
            return "present"
        if head.failure is None or head.failure.reason is not Reason.NOT_FOUND:
            raise OpFailed(head.failure or status_outcome(head))
        try:  # XrdHttp's PUT does not create parents
            mkcol = await ensure_collection(
                self._http, posixpath.dirname(path), token=token, reason=None
            )
        except RequestFailed as failure:
            raise OpFailed(failure.outcome) from None
        if not mkcol.ok:
            raise OpFailed(mkcol)
        put = await self.create(path, data, token)
        if not put.allowed:
            raise OpFailed(put.failure or status_outcome(put))
        return "created"


def status_outcome(answer: Answer) -> StepOutcome:
    """A refusal where the probe's own full-scope token must be accepted."""
    return failed(Reason.AUTH, f"{answer.detail}: refused the probe's full-scope token")


class XrdAuthzOps:
    """Over root:// with the XRootD client; the token goes as `?authz=` CGI."""

    def __init__(self, target: Target, ctx: ProbeContext) -> None:
        self._target = target
        self._ctx = ctx
        self._proven = False  # the endpoint passed check_xrootd in this run

    async def _ask(self, what: str, call: Callable[[], Awaitable[object]]) -> Answer:
        try:
            await call()
        except XrdError as error:
            if error.reason is Reason.AUTH:
                return Answer(False, f"{what}: [{error.status.errno}] refused")
            return Answer(None, str(error), failed(error.reason, str(error)))
        return Answer(True, f"{what}: done")

    async def read(self, path: str, token: Secret | None) -> Answer:
        url = self._target.url_for(path)
        return await self._ask("read", lambda: download(url, 1 << 20, self._ctx.deadline, token))

    async def create(self, path: str, data: bytes, token: Secret | None) -> Answer:
        url = self._target.url_for(path)
        return await self._ask("create", lambda: upload(url, data, self._ctx.deadline, token))

    async def overwrite(self, path: str, data: bytes, token: Secret | None) -> Answer:
        url = self._target.url_for(path)
        return await self._ask(
            "overwrite", lambda: upload(url, data, self._ctx.deadline, token, overwrite=True)
        )

    async def delete(self, path: str, token: Secret | None) -> Answer:
        fs = XrdFileSystem(self._target.url, token)
        return await self._ask("delete", lambda: fs.rm(path, self._ctx.deadline))

    async def ensure_file(self, path: str, data: bytes, token: Secret) -> str:
        if not self._proven:  # setup's first call: XrdCl talks only to a proven XRootD
            checked = await check_xrootd(self._target.url, self._ctx.deadline)
            if not checked.ok:
                raise OpFailed(checked)
            self._proven = True
        fs = XrdFileSystem(self._target.url, token)
        try:
            await fs.stat(path, self._ctx.deadline)
            return "present"
        except XrdError as error:
            if error.reason is not Reason.NOT_FOUND:
                raise OpFailed(failed(error.reason, str(error))) from None
        url = self._target.url_for(path)
        try:
            await upload(url, data, self._ctx.deadline, token, makepath=True)
        except XrdError as error:
            raise OpFailed(failed(error.reason, str(error))) from None
        return "created"
