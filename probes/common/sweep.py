"""Sweeping leftover test files: which names, how many per run, how often per destination.

A sweep lists one test directory and deletes lakeprobe test files (names fully matching
the test-file pattern, guarded by is_own_file) of this identity older than
`sweep_after_seconds` and of other identities (earlier host names, restarted pods) older
than `sweep_foreign_after_seconds`; at most MAX_SWEEP per run. Each delete is verified
(HEAD or stat): a file a `delete_ineffective` delete left behind is retried here, and still
there after a successful answer it fails the sweep with `cleanup`. The transfer probes sweep
their destination, and the xrootd probe its test directory, at most once per
`sweep_after_seconds / 4` (sweep_when_due): a leftover is only stale after
`sweep_after_seconds`, so listing the directory every run would only load the namespace. The
first sweep is at a destination's first run (what was left before the start goes at once);
later ones come 1 to 1.5 periods apart, by the destination's name (probes/common/cadence.py),
so destinations first swept together drift apart. A sweep that did not pass is due again at
the next run. (The webdav probe sweeps every run: it
lists the directory anyway, in its propfind step.)
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lakeprobe.probes.common.cadence import when_due
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed, passed
from lakeprobe.probes.core.params import SweepParams
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.testfiles import is_foreign, is_own_file, stale_test_files
from lakeprobe.probes.credentials.secrets import Secret

if TYPE_CHECKING:  # each protocol's client loads with the sweep over it
    from lakeprobe.probes.clients.httpclient import HttpClient
    from lakeprobe.probes.clients.xrdasync import XrdFileSystem

MAX_SWEEP = 50  # stale files deleted per run at most: bounds the time a sweep takes

SWEPT = "sweep-last"  # state scope: destination (endpoint URL + test dir) -> unix time


async def sweep_when_due(
    state: StateStore,
    key: str,
    every: float,
    sweep: Callable[[], Awaitable[StepOutcome]],
    what: str,
) -> StepOutcome:
    """`sweep()` when `key` is due, else SKIPPED saying when `what` was last swept
    (probes/common/cadence.py). A sweep that fails or raises leaves `key` due: the next run
    sweeps, and reports, again, so a cleanup fault stays visible instead of showing once per
    `every`."""
    return await when_due(
        state, SWEPT, key, every, sweep,
        lambda why: f"{what} swept {why.since or 0:.0f} s ago (at most every {every:g} s)",
    )  # fmt: skip


def stale_names(names: list[str], probe_host: str, params: SweepParams) -> list[str]:
    """The names a sweep deletes, at most MAX_SWEEP, oldest first."""
    return stale_test_files(
        names,
        probe_host,
        own_after=params.sweep_after_seconds,
        foreign_after=params.sweep_foreign_after_seconds,
        now=time.time(),
    )[:MAX_SWEEP]


async def list_http_files(
    http: HttpClient, directory: str, token: Secret | None = None
) -> list[str]:
    """The names of the files directly in `directory` (PROPFIND Depth 1), parsed as the
    listing arrives. `token` replaces the client's own for this request."""
    # httpclient and httpparse import here and below: they load libcurl and expat, which an
    # xrootd run never needs.
    from lakeprobe.probes.clients.httpclient import ANY_STATUS, RequestFailed, status_failure
    from lakeprobe.probes.clients.httpparse import (
        MAX_LISTING_BYTES,
        MultistatusError,
        MultistatusParser,
        file_names,
    )

    listing, head = MultistatusParser(), bytearray()

    def sink(chunk: bytes) -> None:
        head.extend(chunk[: max(0, 200 - len(head))])  # the detail of a refusal
        listing.feed(chunk)

    reply = await http.request(
        "PROPFIND",
        directory.rstrip("/") + "/",
        expect=ANY_STATUS,
        headers={"Depth": "1"},
        max_body=MAX_LISTING_BYTES,
        sink=sink,
        token=token,
    )
    if reply.status != 207:
        raise RequestFailed(status_failure(dataclasses.replace(reply, body=bytes(head))))
    try:
        return file_names(listing.close())
    except MultistatusError as error:
        raise RequestFailed(failed(Reason.PROTOCOL_ERROR, f"PROPFIND: {error}")) from None


async def http_exists(http: HttpClient, path: str) -> bool | None:
    """HEAD `path`: 404 gone; 200 there, unless a name never created answers 200 as well
    (a server whose HEAD cannot tell); anything else (or no answer) None: cannot tell."""
    found = await _head(http, path)
    if found and await _head(http, f"{path}.absent-{os.urandom(16).hex()}"):
        return None
    return found


async def _head(http: HttpClient, path: str) -> bool | None:
    from lakeprobe.probes.clients.httpclient import ANY_STATUS, RequestFailed

    try:
        reply = await http.request("HEAD", path, expect=ANY_STATUS)
    except RequestFailed:
        return None
    return {200: True, 404: False}.get(reply.status)


async def xrootd_exists(fs: XrdFileSystem, path: str, deadline: float) -> bool | None:
    """stat `path`: True there, False not found, None when the stat failed otherwise."""
    from lakeprobe.probes.clients.xrdasync import XrdError

    try:
        await fs.stat(path, deadline)
    except XrdError as error:
        return False if error.reason is Reason.NOT_FOUND else None
    return True


async def sweep_http(
    http: HttpClient,
    test_dir: str,
    probe_host: str,
    params: SweepParams,
    listing: list[str] | None = None,
) -> StepOutcome:
    """Sweep over HTTP; `listing` reuses a PROPFIND of the run. Raises RequestFailed when
    the directory cannot be listed."""
    from lakeprobe.probes.clients.httpclient import RequestFailed

    names = listing if listing is not None else await list_http_files(http, test_dir)

    async def delete(path: str) -> str | None:
        try:
            reply = await http.request("DELETE", path, expect={200, 204, 404})
        except RequestFailed as failure:
            return failure.outcome.detail
        if reply.status != 404 and await http_exists(http, path):
            return f"DELETE {reply.status} but {posixpath.basename(path)} is still there"
        return None

    return await _sweep(test_dir, stale_names(names, probe_host, params), probe_host, delete)


async def sweep_xrootd(
    fs: XrdFileSystem, test_dir: str, probe_host: str, params: SweepParams, deadline: float
) -> StepOutcome:
    """Sweep over root://. Raises XrdError when the directory cannot be listed."""
    from lakeprobe.probes.clients.xrdasync import XrdError

    names = await fs.dirlist(test_dir, deadline)

    async def delete(path: str) -> str | None:
        try:
            await fs.rm(path, deadline)
        except XrdError as error:
            return None if error.reason is Reason.NOT_FOUND else str(error)  # gone: fine
        if await xrootd_exists(fs, path, deadline):
            return f"rm: done but {posixpath.basename(path)} is still there"
        return None

    return await _sweep(test_dir, stale_names(names, probe_host, params), probe_host, delete)


async def _sweep(
    test_dir: str,
    stale: list[str],
    probe_host: str,
    delete: Callable[[str], Awaitable[str | None]],
) -> StepOutcome:
    errors = []
    for name in stale:
        path = posixpath.join(test_dir, name)
        if not is_own_file(path, test_dir):
            continue
        error = await delete(path)
        if error is not None:
            errors.append(error)
    if errors:  # a delete that answered success yet left the file counts here too
        detail = f"{len(errors)} of {len(stale)} stale test files not deleted: {errors[0]}"
        return failed(Reason.CLEANUP, detail)
    foreign = sum(is_foreign(name, probe_host) for name in stale)
    of_others = f" ({foreign} of other probe hosts)" if foreign else ""
    return passed(f"{len(stale)} stale test files deleted{of_others}")
