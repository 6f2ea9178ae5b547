"""Once more, only after XRootD itself crashed: XRootD 5.5.3 occasionally segfaults (in libssl
or libcrypto, seen in the kernel log) under many concurrent HTTPS or HTTP-TPC requests. A
test that drives a lake that hard runs through this helper; a failure with every site alive
is never retried."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from lakeprobe.lake import LocalLake

LOG = logging.getLogger("test.crash_retry")


async def once_more_if_xrootd_crashed(
    lake: LocalLake,
    attempt: Callable[[int], Awaitable[None]],
    after_restart: Callable[[], None] = lambda: None,
) -> None:
    """attempt(1); when it fails while a site's server has crashed, every site is started
    again, `after_restart` runs (e.g. to clear leftovers), then attempt(2)."""
    for number in (1, 2):
        try:
            await attempt(number)
            return
        except AssertionError:
            crashed = [site for site in lake.sites if site.crashed]
            if number == 2 or not crashed:
                raise
            LOG.warning("xrootd crashed on %s; restarting every site and retrying once", crashed)
            for site in lake.sites:
                site.start()
            after_restart()
