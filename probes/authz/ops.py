"""The four operations of the token-authz cases, over the storage interface
(probes/common/storage.py), each answering allowed, denied, or a failure that is neither
(a dead endpoint, a 500, ...)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from lakeprobe.probes.clients.httpclient import HttpClient
from lakeprobe.probes.common.storage import HttpStorage, Storage, StorageError, XrdStorage
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret

READ_BYTES = 64 * 1024  # the fixture file is a line of text


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


class StorageAuthzOps:
    """The cases' operations over one storage; `read_done` is what an allowed read said."""

    def __init__(self, storage: Storage, read_done: str) -> None:
        self._storage = storage
        self._read_done = read_done

    @staticmethod
    async def _ask(call: Callable[[], Awaitable[str]]) -> Answer:
        try:
            return Answer(True, await call())
        except StorageError as error:
            if error.refused:
                return Answer(False, error.said)
            return Answer(None, error.said, error.outcome)

    async def read(self, path: str, token: Secret | None) -> Answer:
        async def read() -> str:
            await self._storage.read(path, token, max_bytes=READ_BYTES)
            return self._read_done

        return await self._ask(read)

    async def create(self, path: str, data: bytes, token: Secret | None) -> Answer:
        return await self._ask(lambda: self._storage.write(path, data, token))

    async def overwrite(self, path: str, data: bytes, token: Secret | None) -> Answer:
        return await self._ask(lambda: self._storage.write(path, data, token, overwrite=True))

    async def delete(self, path: str, token: Secret | None) -> Answer:
        return await self._ask(lambda: self._storage.delete(path, token))

    async def ensure_file(self, path: str, data: bytes, token: Secret) -> str:
        """Over XrdHttp: HEAD, then MKCOL of the parents and PUT; over root://: stat, then a
        create with its parents (the endpoint proven by check_xrootd first)."""
        try:
            await self._storage.stat(path, token)
            return "present"
        except StorageError as error:
            if error.reason is not Reason.NOT_FOUND:
                raise OpFailed(_setup_failure(error)) from None
        try:
            await self._storage.write(path, data, token, parents=True)
        except StorageError as error:
            raise OpFailed(_setup_failure(error)) from None
        return "created"


def _setup_failure(error: StorageError) -> StepOutcome:
    """A refusal where the probe's own full-scope token must be accepted is `auth`."""
    if error.refused:
        return failed(Reason.AUTH, f"{error.said}: refused the probe's full-scope token")
    return error.outcome


class HttpAuthzOps(StorageAuthzOps):
    """Over an open HttpClient whose own token is unset: each request carries the case's;
    bounded by the client's own deadline (its context's)."""

    def __init__(self, http: HttpClient, deadline: float | None = None) -> None:
        super().__init__(HttpStorage(http, deadline), "GET 200")


class XrdAuthzOps(StorageAuthzOps):
    """Over root:// with the XRootD client; the token goes as `?authz=` CGI."""

    def __init__(self, target: Target, ctx: ProbeContext) -> None:
        super().__init__(XrdStorage(target, ctx.deadline), "read: done")
