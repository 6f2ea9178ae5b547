"""Run a probe's ordered steps: timing, deadlines, skipping after a failure, the rollup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from lakeprobe.probes.core.outcome import (
    CAPABILITY_REASONS,
    Measurement,
    ProbeResult,
    Reason,
    Status,
    StepOutcome,
    StepResult,
    failed,
)

StepAction = Callable[[], Awaitable[StepOutcome]]


class StepRecorder:
    """Records ordered steps. After a critical step fails, later steps are SKIPPED, except
    cleanup steps, which always run (a test file is deleted even after a failed upload).

    Normal steps must finish `cleanup_reserve` seconds before the run deadline so cleanup
    still has time; cleanup steps may use the time up to the deadline itself.
    """

    def __init__(self, deadline: float, slow_after: float, cleanup_reserve: float) -> None:
        self._deadline = deadline  # event-loop time
        self._slow_after = slow_after
        self._cleanup_reserve = cleanup_reserve
        self._steps: list[StepResult] = []
        self._blocked_by: str | None = None
        self._running: tuple[str, float, bool] | None = None
        self._started_wall = time.time()
        self._started = time.monotonic()

    @property
    def step_deadline(self) -> float:
        """Event-loop time by which normal (not cleanup) steps must end."""
        return self._deadline - self._cleanup_reserve

    @property
    def failed(self) -> bool:
        return self._blocked_by is not None

    @property
    def steps(self) -> tuple[StepResult, ...]:
        return tuple(self._steps)

    async def run(
        self,
        name: str,
        action: StepAction,
        *,
        critical: bool = True,
        cleanup: bool = False,
        blocks: Callable[[StepOutcome], bool] | None = None,
    ) -> StepOutcome:
        """`blocks` decides whether this step's failure skips the later steps (default: any
        failure of a critical step does); independent checks block only on, say, a dead
        endpoint, so one failed check does not hide the others."""
        if self._blocked_by is not None and not cleanup:
            detail = f"skipped: step '{self._blocked_by}' failed"
            self._steps.append(StepResult(name, Status.SKIPPED, 0.0, Reason.NONE, detail, critical))
            return StepOutcome(Status.SKIPPED, Reason.NONE, detail)
        limit = self._deadline if cleanup else self._deadline - self._cleanup_reserve
        loop_started = asyncio.get_running_loop().time()  # deadlines: the loop's clock
        started = time.monotonic()  # durations: uvloop's clock has whole milliseconds
        self._running = (name, started, critical)
        try:
            async with asyncio.timeout_at(max(limit, loop_started)):
                outcome = await action()
        except TimeoutError:
            allowed = max(0.0, limit - loop_started)
            outcome = failed(Reason.TIMEOUT, f"no answer within {allowed:.1f} s")
        # Left set on cancellation, so abort() can name the step that was cut off.
        self._running = None
        duration = time.monotonic() - started
        blocking = critical and (blocks is None or blocks(outcome))
        return self._record(name, outcome, duration, critical, blocking)

    def _record(
        self, name: str, outcome: StepOutcome, duration: float, critical: bool, blocking: bool
    ) -> StepOutcome:
        status, reason, detail = outcome.status, outcome.reason, outcome.detail
        if status is Status.OK and duration > self._slow_after:
            status, reason = Status.WARNING, Reason.SLOW
            detail = f"{detail}; " if detail else ""
            detail += f"took {duration:.2f} s (warning above {self._slow_after:g} s)"
        if status is Status.CRITICAL and not critical:
            status = Status.WARNING
        # UNKNOWN (e.g. no token could be loaded) blocks too: later steps could only mislead.
        if status in (Status.CRITICAL, Status.UNKNOWN) and blocking and self._blocked_by is None:
            self._blocked_by = name
        self._steps.append(StepResult(name, status, duration, reason, detail, critical))
        return StepOutcome(status, reason, detail)

    def abort(self, status: Status, reason: Reason, detail: str) -> None:
        """Close the step in flight as failed: used when the hard deadline or a bug ends the run."""
        outcome = StepOutcome(status, reason, detail)
        if self._running is not None:
            name, started, critical = self._running
            self._running = None
            self._record(name, outcome, time.monotonic() - started, critical, critical)
        else:
            self._record("run", outcome, 0.0, True, True)

    def result(
        self,
        measurements: dict[Measurement, float] | None = None,
        labelled: dict[Measurement, tuple[tuple[str, float], ...]] | None = None,
    ) -> ProbeResult:
        ran = [s for s in self._steps if s.ran]
        worst = max(ran, key=_rank, default=None)
        status = worst.status if worst is not None else Status.UNKNOWN
        reason = worst.reason if worst is not None else Reason.INTERNAL
        return ProbeResult(
            status=status,
            reason=reason if status is not Status.OK else Reason.NONE,
            steps=tuple(self._steps),
            duration_seconds=time.monotonic() - self._started,
            started_at=self._started_wall,
            measurements=dict(measurements or {}),
            labelled=dict(labelled or {}),
        )


def _rank(step: StepResult) -> tuple[int, bool]:
    """The run's status is the worst step's; among the steps of that status a fault names
    the reason before a capability finding, so a missing feature never masks a fault. max()
    keeps the first of equals: the earliest fault, the root cause."""
    return step.status.severity, step.reason not in CAPABILITY_REASONS


def cleanup_reserve(timeout: float) -> float:
    """The share of a run's deadline kept back so cleanup can still delete the test file."""
    return min(5.0, timeout * 0.2)


# Failures after which a run can learn nothing more from the endpoint (it is down, cut off
# or refuses us): a family whose steps are independent checks blocks only on these.
ENDPOINT_UNREACHABLE = frozenset(
    {Reason.CONNECT, Reason.DNS, Reason.TLS, Reason.TIMEOUT, Reason.AUTH}
)


def blocks_on_unreachable(outcome: StepOutcome) -> bool:
    """For StepRecorder.run(blocks=...): skip the later steps only when the endpoint is
    unreachable (ENDPOINT_UNREACHABLE) or the run cannot judge it (UNKNOWN)."""
    return outcome.reason in ENDPOINT_UNREACHABLE or outcome.status is Status.UNKNOWN
