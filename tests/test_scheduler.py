"""The scheduler: monotonic timing, bounded waits, isolation of hung targets, clean stops."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
from scheduling_helpers import FakeClock, ScriptedProbes, job, sample, scheduler

from lakeprobe.probes.core.target import Target
from lakeprobe.service.timetable import phase


def _wall_steps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.time() follows a list of offsets the test changes: the system clock stepping."""
    offset = [0.0]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    return offset


async def test_wall_clock_steps_neither_stop_nor_burst_the_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the wall clock stepped back an hour, then forward two, every target keeps running
    once per interval: no pause, no catch-up burst."""
    clock, probes = FakeClock(), ScriptedProbes()
    probes.clock = clock.now
    offset = _wall_steps(monkeypatch)
    sched, *_ = scheduler(clock)
    sched.start()
    sched.apply([job(probes, f"e{i}", interval=10) for i in range(3)])
    await clock.advance(30)
    offset[0] = -3600.0
    await clock.advance(30)
    offset[0] = +7200.0
    await clock.advance(40)
    await sched.shutdown(1)
    for name in ("e0", "e1", "e2"):
        starts = probes.starts[name]
        assert len(starts) == 10, (name, starts)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(9.5 <= gap <= 11.0 for gap in gaps), (name, gaps)


async def test_wall_clock_step_with_the_real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with the real event-loop clock: a backward step does not stop probing."""
    probes = ScriptedProbes()
    offset = _wall_steps(monkeypatch)
    sched, *_ = scheduler()
    sched.start()
    sched.apply([job(probes, "e", interval=0.2, timeout=0.1)])
    await asyncio.sleep(0.5)
    offset[0] = -3600.0
    before = len(probes.starts["e"])
    await asyncio.sleep(0.8)
    await sched.shutdown(1)
    assert len(probes.starts["e"]) - before >= 3


async def test_a_run_waits_at_most_its_timeout_for_a_slot() -> None:
    """With the only slot held, a due run waits its timeout, then is a missed run (no_slot);
    the holder's own next runs are missed as overlaps."""
    clock, release = FakeClock(), asyncio.Event()

    async def hold(target: Target) -> None:
        await release.wait()

    probes = ScriptedProbes(hold)
    sched, _, _, registry = scheduler(clock, capacity=1)
    sched.start()
    sched.apply([job(probes, "a", timeout=4), job(probes, "b", timeout=4)])
    await clock.advance(25)
    assert sorted(len(probes.starts[name]) for name in "ab") == [0, 1]  # one holds the slot
    assert sample(registry, "lakeprobe_scheduler_missed_runs_total", probe="scripted",
                  cause="no_slot") >= 2  # fmt: skip
    assert sample(registry, "lakeprobe_scheduler_missed_runs_total", probe="scripted",
                  cause="overlap") >= 1  # fmt: skip
    release.set()
    await clock.advance(12)
    assert all(probes.starts[name] for name in "ab"), "both run once the slot is free"
    await sched.shutdown(1)


async def test_hung_targets_do_not_starve_a_healthy_one() -> None:
    """Twelve targets that hang until their deadline, four slots: the healthy target keeps
    its interval (once the hung ones are known) while the hung ones miss runs."""

    async def hang(target: Target) -> None:
        if target.endpoint != "healthy":
            await asyncio.sleep(60)

    probes = ScriptedProbes(hang)
    sched, _, _, registry = scheduler(capacity=4, per_endpoint=1)
    sched.start()
    hung = [job(probes, f"hung{i}", interval=0.6, timeout=0.5, port=2000 + i) for i in range(12)]
    sched.apply([*hung, job(probes, "healthy", interval=0.2, timeout=0.15)])
    await asyncio.sleep(1.5)  # every hung target has run once and is known as hung
    before = len(probes.starts["healthy"])
    await asyncio.sleep(2.0)
    ran = len(probes.starts["healthy"]) - before
    await sched.shutdown(1)
    assert ran >= 8, f"healthy ran {ran} times in 2 s at a 0.2 s interval"
    assert sample(registry, "lakeprobe_scheduler_hung_targets") >= 6
    assert sample(registry, "lakeprobe_scheduler_missed_runs_total", probe="scripted",
                  cause="no_slot") > 0  # fmt: skip


def _by_phase(names: list[str], interval: float) -> list[str]:
    """`names` ordered by when their first run is due (the stable per-job phase)."""
    return sorted(names, key=lambda name: phase(f"scripted|S|{name}", interval))


async def test_reload_drops_queued_runs_and_applies_new_caps() -> None:
    """A removed target's queued run never starts; a larger capacity starts waiting runs."""
    clock, release = FakeClock(), asyncio.Event()
    holder, removed, kept = _by_phase(["a", "b", "c"], 10)

    async def hold(target: Target) -> None:
        if target.endpoint == holder:
            await release.wait()

    probes = ScriptedProbes(hold)
    sched, *_ = scheduler(clock, capacity=1)
    sched.start()
    jobs = {name: job(probes, name, timeout=9.9) for name in (holder, removed, kept)}
    sched.apply(list(jobs.values()))
    while len(probes.starts[holder]) + sched.admission.waiting < 3:
        await clock.advance(0.1)  # until every first run is due: only the holder got the slot
    sched.apply([jobs[holder], jobs[kept]])
    sched.set_limits(2, 2, "test")
    await clock.advance(0.5)
    assert probes.starts[kept], "the second slot of the reload started the queued run"
    release.set()
    await clock.advance(12)
    await sched.shutdown(1)
    assert not probes.starts[removed]


async def test_shutdown_is_bounded_quiet_and_starts_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shutdown drops queued runs, gives running ones the grace, then cancels them without
    tracebacks, and returns within the grace."""

    async def forever(target: Target) -> None:
        await asyncio.sleep(3600)

    probes = ScriptedProbes(forever)
    sched, *_ = scheduler(capacity=2)
    sched.start()
    sched.apply([job(probes, f"e{i}", interval=0.05, timeout=0.04, port=3000 + i)
                 for i in range(6)])  # fmt: skip
    await asyncio.sleep(0.02)
    started = {name: len(s) for name, s in probes.starts.items()}
    assert sum(started.values()) == 2
    begun = asyncio.get_running_loop().time()
    with caplog.at_level(logging.DEBUG):
        await sched.shutdown(0.3)
    assert asyncio.get_running_loop().time() - begun < 2.0
    assert {name: len(s) for name, s in probes.starts.items()} == started
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_overload_shows_before_any_run_is_missed() -> None:
    """One shared slot, three targets whose runs take 1 s each at a 0.5 s interval: runs come
    due faster than they can start. The oldest waiting run's age grows while it waits (the
    lag histogram sees a run only once it starts) and drops to 0 when nothing waits."""
    clock = FakeClock()

    async def behave(target: Target) -> None:
        await clock.wait(asyncio.Event(), 1.0)  # a run takes 1 s of the fake clock

    probes = ScriptedProbes(behave)
    sched, _, _, registry = scheduler(clock=clock, capacity=1, per_endpoint=1)
    assert sample(registry, "lakeprobe_scheduler_oldest_waiting_seconds") == 0
    sched.start()
    sched.apply([job(probes, f"t{i}", interval=0.5, timeout=5, port=3000 + i) for i in range(3)])
    ages = []
    for _ in range(8):
        await clock.advance(0.5)
        ages.append(sample(registry, "lakeprobe_scheduler_oldest_waiting_seconds"))
    assert max(ages) >= 1.0, ages
    assert sample(registry, "lakeprobe_scheduler_missed_runs_total", probe="scripted",
                  cause="no_slot") == 0  # fmt: skip
    sched.apply([])
    await clock.advance(0.5)
    assert sample(registry, "lakeprobe_scheduler_oldest_waiting_seconds") == 0
    await sched.shutdown(0)
