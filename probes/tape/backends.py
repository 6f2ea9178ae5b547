"""The two tape interfaces behind one shape: XRootD prepare over root:// and the WLCG Tape
REST API. The probe (recall.py) speaks only this module's terms: a file's Locality, a poll's
FileRecall per path, TapeFault for every expected failure.

Reading a recalled file goes through the endpoint itself (root:// or https), streamed and
checksummed on the fly: tape reference files may be gigabytes."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lakeprobe.probes.clients.httpclient import HttpClient, RequestFailed
from lakeprobe.probes.clients.taperest import (
    FileState,
    Locality,
    TapeRestClient,
    TapeRestError,
)
from lakeprobe.probes.clients.xrdasync import CHUNK_BYTES, XrdError, XrdFile, XrdFileSystem
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.clients.xrdtape import (
    PrepareStatus,
    prepare_cancel,
    prepare_evict,
    prepare_stage,
    query_prepare,
)
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.tapeqos import TapeQos
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import Adler32
from lakeprobe.probes.credentials.secrets import Secret

__all__ = ("FileRecall", "Locality", "Poll", "Recall", "TapeBackend", "TapeFault", "open_backend")

# An id for `query prepare` asked about locality only: XRootD answers exists/on_tape/online
# for any id (an unknown one is pending).
LOCALITY_ID = "lakeprobe-locality"
READ_LIMIT = 64 * 1024**3  # a reference file larger than this is not read back


class TapeFault(Exception):
    """An expected failure: its Reason (closed set) and a detail without secrets."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Recall(enum.Enum):
    PENDING = "pending"
    ONLINE = "online"
    FAILED = "failed"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class FileRecall:
    state: Recall
    error: str = ""
    started_at: float | None = None  # unix seconds, when the server says
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Poll:
    files: dict[str, FileRecall]  # by the path asked for; a path not answered is absent
    unexpected_paths: tuple[str, ...] = ()  # named in the answer, never asked for
    started_at: float | None = None  # the request's, when the server says


class TapeBackend(Protocol):
    can_evict: bool
    where: str  # named in findings: the API URI, or the endpoint URL

    async def connect(self) -> str: ...
    async def locality(self, paths: Sequence[str]) -> dict[str, Locality]: ...
    async def stage(self, paths: Sequence[str]) -> str: ...
    async def poll(self, request_id: str, paths: Sequence[str]) -> Poll: ...
    async def release(self, request_id: str, paths: Sequence[str]) -> None: ...
    async def evict(self, paths: Sequence[str]) -> None: ...
    async def cancel(self, request_id: str, paths: Sequence[str]) -> None: ...
    async def read_adler32(self, path: str) -> tuple[int, str]: ...


T = TypeVar("T")


async def _xrd(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except XrdError as error:
        raise TapeFault(error.reason, f"{what}: {error}") from None


class XrootdTape:
    """XRootD prepare (stage, query, evict, cancel) over the endpoint's root:// URL."""

    can_evict = True

    def __init__(self, target: Target, token: Secret | None, deadline: float) -> None:
        self._target, self._token, self._deadline = target, token, deadline
        self.where = target.url

    async def connect(self) -> str:
        checked = await check_xrootd(self._target.url, self._deadline, self._target.ca_dir)
        if not checked.ok:
            raise TapeFault(checked.reason, checked.detail)
        fs = XrdFileSystem(self._target.url, self._token)
        await _xrd("ping", fs.ping(self._deadline))
        return checked.detail or "XRootD answered"

    async def locality(self, paths: Sequence[str]) -> dict[str, Locality]:
        answer = await _xrd(
            "query prepare",
            query_prepare(self._target.url, LOCALITY_ID, paths, self._deadline, self._token),
        )
        return {path: _xrootd_locality(status) for path, status in answer.items()}

    async def stage(self, paths: Sequence[str]) -> str:
        try:
            return await prepare_stage(self._target.url, paths, self._deadline, self._token)
        except XrdError as error:
            reason = error.reason if error.reason in _TRANSPORT else Reason.STAGE_REJECTED
            raise TapeFault(reason, f"prepare -s: {error}") from None

    async def poll(self, request_id: str, paths: Sequence[str]) -> Poll:
        answer = await _xrd(
            "query prepare",
            query_prepare(self._target.url, request_id, paths, self._deadline, self._token),
        )
        files = {}
        for path, status in answer.items():
            if status.online:
                files[path] = FileRecall(Recall.ONLINE)
            elif not status.exists or (status.error and not status.on_tape):
                files[path] = FileRecall(Recall.LOST, status.error or "no such file")
            elif status.error:
                files[path] = FileRecall(Recall.FAILED, status.error)
            else:
                files[path] = FileRecall(Recall.PENDING)
        return Poll(files)

    async def release(self, request_id: str, paths: Sequence[str]) -> None:
        """XRootD has no pin to release: its recall leaves a plain disk copy (evict drops it)."""

    async def evict(self, paths: Sequence[str]) -> None:
        try:
            await prepare_evict(self._target.url, paths, self._deadline, self._token)
        except XrdError as error:
            raise TapeFault(Reason.RELEASE_FAILED, f"prepare -e: {error}") from None

    async def cancel(self, request_id: str, paths: Sequence[str]) -> None:
        await _xrd(
            "prepare -c",
            prepare_cancel(self._target.url, request_id, paths, self._deadline, self._token),
        )

    async def read_adler32(self, path: str) -> tuple[int, str]:
        checksum, offset = Adler32(), 0
        try:
            async with XrdFile(self._token) as remote:
                await remote.open(self._target.url_for(path), write=False, deadline=self._deadline)
                while True:
                    chunk = await remote.read(offset, CHUNK_BYTES, self._deadline)
                    checksum.update(chunk)
                    offset += len(chunk)
                    if len(chunk) < CHUNK_BYTES or offset > READ_LIMIT:
                        break
                await remote.close(self._deadline)
        except XrdError as error:
            raise TapeFault(error.reason, f"read {path}: {error}") from None
        return offset, checksum.hex()


_TRANSPORT = frozenset({Reason.CONNECT, Reason.DNS, Reason.TLS, Reason.TIMEOUT, Reason.AUTH})


def _xrootd_locality(status: PrepareStatus) -> Locality:
    if not status.exists:
        return Locality.NONE
    if status.online:
        return Locality.DISK_AND_TAPE if status.on_tape else Locality.DISK
    return Locality.TAPE if status.on_tape else Locality.LOST


class RestTape:
    """The WLCG Tape REST API (discovered, or configured) plus HTTPS reads on the endpoint."""

    can_evict = False  # the API releases pins; only the site decides what leaves the disk

    def __init__(self, api: TapeRestClient, http: HttpClient, qos: TapeQos, where: str) -> None:
        self._api, self._http, self._qos = api, http, qos
        self.where = where  # the recall probe names it in every finding (RecallRun._placed)

    async def _rest(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except TapeRestError as error:
            raise TapeFault(error.reason, error.detail) from None

    async def connect(self) -> str:
        found = await self._rest(self._api.discover())
        site = f" ({found.sitename})" if found.sitename else ""
        return f"Tape REST API {found.uri}{site}"

    async def locality(self, paths: Sequence[str]) -> dict[str, Locality]:
        answer = await self._rest(self._api.archiveinfo(paths))
        missing = [p for p in paths if p not in answer]
        if missing:
            raise TapeFault(Reason.PROTOCOL_ERROR, f"archiveinfo: no answer for {missing[0]}")
        found = {}
        for path, value in answer.items():
            if not isinstance(value, Locality):
                raise TapeFault(Reason.NOT_FOUND, f"archiveinfo {path}: {value}")
            found[path] = value
        return found

    async def stage(self, paths: Sequence[str]) -> str:
        return await self._rest(self._api.stage(paths, self._qos.disk_lifetime))

    async def poll(self, request_id: str, paths: Sequence[str]) -> Poll:
        status = await self._rest(self._api.poll(request_id, paths))
        files = {}
        for path, file in status.files.items():
            files[path] = FileRecall(
                Recall.ONLINE if file.on_disk else _REST_RECALL[file.state],
                file.error or "",
                file.started_at,
                file.finished_at or status.completed_at,
            )
        return Poll(files, status.unexpected_paths, status.started_at)

    async def release(self, request_id: str, paths: Sequence[str]) -> None:
        await self._rest(self._api.release(request_id, paths))
        with contextlib.suppress(TapeRestError):  # the request's record; the pin is released
            await self._api.delete(request_id)

    async def evict(self, paths: Sequence[str]) -> None:
        raise TapeFault(Reason.INTERNAL, "the Tape REST API cannot evict")

    async def cancel(self, request_id: str, paths: Sequence[str]) -> None:
        """Cancel, release, and delete the request (the spec's DELETE cancels every file of
        it, so a server that refuses the cancel itself still ends with nothing pinned)."""
        problems = []
        for call in (self._api.cancel(request_id, paths), self._api.release(request_id, paths)):
            try:
                await call
            except TapeRestError as error:
                problems.append(error.detail)
        try:
            await self._api.delete(request_id)
        except TapeRestError as error:
            raise TapeFault(error.reason, "; ".join([*problems, error.detail])) from None

    async def read_adler32(self, path: str) -> tuple[int, str]:
        checksum = Adler32()
        try:
            reply = await self._http.request(
                "GET", path, expect={200}, sink=checksum.update, max_body=READ_LIMIT
            )
        except RequestFailed as failure:
            raise TapeFault(
                failure.outcome.reason, f"GET {path}: {failure.outcome.detail}"
            ) from None
        return reply.length, checksum.hex()


_REST_RECALL = {
    FileState.SUBMITTED: Recall.PENDING,
    FileState.STARTED: Recall.PENDING,
    FileState.COMPLETED: Recall.ONLINE,
    FileState.FAILED: Recall.FAILED,
    FileState.CANCELLED: Recall.FAILED,
}


@contextlib.asynccontextmanager
async def open_backend(
    target: Target, ctx: ProbeContext, token: Secret | None, deadline: float
) -> AsyncIterator[TapeBackend]:
    """The backend of the target's tape QoS, for one run."""
    qos = target.tape
    if qos is None:
        raise TapeFault(Reason.INTERNAL, f"{target.describe()} has no tape: block")
    if qos.protocol == "xrootd":
        yield XrootdTape(target, token, deadline)
        return
    async with (
        TapeRestClient(target, ctx, qos.rest_api, qos.discovery_url, token) as api,
        HttpClient(target, ctx) as http,
    ):
        http.token = token
        yield RestTape(api, http, qos, qos.rest_api or qos.discovery_url or target.url)
