"""StepRecorder: ordering, skipping, cleanup, slow steps, deadlines and the rollup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.steps import StepRecorder


def recorder(timeout: float = 5.0, slow_after: float = 10.0, reserve: float = 0.5) -> StepRecorder:
    deadline = asyncio.get_running_loop().time() + timeout
    return StepRecorder(deadline, slow_after, reserve)


async def ok() -> StepOutcome:
    return passed()


async def broken() -> StepOutcome:
    return failed(Reason.CONNECT, "refused")


async def hang() -> StepOutcome:
    await asyncio.sleep(60)
    return passed()


async def test_all_ok_rolls_up_ok() -> None:
    """Every step OK gives OK with reason none."""
    steps = recorder()
    for name in ("a", "b"):
        await steps.run(name, ok)
    result = steps.result()
    assert (result.status, result.reason) == (Status.OK, Reason.NONE)
    assert [s.name for s in result.steps] == ["a", "b"]


async def test_failure_skips_later_steps_but_not_cleanup() -> None:
    """After a critical failure later steps are SKIPPED; cleanup still runs; the first
    failure names the reason."""
    steps = recorder()
    await steps.run("connect", broken)
    skipped = await steps.run("write", ok)
    cleaned = await steps.run("delete", ok, cleanup=True)
    result = steps.result()
    assert skipped.status is Status.SKIPPED
    assert cleaned.status is Status.OK
    assert [s.status for s in result.steps] == [Status.CRITICAL, Status.SKIPPED, Status.OK]
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert "connect" in result.steps[1].detail


async def test_non_critical_failure_warns_and_continues() -> None:
    """A non-critical failure gives WARNING and does not block later steps."""
    steps = recorder()
    await steps.run("sweep", broken, critical=False)
    after = await steps.run("next", ok)
    result = steps.result()
    assert after.status is Status.OK
    assert (result.status, result.reason) == (Status.WARNING, Reason.CONNECT)


async def test_slow_step_warns() -> None:
    """A step slower than the threshold passes with WARNING, reason slow."""
    steps = recorder(slow_after=0.0)
    await steps.run("a", ok)
    result = steps.result()
    assert (result.status, result.reason) == (Status.WARNING, Reason.SLOW)
    assert "warning above" in result.steps[0].detail


async def test_step_timeout_leaves_time_for_cleanup() -> None:
    """A hung step is cut at the deadline minus the cleanup reserve; cleanup still runs."""
    steps = recorder(timeout=0.3, reserve=0.2)
    started = asyncio.get_running_loop().time()
    outcome = await steps.run("read", hang)
    cleaned = await steps.run("delete", ok, cleanup=True)
    elapsed = asyncio.get_running_loop().time() - started
    assert (outcome.status, outcome.reason) == (Status.CRITICAL, Reason.TIMEOUT)
    assert cleaned.status is Status.OK
    assert elapsed < 0.3
    assert steps.result().reason is Reason.TIMEOUT


async def test_abort_names_the_step_in_flight() -> None:
    """When the run is cancelled from outside, abort() records the step that was cut off."""
    steps = recorder(timeout=30)
    task = asyncio.create_task(steps.run("stat", hang))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    steps.abort(Status.CRITICAL, Reason.TIMEOUT, "run exceeded its deadline")
    result = steps.result()
    assert [(s.name, s.reason) for s in result.steps] == [("stat", Reason.TIMEOUT)]
    assert result.status is Status.CRITICAL


async def test_no_steps_is_unknown() -> None:
    """A probe that recorded nothing cannot claim OK."""
    assert recorder().result().status is Status.UNKNOWN


def outcome_of(status: Status, reason: Reason) -> Callable[[], Awaitable[StepOutcome]]:
    async def action() -> StepOutcome:
        return StepOutcome(status, reason, f"{status.label} {reason}")

    return action


WARN_NO_CHECKSUM = (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE)
CRIT_NO_CHECKSUM = (Status.CRITICAL, Reason.CHECKSUM_UNAVAILABLE)


@pytest.mark.parametrize(
    ("findings", "expected"),
    [
        # A capability warning first does not hide the fault found after it.
        ([WARN_NO_CHECKSUM, (Status.CRITICAL, Reason.CONTENT_MISMATCH)],
         (Status.CRITICAL, Reason.CONTENT_MISMATCH)),
        # Only warnings: a fault-warning (slow, a failed non-critical step) names the run.
        ([WARN_NO_CHECKSUM, (Status.WARNING, Reason.SLOW)], (Status.WARNING, Reason.SLOW)),
        ([WARN_NO_CHECKSUM, (Status.WARNING, Reason.CLEANUP)], (Status.WARNING, Reason.CLEANUP)),
        # Only a capability finding: it is the reason.
        ([WARN_NO_CHECKSUM, (Status.OK, Reason.NONE)], WARN_NO_CHECKSUM),
        # `checksums: required` makes it CRITICAL: the worst status, still after faults of it.
        ([CRIT_NO_CHECKSUM, (Status.WARNING, Reason.SLOW)], CRIT_NO_CHECKSUM),
        ([CRIT_NO_CHECKSUM, (Status.CRITICAL, Reason.SIZE_MISMATCH)],
         (Status.CRITICAL, Reason.SIZE_MISMATCH)),
        # Among faults of one status the first (the root cause) still names the run.
        ([(Status.CRITICAL, Reason.SERVER_ERROR), (Status.CRITICAL, Reason.CLEANUP)],
         (Status.CRITICAL, Reason.SERVER_ERROR)),
        ([(Status.WARNING, Reason.SLOW), (Status.WARNING, Reason.CLEANUP)],
         (Status.WARNING, Reason.SLOW)),
    ],
)  # fmt: skip
async def test_reason_is_the_most_severe_fault(
    findings: list[tuple[Status, Reason]], expected: tuple[Status, Reason]
) -> None:
    """The run's reason is the first fault of the worst status; a capability finding
    (CAPABILITY_REASONS) names it only when no fault of that status exists. Every finding
    stays in the step list."""
    steps = recorder()
    for index, (status, reason) in enumerate(findings):
        await steps.run(f"s{index}", outcome_of(status, reason), cleanup=True)  # never skipped
    result = steps.result()
    assert (result.status, result.reason) == expected
    assert [(s.status, s.reason) for s in result.steps] == findings
