"""The open-files limit: raised to the hard limit at start, as long-running servers do."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("lakeprobe.http")


def raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit, as Go programs do at start: the soft default
    (often 1024) protects select()-based programs, and asyncio uses epoll."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        log.info("open files limit: %d", soft)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as error:
        log.warning("open files limit stays %d: cannot raise it to %d: %s", soft, hard, error)
        return
    log.info("open files limit: raised from %d to %d", soft, hard)


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
