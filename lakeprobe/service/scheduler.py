"""Runs every (probe, target) job on its interval, within the admission caps, into the store.

Timing is monotonic (clock.py, timetable.py beside this file): wall-clock steps change
nothing. A due run asks admission.py for its slots and waits at most its own timeout for
them; a run that cannot start by then, or whose previous run is still queued or going, is a
missed run, counted by cause. Removing a target cancels its queued run; shutdown stops
the timer first, drops every queued run, gives the running ones `grace` seconds to clean up,
then cancels them quietly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from lakeprobe.config.plan import ProbeJob, SeriesKey
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.outcome import Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import RunOutcome, run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.credentials.secrets import redact
from lakeprobe.service.admission import Admission, Phase, Standing, Ticket
from lakeprobe.service.clock import Clock, LoopClock
from lakeprobe.service.firstcontact import FirstContact, Greeter
from lakeprobe.service.timetable import Grid, Timetable, phase

log = logging.getLogger("lakeprobe.scheduler")
# A run holding its slots this share of its timeout marks its target HUNG (admission.py).
HUNG_FRACTION = 0.5
IDLE_WAKE_SECONDS = 3600.0


@dataclass(slots=True)
class _Flight:
    """A run from the moment it is due: first contact (new targets), queued, running."""

    due: float = 0.0  # clock time it was due
    task: asyncio.Task[None] | None = None
    ticket: Ticket | None = None  # None until it has asked for its slots

    @property
    def queued(self) -> bool:
        return self.ticket is None or self.ticket.phase is Phase.WAITING

    @property
    def waits_in_turn(self) -> bool:
        """Queued, and not a hung target's run (which waits behind the others by design)."""
        return self.queued and (self.ticket is None or self.ticket.standing is not Standing.HUNG)


@dataclass(slots=True)
class _Scheduled:
    job: ProbeJob
    grid: Grid
    generation: int
    standing: Standing = Standing.NEW


class ProbeScheduler:
    def __init__(
        self,
        store: ResultsStore,
        metrics: DaemonMetrics,
        *,
        probe_host: str,
        max_concurrent: int,
        max_per_endpoint: int,
        clock: Clock | None = None,
        contact: Greeter | None = None,
        state: StateStore | None = None,
        resources: ProbeResources | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self.probe_host = probe_host
        self._clock = clock or LoopClock()
        self.admission = Admission(max_concurrent, max_per_endpoint)
        self._jobs: dict[str, _Scheduled] = {}
        self._timetable = Timetable()
        self._generation = 0
        self._contact = contact or FirstContact()
        self._state = state or StateStore.memory()  # what runs remember, shared by all runs
        self._resources = resources or ProbeResources()  # copy threads, OIDC clients: shared
        self._runs: dict[str, _Flight] = {}  # due, queued or running
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._stopping = False
        metrics.hung_targets.set_function(self.hung_targets)
        metrics.oldest_waiting.set_function(self.oldest_waiting)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._timer = asyncio.create_task(self._tick_forever(), name="scheduler-timer")

    async def shutdown(self, grace: float) -> None:
        """Stop scheduling, drop queued runs, give running ones `grace` seconds, cancel."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        flights = list(self._runs.values())
        for flight in flights:
            if flight.queued:
                self._cancel_queued(flight)
        running = [f.task for f in flights if not f.queued and f.task is not None]
        if running:
            log.info("waiting up to %g s for %d running probes", grace, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cancelled %d probe runs still going after %g s", len(pending), grace)
        await asyncio.gather(*(f.task for f in flights if f.task), return_exceptions=True)
        await self._contact.aclose()

    def set_limits(self, max_concurrent: int, max_per_endpoint: int, probe_host: str) -> None:
        """New caps and test-file identity (a reload); running runs keep what they hold."""
        self.admission.resize(max_concurrent, max_per_endpoint)
        self._metrics.capacity.set(max_concurrent)
        self.probe_host = probe_host

    def apply(self, jobs: list[ProbeJob]) -> None:
        """Make the schedule match `jobs`. Unchanged intervals keep their timing and standing;
        removed jobs lose their queued run. Builds the new table first, then swaps."""
        now = self._clock.now()
        wanted = {job.key.job_id: job for job in jobs}
        table: dict[str, _Scheduled] = {}
        fresh = []
        for job_id, job in wanted.items():
            old = self._jobs.get(job_id)
            if old is not None and old.job.interval == job.interval:
                table[job_id] = _Scheduled(job, old.grid, old.generation, old.standing)
                continue
            self._generation += 1
            grid = Grid(now + phase(job_id, job.interval), job.interval)
            table[job_id] = _Scheduled(job, grid, self._generation)
            fresh.append(table[job_id])
        removed = set(self._jobs) - set(table)
        self._jobs = table
        for item in fresh:
            self._push(item.grid.anchor, item)
        for job_id in removed:
            flight = self._runs.get(job_id)
            if flight is not None and flight.queued:
                self._cancel_queued(flight)
        self._contact.forget({t.url for job in jobs for t in job.target.endpoints})
        if removed or len(self._timetable) > 2 * len(table) + 64:
            self._timetable.compact({j: s.generation for j, s in table.items()})
        self._store.set_targets(
            (job.key for job in jobs), {j: s.interval for j, s in wanted.items()}
        )
        self._metrics.targets.set(len(jobs))

    # --- timing ------------------------------------------------------------------------
    def _push(self, at: float, item: _Scheduled, *, recheck: bool = False) -> None:
        if self._timetable.push(at, item.job.key.job_id, item.generation, recheck=recheck):
            self._wake.set()

    async def _tick_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self._clock.now()
            for due in self._timetable.pop_due(now):
                item = self._jobs.get(due.job_id)
                if item is None or item.generation != due.generation:
                    continue  # removed or rescheduled
                if not due.recheck:
                    self._push(item.grid.next_after(now), item)
                self._fire(item, due.at, recheck=due.recheck)
            next_at = self._timetable.next_at()
            wait = IDLE_WAKE_SECONDS if next_at is None else next_at - self._clock.now()
            await self._clock.wait(self._wake, wait)

    def _fire(self, item: _Scheduled, due: float, *, recheck: bool) -> None:
        job_id = item.job.key.job_id
        if job_id in self._runs:
            if not recheck:  # a recheck meeting the regular run is simply not needed
                self._metrics.missed_runs.labels(item.job.key.probe, "overlap").inc()
            return
        flight = _Flight(due)
        self._runs[job_id] = flight
        flight.task = asyncio.create_task(self._run(item, flight, due), name=f"probe:{job_id}")

    def _cancel_queued(self, flight: _Flight) -> None:
        if flight.ticket is not None:
            self.admission.withdraw(flight.ticket)
        if flight.task is not None:
            flight.task.cancel()

    # --- one run -----------------------------------------------------------------------
    async def _run(self, item: _Scheduled, flight: _Flight, due: float) -> None:
        job = item.job
        loop = asyncio.get_running_loop()
        demotion: asyncio.TimerHandle | None = None
        try:
            standing = item.standing
            if standing is Standing.NEW:
                hangs = await self._contact.hangs(job.target.endpoints)
                standing = Standing.HUNG if hangs else Standing.GOOD
            endpoints = [target.url for target in job.target.endpoints]
            ticket = flight.ticket = self.admission.request(job.key.job_id, endpoints, standing)
            self._metrics.waiting.set(self.admission.waiting)
            await self._clock.wait(ticket.granted, job.timeout)
            if not ticket.granted.is_set():
                self._metrics.missed_runs.labels(job.key.probe, "no_slot").inc()
                log.debug("%s: no slot within %g s, run missed", job.key.describe(), job.timeout)
                return
            self._on_start(job, max(0.0, self._clock.now() - due))
            demotion = loop.call_later(job.timeout * HUNG_FRACTION, self.admission.demote, ticket)
            started = loop.time()
            outcome = await self.run_now(job)
            held = loop.time() - started
        except asyncio.CancelledError:
            return  # removed by a reload, or shutdown: nothing to record
        finally:
            if demotion is not None:
                demotion.cancel()
            if flight.ticket is not None:
                self.admission.withdraw(flight.ticket)
            if self._runs.get(job.key.job_id) is flight:
                del self._runs[job.key.job_id]
            self._metrics.waiting.set(self.admission.waiting)
        self._finished(item, outcome, held)

    def _on_start(self, job: ProbeJob, lag: float) -> None:
        """A run got its slots `lag` seconds after it was due (benchmarks hook in here)."""
        self._metrics.schedule_lag.observe(lag)

    def _finished(self, item: _Scheduled, outcome: RunOutcome, held: float) -> None:
        job = item.job
        current = self._jobs.get(job.key.job_id)
        standing = Standing.HUNG if held >= job.timeout * HUNG_FRACTION else Standing.GOOD
        if current is not None:
            current.standing = standing
        self._report(job.key, outcome)
        state = self._store.get(job.key)
        if current is not None and state is not None and state.consecutive_failures == 1:
            self._recheck(current)

    def _recheck(self, item: _Scheduled) -> None:
        """One early run after a target's first failure (not after later ones)."""
        job = item.job
        if self._stopping or job.recheck_after is None or job.recheck_after >= job.interval:
            return
        self._push(self._clock.now() + job.recheck_after, item, recheck=True)

    def hung_targets(self) -> int:
        """Counted when scraped, not after every run: a scan of every job is cheap once per
        scrape and too much at hundreds of runs a second."""
        return sum(1 for item in self._jobs.values() if item.standing is Standing.HUNG)

    def oldest_waiting(self) -> float:
        """Seconds the longest-waiting due run has waited to start (0 when none waits): the
        lag histogram sees a run only once it starts, so an overload shows here first. Runs
        of hung targets are left out: they wait by design (admission.py). Computed when
        scraped, like hung_targets."""
        now = self._clock.now()
        waits = (now - flight.due for flight in self._runs.values() if flight.waits_in_turn)
        return max(waits, default=0.0)

    async def run_now(self, job: ProbeJob) -> RunOutcome:
        with self._metrics.in_flight.track_inprogress():
            return await run_probe(
                job.probe_type,
                job.target,
                job.params,
                timeout=job.timeout,
                probe_host=self.probe_host,
                log=log,
                state=self._state,
                resources=self._resources,
            )

    def _report(self, key: SeriesKey, outcome: RunOutcome) -> None:
        if outcome.exception is not None:
            self._metrics.exceptions.labels(key.probe, outcome.exception).inc()
        if not self._store.record(key, outcome.result):
            return
        result = outcome.result
        failing = None
        if result.status is not Status.OK:
            failing = next((s for s in result.steps if s.reason == result.reason and s.ran), None)
        level = logging.INFO if result.success else logging.WARNING
        log.log(
            level,
            "%s %s reason=%s %.2fs%s",
            key.describe(),
            result.status.name,
            result.reason.value,
            result.duration_seconds,
            f" step={failing.name}: {redact(failing.detail)}" if failing and failing.detail else "",
        )
