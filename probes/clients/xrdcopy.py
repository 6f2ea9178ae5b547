"""XRootD third-party copy with the XRootD client's CopyProcess (`xrdcp --tpc only`).

The copy is driven by the destination: the client opens the source (registering a rendezvous
key), opens the destination with the TPC CGI, and the destination's `xrdcp --server` pulls
the data. Measured against xrootd 5.5.3 on loopback (tests/test_probe_xrootd_tpc.py):

- Every copy takes >= 2.5 s: XrdCl waits 2.5 s between its checks of a running copy
  (`XrdSysTimer::Wait(2500)` in ThirdPartyCopyJob::RunTPC, hard-coded, no option or
  environment variable changes it), even for a copy that finished at once, and returns only
  at the first check after the destination answered the copy's `sync`: a copy ends at a
  multiple of 2.5 s, in xrdcp as here. Progress (the destination file's size) is reported at
  each check, so the first marker comes at ~2.5 s, and `should_cancel()` is polled every 2.5 s.
- So the transfer is not timed to XrdCl's return: `watch_landing` stats the destination
  file from the event loop, spaced 2.5 % of the copy's age (10 ms to 2.5 s), and the transfer
  ends at the first stat that finds every byte there (never early; late by <= ~2.5 % plus a
  round trip; ~40 stats per tenfold of duration, 1-3 for a 1 MiB copy). Without a stat that
  finds it complete, it ends when XrdCl returns. docs/xrootd-client.md has the measurements.
- Before the transfer (open source, open destination, rendezvous) nothing is polled: a hung
  endpoint holds the thread until `inittimeout`; the data transfer until `tpctimeout`. Both
  are set to the time left before the deadline, so the thread is free about a second
  (XrdCl's timeout resolution) after the probe gives up. Exception: a destination that hangs
  after the transfer started. XrdCl's 2.5 s check stats it, then sends the cancel, then
  closes it, each with XrdCl's default request timeout (RequestTimeout, 60 s): measured,
  such a copy holds its thread for 183 s, whatever the probe's deadline.
- Errors come back as status values; which side failed is only partly marked (" (destination)"
  after some messages); the paths in the message tell the rest.

Tokens: each URL carries its own `?authz=`. With key rendezvous TPC (no delegation), the
source token authorizes the client's own rendezvous open at the source and the destination
helper presents only the key; XrdCl 5.5.3 forwards source CGI to the destination (as
`tpc.scgi`) only when delegating, which lakeprobe never does, so the source token is not
sent to the destination.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from lakeprobe.probes.clients.copyjob import (
    CopyEnd,
    CopyError,
    CopyStats,
    CopyWatch,
    run_copy,
    side_of,
)
from lakeprobe.probes.clients.xrdasync import (
    XrdError,
    XrdFileSystem,
    XrdStatus,
    client_module,
    reason_for,
    with_authz,
)
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.threads import BlockingThreads

# Reasons that name the cause whichever side it is on; the rest are told apart by side.
_KEPT = {Reason.CONNECT, Reason.DNS, Reason.TLS, Reason.TIMEOUT, Reason.NO_SPACE}

# The landing watch stats the destination every LANDING_POLL_FRACTION of the time the copy
# has run, at least LANDING_POLL_MIN_SECONDS and at most XrdCl's own 2.5 s apart: the end is
# known to within ~2.5 % (plus one stat's round trip) at about 40 stats per tenfold of time.
LANDING_POLL_FRACTION = 0.025
LANDING_POLL_MIN_SECONDS = 0.01
LANDING_POLL_MAX_SECONDS = 2.5


@functools.cache
def _handler_class() -> type:
    """A CopyProgressHandler subclass, made on first use (XRootD is imported lazily)."""
    from XRootD.client.utils import CopyProgressHandler

    class WatchingHandler(CopyProgressHandler):
        """Called on the copy thread: must never raise."""

        def __init__(self, watch: CopyWatch) -> None:
            self.watch = watch

        def begin(self, job_id: int, total: int, source: Any, target: Any) -> None:
            pass

        def update(self, job_id: int, processed: int, total: int) -> None:
            self.watch.progress(int(processed))

        def end(self, job_id: int, results: Any) -> None:
            pass

        def should_cancel(self, job_id: int) -> bool:
            return self.watch.cancelled

    return WatchingHandler


def _copy(source_url: str, destination_url: str, watch: CopyWatch) -> tuple[XrdStatus, int]:
    """On a copy thread: one CopyProcess job, TPC only. Returns (status, bytes copied)."""
    client = client_module()
    timeout = watch.timeout_seconds()
    process = client.CopyProcess()
    # Keyword arguments only: the 5.5.3 wrapper passes retry/xrate positionally in the wrong
    # order, harmless while they keep their defaults.
    process.add_job(source_url, destination_url, thirdparty="only", force=False,
                    inittimeout=timeout, tpctimeout=timeout)  # fmt: skip
    prepared = XrdStatus.of(process.prepare())
    if not prepared.ok:
        return prepared, 0
    status, results = process.run(_handler_class()(watch))
    job = results[0] if results else {}
    final = XrdStatus.of(job.get("status", status))
    return final, int(job.get("size", 0)) if final.ok else watch.transferred


def copy_reason(status: XrdStatus, source: CopyEnd, destination: CopyEnd) -> Reason:
    """Network failures and a full disk keep their reason; otherwise the side named in the
    message decides."""
    reason = reason_for(status)
    if reason in _KEPT:
        return reason
    side = side_of(status.message, source, destination)
    if side == "source":
        return Reason.SOURCE_MISSING
    if side == "destination":
        return Reason.DESTINATION_ERROR
    return Reason.TPC_FAILURE


def _landing_interval(running: float | None) -> float:
    if running is None:  # still queued for a copy thread
        return LANDING_POLL_MIN_SECONDS
    interval = running * LANDING_POLL_FRACTION
    return min(LANDING_POLL_MAX_SECONDS, max(LANDING_POLL_MIN_SECONDS, interval))


async def watch_landing(destination: CopyEnd, size: int, watch: CopyWatch, deadline: float) -> None:
    """Stat the destination until it holds `size` bytes, then mark the transfer's end
    (watch.data_landed). Cancelled when the copy returns; a failed stat is tried again."""
    fs = XrdFileSystem(destination.target.url, destination.token)
    while True:
        await asyncio.sleep(_landing_interval(watch.running_for()))
        if watch.running_for() is None:
            continue
        try:
            info = await fs.stat(destination.path, deadline)
        except XrdError:  # not created yet, or a hiccup: the engine's own end still counts
            continue
        if info.size >= size:
            watch.data_landed()
            return


async def _stop(landing: asyncio.Task[None]) -> None:
    """Cancel the landing watch and wait for it (without swallowing our own cancellation);
    a bug in it escapes like any other."""
    landing.cancel()
    await asyncio.wait({landing})
    if not landing.cancelled() and (error := landing.exception()) is not None:
        raise error


async def xrootd_copy(
    source: CopyEnd,
    destination: CopyEnd,
    *,
    threads: BlockingThreads,
    deadline: float,
    stall_seconds: float,
    size: int | None = None,
) -> CopyStats:
    """Copy source -> destination by XRootD TPC (pull) on one of `threads` before `deadline`
    (event-loop time). With the source's `size`, the transfer is timed to the moment the
    destination is seen holding every byte (watch_landing), not to XrdCl's next 2.5 s check.
    Raises CopyError with the reason and a redacted detail."""
    source_url = with_authz(source.target.url_for(source.path), source.token)
    destination_url = with_authz(destination.target.url_for(destination.path), destination.token)
    watch = CopyWatch(deadline)
    watch.transfer_type = "3rd pull"  # XRootD TPC: the destination pulls
    landing = None
    if size is not None:
        landing = asyncio.create_task(watch_landing(destination, size, watch, deadline))
    try:
        status, copied = await run_copy(
            threads, lambda: _copy(source_url, destination_url, watch), watch, stall_seconds
        )
    finally:
        if landing is not None:
            await _stop(landing)
    if not status.ok:
        raise CopyError(copy_reason(status, source, destination), f"copy: {status.message}")
    return watch.stats(copied)
