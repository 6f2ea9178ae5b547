"""Runs every (probe, target) job on its interval, within concurrency caps, into the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from lakeprobe.config.plan import ProbeJob, SeriesKey
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.outcome import Status
from lakeprobe.probes.runner import RunOutcome, run_probe
from lakeprobe.probes.secrets import redact

log = logging.getLogger("lakeprobe.scheduler")
JITTER_FRACTION = 0.05


def phase(job_id: str, interval: float) -> float:
    """A stable offset in [0, interval): jobs spread evenly instead of firing together."""
    return (zlib.crc32(job_id.encode()) / 2**32) * interval


class ProbeScheduler:
    def __init__(
        self,
        store: ResultsStore,
        metrics: DaemonMetrics,
        *,
        probe_host: str,
        max_concurrent: int,
        max_per_endpoint: int,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._probe_host = probe_host
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_per_endpoint = max_per_endpoint
        self._endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self._jobs: dict[str, ProbeJob] = {}
        self._running: set[str] = set()
        self._scheduled_at: dict[str, datetime] = {}
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MAX_INSTANCES)

    def start(self) -> None:
        self._scheduler.start()

    async def shutdown(self, timeout: float) -> None:
        """Stop scheduling, give running probes `timeout` seconds (they clean up), then cancel."""
        # Pause first: APScheduler's executor shutdown would cancel running probes at once.
        self._scheduler.pause()
        running = [task for task in asyncio.all_tasks() if task.get_name().startswith("probe:")]
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._scheduler.shutdown(wait=False)

    def apply(self, jobs: list[ProbeJob]) -> None:
        """Make the schedule match `jobs`: unchanged intervals keep their timing."""
        wanted = {job.key.job_id: job for job in jobs}
        for job_id in set(self._jobs) - set(wanted):
            self._scheduler.remove_job(job_id)
        now = datetime.now(UTC)
        for job_id, job in wanted.items():
            previous = self._jobs.get(job_id)
            if previous is None or previous.interval != job.interval:
                self._schedule(job, now)
        self._jobs = wanted
        self._store.set_targets(
            (job.key for job in jobs), {j: job.interval for j, job in wanted.items()}
        )
        self._metrics.targets.set(len(jobs))

    def _schedule(self, job: ProbeJob, now: datetime) -> None:
        offset = phase(job.key.job_id, job.interval)
        trigger = IntervalTrigger(
            seconds=job.interval,
            start_date=now + timedelta(seconds=offset),
            jitter=job.interval * JITTER_FRACTION,
            timezone=UTC,
        )
        self._scheduler.add_job(
            self._run,
            trigger,
            args=[job.key.job_id],
            id=job.key.job_id,
            name=job.key.job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(job.interval)),
            replace_existing=True,
        )

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            self._scheduled_at[event.job_id] = event.scheduled_run_times[-1]

    def _on_missed(self, event: JobSubmissionEvent) -> None:
        job = self._jobs.get(event.job_id)
        if job is not None:
            self._metrics.missed_runs.labels(job.key.probe).inc()

    def _endpoint_slots_of(self, job: ProbeJob) -> list[asyncio.Semaphore]:
        """One slot per endpoint the run touches (both sides of a copy), in a fixed order
        so two pairs sharing endpoints cannot deadlock."""
        slots = []
        for url in sorted({target.url for target in job.target.endpoints}):
            if url not in self._endpoint_slots:
                self._endpoint_slots[url] = asyncio.Semaphore(self._max_per_endpoint)
            slots.append(self._endpoint_slots[url])
        return slots

    async def _run(self, job_id: str, scheduler_id: str | None = None) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(f"probe:{job_id}")
        scheduled = self._scheduled_at.pop(scheduler_id or job_id, None)
        job = self._jobs.get(job_id)
        if job is None or job_id in self._running:  # a recheck met the regular run
            return
        self._running.add(job_id)
        try:
            await self._run_in_slots(job, scheduled)
        finally:
            self._running.discard(job_id)

    async def _run_in_slots(self, job: ProbeJob, scheduled: datetime | None) -> None:
        async with contextlib.AsyncExitStack() as slots:
            await slots.enter_async_context(self._slots)
            for slot in self._endpoint_slots_of(job):
                await slots.enter_async_context(slot)
            if scheduled is not None:
                lag = (datetime.now(UTC) - scheduled).total_seconds()
                self._metrics.schedule_lag.observe(max(0.0, lag))
            outcome = await self.run_now(job)
        self._report(job.key, outcome)
        state = self._store.get(job.key)
        if state is not None and state.consecutive_failures == 1:
            self._recheck(job)

    def _recheck(self, job: ProbeJob) -> None:
        """One early run after a target's first failure (not after later ones)."""
        if job.recheck_after is None or job.recheck_after >= job.interval:
            return
        recheck_id = f"{job.key.job_id}#recheck"
        self._scheduler.add_job(
            self._run,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=job.recheck_after),
            args=[job.key.job_id, recheck_id],
            id=recheck_id,
            misfire_grace_time=max(1, int(job.interval)),
            replace_existing=True,
        )

    async def run_now(self, job: ProbeJob) -> RunOutcome:
        with self._metrics.in_flight.track_inprogress():
            return await run_probe(
                job.probe_type,
                job.target,
                job.params,
                timeout=job.timeout,
                probe_host=self._probe_host,
                log=log,
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
