"""Work a probe does at most once per period per key, not every run: sweeping a directory
whose leftovers only go stale after hours, or asking a server a question whose answer is a
property of its software (DELETE of a missing file gives 404).

When each key was last done is a record in the state store (scope and key chosen by the
caller), so a restart does not redo every key at once. Only a pass is remembered: work that
failed or raised is due again at the next run, so a fault stays visible every run instead of
showing once per period.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome
from lakeprobe.probes.core.state import StateStore


def seconds_since_done(state: StateStore, scope: str, key: str, every: float) -> float | None:
    """None when `key` is due (and marks it done now, so concurrent runs do not both do
    it); else the seconds since it was last done. `every` 0: always due."""
    last, now = state.get(scope, key), time.time()
    if isinstance(last, int | float) and 0 <= now - last < every:
        return now - last
    state.put(scope, key, now)
    return None


async def when_due(
    state: StateStore,
    scope: str,
    key: str,
    every: float,
    work: Callable[[], Awaitable[StepOutcome]],
    not_due: Callable[[float], str],
) -> StepOutcome:
    """`work()` when `key` is due, else SKIPPED with `not_due(seconds since last done)` as
    the detail. A result that is not ok, or an exception, leaves `key` due."""
    since = seconds_since_done(state, scope, key, every)
    if since is not None:
        return StepOutcome(Status.SKIPPED, Reason.NONE, not_due(since))
    try:
        outcome = await work()
    except BaseException:
        state.delete(scope, key)
        raise
    if not outcome.ok:
        state.delete(scope, key)
    return outcome
