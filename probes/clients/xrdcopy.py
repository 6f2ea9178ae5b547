"""XRootD third-party copy with the XRootD client's CopyProcess (`xrdcp --tpc only`).

The copy is driven by the destination: the client opens the source (registering a rendezvous
key), opens the destination with the TPC CGI, and the destination's `xrdcp --server` pulls
the data. Measured against xrootd 5.5.3 on loopback (tests/test_probe_xrootd_tpc.py):

- Every copy takes >= 2.5 s: XrdCl waits 2.5 s between its checks of a running copy
  (`XrdSysTimer::Wait(2500)` in ThirdPartyCopyJob::RunTPC), even for a copy that finished
  at once. Progress (the destination file's size) is reported at each check, so the first
  marker comes at ~2.5 s, and `should_cancel()` is polled every 2.5 s.
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
from lakeprobe.probes.clients.xrdasync import XrdStatus, client_module, reason_for, with_authz
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.threads import BlockingThreads

# Reasons that name the cause whichever side it is on; the rest are told apart by side.
_KEPT = {Reason.CONNECT, Reason.DNS, Reason.TLS, Reason.TIMEOUT, Reason.NO_SPACE}


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


async def xrootd_copy(
    source: CopyEnd,
    destination: CopyEnd,
    *,
    threads: BlockingThreads,
    deadline: float,
    stall_seconds: float,
) -> CopyStats:
    """Copy source -> destination by XRootD TPC (pull) on one of `threads` before `deadline`
    (event-loop time). Raises CopyError with the reason and a redacted detail."""
    source_url = with_authz(source.target.url_for(source.path), source.token)
    destination_url = with_authz(destination.target.url_for(destination.path), destination.token)
    watch = CopyWatch(deadline)
    watch.transfer_type = "3rd pull"  # XRootD TPC: the destination pulls
    status, size = await run_copy(
        threads, lambda: _copy(source_url, destination_url, watch), watch, stall_seconds
    )
    if not status.ok:
        raise CopyError(copy_reason(status, source, destination), f"copy: {status.message}")
    return watch.stats(size)
