"""run_probe: a probe that overruns or has a bug becomes a result; the caller keeps going."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status, StepOutcome, passed
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target

TARGET = Target(site="S", endpoint="e", url="root://127.0.0.1:1", test_dir="/t")
LOG = logging.getLogger("test.runner")


class BuggyProbe:
    """Deliberately broken probes: the runner must contain them."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def __call__(self, target: Target, params: ProbeParams, ctx: ProbeContext) -> ProbeResult:
        await ctx.steps.run("first", self._step)
        if self.behaviour == "raise":
            raise KeyError("secret-looking-value")
        return ctx.steps.result()

    async def _step(self) -> StepOutcome:
        if self.behaviour == "ignore-deadline":
            await asyncio.shield(asyncio.sleep(0.2))  # pretend a step swallowed its deadline
            await asyncio.sleep(30)
        return passed()


def probe_type(behaviour: str) -> ProbeType[ProbeParams, Target]:
    return ProbeType(
        "buggy", "test", frozenset({"root"}), ProbeParams, lambda: BuggyProbe(behaviour)
    )


async def test_bug_becomes_unknown_internal(caplog: pytest.LogCaptureFixture) -> None:
    """An exception escaping a probe gives UNKNOWN/internal and names the exception class."""
    outcome = await run_probe(
        probe_type("raise"), TARGET, ProbeParams(), timeout=5, probe_host="h", log=LOG
    )
    assert outcome.exception == "KeyError"
    assert (outcome.result.status, outcome.result.reason) == (Status.UNKNOWN, Reason.INTERNAL)
    assert "raised KeyError" in caplog.text


async def test_hard_deadline_cuts_a_runaway_probe() -> None:
    """A probe that ignores its step deadline is cancelled shortly after the run deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await run_probe(
        probe_type("ignore-deadline"), TARGET, ProbeParams(), timeout=0.5, probe_host="h", log=LOG
    )
    elapsed = loop.time() - started
    assert (outcome.result.status, outcome.result.reason) == (Status.CRITICAL, Reason.TIMEOUT)
    assert elapsed < 0.5 + 1.5
