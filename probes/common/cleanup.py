"""The delete after a write, one rule for the storage probes.

The delete runs whenever the write was attempted (a write cut off by a timeout may leave a
partial file). It passes when the file is deleted, or when the write failed and the delete
finds nothing: not found, or refused after a refused write (nothing of ours can be there).
Any other failure may leave our file behind: CRITICAL `cleanup`, with the cause in the detail
(also for a dead endpoint, so a leftover file always alerts as `cleanup`).

A delete the server calls a success is verified (HEAD or stat): a file still there, also
after SETTLE_SECONDS, is CRITICAL `delete_ineffective`. CRITICAL, not WARNING: the endpoint
acknowledged a delete it did not do, so every deletion on it (Rucio's, a user's) may silently
leave dark data and used quota, and each run leaves one more test file. The sweep retries the
file once it is older than `sweep_after_seconds` (probes/common/sweep.py), verifying that too.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.testfiles import is_own_file

ATTEMPTED = failed(Reason.TIMEOUT, "unfinished")  # a write's outcome until it has one

# Deletes `path`: None when deleted, else the failure (its Reason by the server's answer).
Delete = Callable[[str], Awaitable[StepOutcome | None]]
# Whether `path` is still there: True or False; None when the check itself failed.
Exists = Callable[[str], Awaitable[bool | None]]
# A server that unlinks asynchronously (an object store behind a gateway) gets this long.
SETTLE_SECONDS = 1.0


def delete_verdict(write: StepOutcome, failure: StepOutcome | None) -> StepOutcome:
    """The delete step's outcome from the write's outcome and the delete's failure."""
    if failure is None:
        return passed()
    refused_twice = write.reason is Reason.AUTH and failure.reason is Reason.AUTH
    if not write.ok and (failure.reason is Reason.NOT_FOUND or refused_twice):
        return passed(f"nothing to delete after the failed write ({failure.detail})")
    return failed(Reason.CLEANUP, f"{failure.reason}: {failure.detail}")


async def delete_after_write(
    path: str, test_dir: str, write: StepOutcome | None, delete: Delete, *,
    exists: Exists, sweep_after: float,
) -> StepOutcome:  # fmt: skip
    """The delete step: skipped when no write was attempted (`write` None), refused for a
    path that is not our own test file, else `delete(path)` judged by delete_verdict and,
    when the server called it done, verified by `exists` (verify_deleted)."""
    if write is None:
        return StepOutcome(Status.SKIPPED, Reason.NONE, "nothing was written")
    if not is_own_file(path, test_dir):
        return failed(Reason.INTERNAL, f"refusing to delete {path}: not our own file")
    failure = await delete(path)
    if failure is not None:
        return delete_verdict(write, failure)
    return await verify_deleted(path, exists, sweep_after)


async def verify_deleted(path: str, exists: Exists, sweep_after: float) -> StepOutcome:
    """After a delete the server called done: passed when `path` is gone (or the check could
    not tell), CRITICAL `delete_ineffective` when it is still there after SETTLE_SECONDS."""
    present = await exists(path)
    if present:
        await asyncio.sleep(SETTLE_SECONDS)
        present = await exists(path)
    if present is None:
        return passed("deleted; not verified (the check after it failed)")
    if not present:
        return passed("deleted, verified gone")
    name = posixpath.basename(path)
    detail = (
        f"the delete answered success but {name} is still there {SETTLE_SECONDS:g} s later; "
        f"the sweep retries it after {sweep_after:g} s"
    )
    return failed(Reason.DELETE_INEFFECTIVE, detail)
