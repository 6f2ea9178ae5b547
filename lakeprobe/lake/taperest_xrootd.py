"""The Tape REST double's backend on the lake's tape-emulating XRootD site: stage -> prepare,
poll and archiveinfo -> query prepare, release -> evict, cancel -> prepare cancel, through
probes/clients/xrdtape in the double's event loop. Kept apart from taperest.py so a double
over MemoryTapeBackend never loads the XRootD bindings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from lakeprobe.lake.taperest import BackendError, BackendFile
from lakeprobe.probes.clients.xrdasync import XrdError
from lakeprobe.probes.clients.xrdtape import (
    PrepareStatus,
    prepare_cancel,
    prepare_evict,
    prepare_stage,
    query_prepare,
)

CALL_SECONDS = 30.0  # bound of each XRootD call
# archiveinfo has no request: `query prepare` answers exists/on_tape/online for any id, and
# the lake's prepare program treats an unknown id as pending (LOCAL-LAKE.md).
LOCALITY_ID = "lakeprobe-archiveinfo"


class XrootdPrepareBackend:
    """TapeBackend over `root_url` (root://host:port of a site with TapeEmulation)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + CALL_SECONDS

    async def stage(self, paths: Sequence[str]) -> str:
        with _unreachable_site():
            return await prepare_stage(self.root_url, paths, self._deadline())

    async def query(self, request_id: str | None, paths: Sequence[str]) -> dict[str, BackendFile]:
        with _unreachable_site():
            answer = await query_prepare(
                self.root_url, request_id or LOCALITY_ID, paths, self._deadline()
            )
        return {path: _file(answer[path]) for path in paths}

    async def evict(self, paths: Sequence[str]) -> None:
        with _unreachable_site():
            await prepare_evict(self.root_url, paths, self._deadline())

    async def cancel(self, request_id: str, paths: Sequence[str]) -> None:
        with _unreachable_site():
            await prepare_cancel(self.root_url, request_id, paths, self._deadline())


@contextlib.contextmanager
def _unreachable_site() -> Iterator[None]:
    """The XRootD site's errors as the double's BackendError (a 500 problem to the client)."""
    try:
        yield
    except XrdError as error:
        raise BackendError(str(error)) from None


def _file(status: PrepareStatus) -> BackendFile:
    return BackendFile(status.exists, status.on_tape, status.online, status.error or None)
