"""A fake monotonic clock and scripted probe types for scheduler tests (no servers needed)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from lakeprobe.config.plan import ProbeJob, TargetKey
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, StepOutcome, passed
from lakeprobe.probes.core.target import Target
from lakeprobe.service.firstcontact import Greeter
from lakeprobe.service.scheduler import ProbeScheduler


class FakeClock:
    """Monotonic time that moves only when the test calls advance()."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        if event.is_set():
            return
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + max(0.0, timeout), timer))
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([timer, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()

    async def advance(self, seconds: float, step: float = 0.25) -> None:
        """Move time forward in steps, letting every task react at each step."""
        end = self.t + seconds
        while self.t < end:
            self.t = min(end, self.t + step)
            for due, timer in list(self._sleepers):
                if due <= self.t and not timer.done():
                    timer.set_result(None)
            self._sleepers = [(d, f) for d, f in self._sleepers if not f.done()]
            for _ in range(20):
                await asyncio.sleep(0)


Behaviour = Callable[[Target], Awaitable[None]]


class ScriptedProbes:
    """A probe type whose runs do what `behaviour(target)` does, recording each start."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    def probe_type(self) -> ProbeType[ProbeParams, Target]:
        return ProbeType("scripted", "test", frozenset({"root"}), ProbeParams, self._probe)

    def _probe(self) -> _ScriptedProbe:
        return _ScriptedProbe(self)


class _ScriptedProbe:
    def __init__(self, script: ScriptedProbes) -> None:
        self.script = script

    async def __call__(self, target: Target, params: ProbeParams, ctx: ProbeContext) -> ProbeResult:
        self.script.starts[target.endpoint].append(self.script.clock())

        async def step() -> StepOutcome:
            if self.script.behaviour is not None:
                await self.script.behaviour(target)
            return passed()

        await ctx.steps.run("step", step)
        return ctx.steps.result()


def job(
    probes: ScriptedProbes,
    name: str,
    *,
    interval: float = 10.0,
    timeout: float = 5.0,
    port: int | None = None,
    url: str | None = None,
) -> ProbeJob:
    """A job named `name` on its own endpoint (`url`, default a distinct made-up one)."""
    target = Target(site="S", endpoint=name, url=url or f"root://{name}.invalid:{port or 1}",
                    test_dir="/t")  # fmt: skip
    key = TargetKey("scripted", "S", name, "root")
    return ProbeJob(key, probes.probe_type(), target, ProbeParams(), interval, timeout, None)


class NoHang:
    """First contact for timing tests whose targets are not servers: every greeting answers."""

    async def hangs(self, targets: tuple[Target, ...]) -> bool:
        return False

    def forget(self, keep: set[str]) -> None:
        pass

    async def aclose(self) -> None:
        pass


def scheduler(
    clock: object | None = None,
    capacity: int = 32,
    per_endpoint: int = 2,
    contact: Greeter | None = None,
) -> tuple[ProbeScheduler, ResultsStore, DaemonMetrics, CollectorRegistry]:
    """A scheduler on `clock` (default: the loop's); first contact `contact` (default:
    NoHang; pass FirstContact() when the targets are real servers)."""
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry)
    store = ResultsStore()
    made = ProbeScheduler(
        store, metrics, probe_host="test", max_concurrent=capacity,
        max_per_endpoint=per_endpoint, clock=clock,  # type: ignore[arg-type]
        contact=contact or NoHang(),
    )  # fmt: skip
    return made, store, metrics, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
