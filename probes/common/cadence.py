"""Work a probe does at most once per period per key, not every run: sweeping a directory
whose leftovers only go stale after hours, or asking a server a question whose answer is a
property of its software (DELETE of a missing file gives 404).

When each key was last done is a record in the state store (scope and key chosen by the
caller), so a restart does not redo every key at once. Only a pass is remembered: work that
failed or raised is due again at the next run, so a fault stays visible every run instead of
showing once per period.

Keys are spread over time, as the scheduler spreads runs over their interval: a daemon
starting with 10,000 targets would otherwise do every key's work in its first minute, and
again all together one period later, every period (a minute that costs ~15 % more CPU at
10,000 targets: benchmarks/RESULTS.md). Each key has a stable share of the period (from its
name): its period is `every` to 1.5 x `every`, so keys done together drift apart; and with
`first_at_phase` a key never done starts at its share of the first period instead of at
once (for work whose answer can wait; a sweep of what was left before the start cannot). A
run with a store of its own (no state given: nothing is remembered for a next run) does the
work at once.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome
from lakeprobe.probes.core.state import StateStore

SPREAD = 0.5  # a key's period: `every` x (1 + SPREAD x its share)
_FIRST = "first_due"  # record of a key never done: {_FIRST: unix time it is first due}
_DUE_NOW = 0.0  # record of a key whose work did not pass: done at the epoch, so due


@dataclass(frozen=True, slots=True)
class NotDue:
    """Why a key's work is skipped this run: last done `since` seconds ago, or never done
    (`since` None) and first due in `first_in` seconds."""

    since: float | None
    first_in: float = 0.0


def share(scope: str, key: str) -> float:
    """A stable fraction in [0, 1) for the key, from its name."""
    return zlib.crc32(f"{scope}\0{key}".encode()) / 2**32


def not_due(
    state: StateStore, scope: str, key: str, every: float, *, first_at_phase: bool = False
) -> NotDue | None:
    """None when `key` is due (and marks it done now, so concurrent runs do not both do
    it); else why not. `every` 0: always due."""
    record, now = state.get(scope, key), time.time()
    if every > 0:
        fraction = share(scope, key)
        if isinstance(record, int | float) and 0 <= now - record < every * (1 + SPREAD * fraction):
            return NotDue(since=now - record)
        if record is None and first_at_phase and not state.one_run:
            record = {_FIRST: now + every * fraction}
            state.put(scope, key, record)
        first = record.get(_FIRST) if isinstance(record, dict) else None
        if isinstance(first, int | float) and now < first:
            return NotDue(since=None, first_in=first - now)
    state.put(scope, key, now)
    return None


async def when_due(
    state: StateStore,
    scope: str,
    key: str,
    every: float,
    work: Callable[[], Awaitable[StepOutcome]],
    skipped: Callable[[NotDue], str],
    *,
    first_at_phase: bool = False,
) -> StepOutcome:
    """`work()` when `key` is due, else SKIPPED with `skipped(why)` as the detail. A result
    that is not ok, or an exception, leaves `key` due at the next run."""
    why = not_due(state, scope, key, every, first_at_phase=first_at_phase)
    if why is not None:
        return StepOutcome(Status.SKIPPED, Reason.NONE, skipped(why))
    try:
        outcome = await work()
    except BaseException:
        state.put(scope, key, _DUE_NOW)
        raise
    if not outcome.ok:
        state.put(scope, key, _DUE_NOW)
    return outcome
