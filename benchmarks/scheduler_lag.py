"""Benchmark: scheduler lag when every pair of a 150-site lake (22,350 jobs) is due within
one interval. The probe is a stand-in that only awaits a short sleep, so the numbers are the
scheduler's own overhead (timetable + admission slots), not storage latency.

    .venv/bin/python benchmarks/scheduler_lag.py [--sites 150] [--interval 60] [--work 0.005]

Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import time
from itertools import permutations

from prometheus_client import CollectorRegistry

from lakeprobe.config.pairs import PairKey
from lakeprobe.config.plan import ProbeJob
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.context import PairParams, ProbeContext, ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, StepOutcome, passed
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.service.scheduler import ProbeScheduler


class SleepProbe:
    """Stands in for a copy: one step that awaits `work` seconds."""

    work = 0.005

    async def __call__(
        self, target: PairTarget, params: PairParams, ctx: ProbeContext
    ) -> ProbeResult:
        async def step() -> StepOutcome:
            await asyncio.sleep(self.work * (0.5 + random.random()))
            return passed()

        await ctx.steps.run("copy", step)
        return ctx.steps.result()


SLEEP = ProbeType(
    "sleep",
    "benchmark stand-in",
    frozenset({"davs"}),
    PairParams,
    SleepProbe,
    modes=("pull",),
)


def jobs(sites: int, interval: float) -> list[ProbeJob]:
    names = [f"SITE-{n:03d}" for n in range(sites)]
    targets = {n: Target(n, "webdav", f"davs://{n.lower()}.example.org", "/t") for n in names}
    return [
        ProbeJob(
            PairKey("sleep", s, d, "davs", "pull"),
            SLEEP,
            PairTarget(targets[s], targets[d], "pull"),
            PairParams(),
            interval,
            interval / 2,
        )
        for s, d in permutations(names, 2)
    ]


def quantile(buckets: list[tuple[float, float]], count: float, q: float) -> str:
    for bound, cumulative in buckets:
        if cumulative >= q * count:
            return f"<= {bound:g} s"
    return "> largest bucket"


async def main(sites: int, interval: float) -> None:
    registry = CollectorRegistry(auto_describe=False)
    metrics = DaemonMetrics(registry)
    store = ResultsStore()
    scheduler = ProbeScheduler(
        store, metrics, probe_host=socket.gethostname(), max_concurrent=256, max_per_endpoint=64
    )
    plan = jobs(sites, interval)
    scheduler.start()
    started = time.perf_counter()
    scheduler.apply(plan)
    print(f"jobs={len(plan)} apply={time.perf_counter() - started:.2f}s interval={interval:g}s")
    await asyncio.sleep(interval * 1.1)
    await scheduler.shutdown(5)
    runs = sum(state.runs.total() for _, state in store.items())
    lag = {s.name: s for s in registry.collect() if s.name == "lakeprobe_scheduler_lag_seconds"}
    samples = lag["lakeprobe_scheduler_lag_seconds"].samples
    buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
    count = next(s.value for s in samples if s.name.endswith("_count"))
    total = next(s.value for s in samples if s.name.endswith("_sum"))
    missed = sum(
        s.value
        for m in registry.collect()
        if m.name == "lakeprobe_scheduler_missed_runs"
        for s in m.samples
        if s.name.endswith("_total")
    )
    print(f"runs={runs} (expected ~{len(plan) * 1.1:.0f}) missed={missed:.0f}")
    print(
        f"lag mean={total / count:.3f}s p50 {quantile(buckets, count, 0.5)} "
        f"p99 {quantile(buckets, count, 0.99)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--work", type=float, default=0.005, help="seconds one run awaits")
    args = parser.parse_args()
    SleepProbe.work = args.work
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lakeprobe.scheduler").setLevel(logging.ERROR)
    asyncio.run(main(args.sites, args.interval))
