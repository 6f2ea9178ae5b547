"""The delete after a write, one rule for the storage probes.

The delete runs whenever the write was attempted (a write cut off by a timeout may leave a
partial file). It passes when the file is deleted, or when the write failed and the delete
finds nothing: not found, or refused after a refused write (nothing of ours can be there).
Any other failure may leave our file behind: CRITICAL `cleanup`, with the cause in the detail
(also for a dead endpoint, so a leftover file always alerts as `cleanup`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.testfiles import is_own_file

ATTEMPTED = failed(Reason.TIMEOUT, "unfinished")  # a write's outcome until it has one

# Deletes `path`: None when deleted, else the failure (its Reason by the server's answer).
Delete = Callable[[str], Awaitable[StepOutcome | None]]


def delete_verdict(write: StepOutcome, failure: StepOutcome | None) -> StepOutcome:
    """The delete step's outcome from the write's outcome and the delete's failure."""
    if failure is None:
        return passed()
    refused_twice = write.reason is Reason.AUTH and failure.reason is Reason.AUTH
    if not write.ok and (failure.reason is Reason.NOT_FOUND or refused_twice):
        return passed(f"nothing to delete after the failed write ({failure.detail})")
    return failed(Reason.CLEANUP, f"{failure.reason}: {failure.detail}")


async def delete_after_write(
    path: str, test_dir: str, write: StepOutcome | None, delete: Delete
) -> StepOutcome:
    """The delete step: skipped when no write was attempted (`write` None), refused for a
    path that is not our own test file, else `delete(path)` judged by delete_verdict."""
    if write is None:
        return StepOutcome(Status.SKIPPED, Reason.NONE, "nothing was written")
    if not is_own_file(path, test_dir):
        return failed(Reason.INTERNAL, f"refusing to delete {path}: not our own file")
    return delete_verdict(write, await delete(path))
