"""The daemon's own health: bugs, schedule lag, runs in flight, config reloads."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from lakeprobe import __version__
from lakeprobe.probes.core.threads import BlockingThreads

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class DaemonMetrics:
    def __init__(
        self, registry: CollectorRegistry, copy_threads: BlockingThreads | None = None
    ) -> None:
        copy_threads = copy_threads or BlockingThreads()  # none busy: a daemon without copies
        self.exceptions = Counter(
            "lakeprobe_exceptions",
            "Bugs that escaped a probe, by probe and exception class",
            ["probe", "exception"],
            registry=registry,
        )
        self.schedule_lag = Histogram(
            "lakeprobe_scheduler_lag_seconds",
            "Delay from a run's scheduled time to its start (includes waiting for a slot)",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.missed_runs = Counter(
            "lakeprobe_scheduler_missed_runs",
            "Runs not started. cause: overlap (the previous run of the target was still queued "
            "or going), no_slot (no free slot within the run's timeout)",
            ["probe", "cause"],
            registry=registry,
        )
        self.waiting = Gauge(
            "lakeprobe_scheduler_waiting_runs",
            "Due runs waiting for a slot (their endpoint's, or a shared one)",
            registry=registry,
        )
        self.oldest_waiting = Gauge(
            "lakeprobe_scheduler_oldest_waiting_seconds",
            "How long the longest-waiting due run has waited to start (0: none waits), hung "
            "targets' runs left out; grows when runs come due faster than they can start",
            registry=registry,
        )
        self.capacity = Gauge(
            "lakeprobe_scheduler_capacity",
            "Runs allowed at once (max_concurrent_runs); a quarter is kept for targets in good "
            "standing",
            registry=registry,
        )
        self.hung_targets = Gauge(
            "lakeprobe_scheduler_hung_targets",
            "Targets whose last run held its slots for half its timeout or more; they share "
            "at most three quarters of the slots",
            registry=registry,
        )
        self.in_flight = Gauge(
            "lakeprobe_runs_in_flight", "Probe runs executing now", registry=registry
        )
        self.targets = Gauge(
            "lakeprobe_targets", "Configured (probe, endpoint) targets", registry=registry
        )
        self.reload_ok = Gauge(
            "lakeprobe_config_last_reload_successful",
            "1 if the last config (re)load succeeded",
            registry=registry,
        )
        self.reload_time = Gauge(
            "lakeprobe_config_last_reload_success_timestamp_seconds",
            "Time of the last successful config (re)load",
            registry=registry,
        )
        Gauge(
            "lakeprobe_copy_threads_busy",
            "Third-party-copy threads running a copy (the blocking XRootD/gfal2 clients)",
            registry=registry,
        ).set_function(lambda: copy_threads.running)
        Gauge(
            "lakeprobe_copy_threads_abandoned",
            "Copy threads still held by a copy whose probe gave up (a hung endpoint)",
            registry=registry,
        ).set_function(lambda: copy_threads.abandoned)
        Info("lakeprobe_build", "lakeprobe version", registry=registry).info(
            {"version": __version__}
        )
