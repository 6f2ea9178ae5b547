"""sweep_when_due: a sweep at most once per period per destination, and a sweep that did not
pass (failed or raised) due again at the next run."""

from __future__ import annotations

import pytest
from state_helpers import CadenceClock

from lakeprobe.probes.common import cadence
from lakeprobe.probes.common.sweep import SWEPT, sweep_when_due
from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.state import StateStore


class Sweeps:
    """Counts the sweeps run; each answers `outcome`, or raises `error`."""

    def __init__(self, outcome: StepOutcome, error: Exception | None = None) -> None:
        self.outcome, self.error, self.count = outcome, error, 0

    async def __call__(self) -> StepOutcome:
        self.count += 1
        if self.error is not None:
            raise self.error
        return self.outcome


async def test_once_per_period() -> None:
    state, sweep = StateStore.memory(), Sweeps(passed("0 stale test files deleted"))
    first = await sweep_when_due(state, "root://h//d", 900, sweep, "test directory")
    second = await sweep_when_due(state, "root://h//d", 900, sweep, "test directory")
    other = await sweep_when_due(state, "root://h//e", 900, sweep, "test directory")
    assert (first.status, other.status, sweep.count) == (Status.OK, Status.OK, 2)
    assert (second.status, second.reason) == (Status.SKIPPED, Reason.NONE)
    assert second.detail.startswith("test directory swept 0 s ago (at most every 900 s)")


@pytest.mark.parametrize(
    ("outcome", "error"),
    [(failed(Reason.CLEANUP, "1 of 1 stale test files not deleted"), None),
     (passed(), OSError("listing failed"))],
)  # fmt: skip
async def test_not_passed_stays_due(outcome: StepOutcome, error: Exception | None) -> None:
    state, broken = StateStore.memory(), Sweeps(outcome, error)
    for _ in range(2):
        if error is None:
            assert (await sweep_when_due(state, "k", 900, broken, "x")).reason is Reason.CLEANUP
        else:
            with pytest.raises(OSError, match="listing failed"):
                await sweep_when_due(state, "k", 900, broken, "x")
    assert broken.count == 2
    fixed = Sweeps(passed())
    for _ in range(2):
        await sweep_when_due(state, "k", 900, fixed, "x")
    assert fixed.count == 1


async def test_repeats_spread_by_name(cadence_clock: CadenceClock) -> None:
    """Destinations first swept in the same minute (a daemon's start) sweep again 1 to 1.5
    periods later, each by its own share from its name: they drift apart instead of all
    sweeping together once a period."""
    clock, state = cadence_clock, StateStore.memory()
    keys = [f"root://h//d{n}" for n in range(200)]
    sweep = Sweeps(passed())
    for key in keys:
        await sweep_when_due(state, key, 900, sweep, "test directory")
    assert sweep.count == 200  # the first sweep: at once
    next_due = sorted(900 * (1 + cadence.SPREAD * cadence.share(SWEPT, k)) for k in keys)
    assert next_due[-1] - next_due[0] > 0.8 * 450  # spread over most of half a period
    key = keys[0]
    own = 900 * (1 + cadence.SPREAD * cadence.share(SWEPT, key))
    clock.now += own - 1
    assert (await sweep_when_due(state, key, 900, sweep, "x")).status is Status.SKIPPED
    clock.now += 2
    assert (await sweep_when_due(state, key, 900, sweep, "x")).status is Status.OK
    assert sweep.count == 201
