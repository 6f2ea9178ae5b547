"""A Prometheus collector that renders the results store afresh on every scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lakeprobe.exporter.store import ResultsStore, TargetState
from lakeprobe.probes.outcome import Measurement, Status

LABELS = ["probe", "site", "endpoint", "protocol"]
P = "lakeprobe_probe_"


class StoreCollector(Collector):
    def __init__(self, store: ResultsStore) -> None:
        self._store = store

    def describe(self) -> list[Metric]:
        return []  # families depend on the store; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for key, state in self._store.items():
            labels = [key.probe, key.site, key.endpoint, key.protocol]
            families.add_target(labels, state)
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.success = g(P + "success", "1 if the last run was OK or WARNING", labels=LABELS)
        self.status = g(
            P + "status", "Last status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", labels=LABELS
        )
        self.reason = g(
            P + "reason",
            "1 for the reason of the last run (none when OK)",
            labels=[*LABELS, "reason"],
        )
        self.duration = g(P + "duration_seconds", "Duration of the last run", labels=LABELS)
        self.last_run = g(P + "last_run_timestamp_seconds", "Start of the last run", labels=LABELS)
        self.last_success = g(
            P + "last_success_timestamp_seconds", "End of the last successful run", labels=LABELS
        )
        self.consecutive = g(
            P + "consecutive_failures", "Failed runs since the last success", labels=LABELS
        )
        self.runs = c(P + "runs", "Completed runs by status", labels=[*LABELS, "status"])
        self.failures = c(P + "failures", "Failed runs by reason", labels=[*LABELS, "reason"])
        self.step_success = g(
            P + "step_success",
            "1 if the step passed (absent when skipped)",
            labels=[*LABELS, "step"],
        )
        self.step_status = g(
            P + "step_status",
            "Step status: 0..3 as probe_status, 4 SKIPPED",
            labels=[*LABELS, "step"],
        )
        self.step_duration = g(
            P + "step_duration_seconds", "Step duration in the last run", labels=[*LABELS, "step"]
        )
        self.measurements = {
            m: g(P + m.value, f"Last run's {m.value.replace('_', ' ')}", labels=LABELS)
            for m in Measurement
        }

    def add_target(self, labels: list[str], state: TargetState) -> None:
        for status in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN):
            self.runs.add_metric([*labels, status.label], state.runs[status])
        for reason, count in sorted(state.failures.items()):
            self.failures.add_metric([*labels, reason.value], count)
        self.consecutive.add_metric(labels, state.consecutive_failures)
        if state.last_success_at is not None:
            self.last_success.add_metric(labels, state.last_success_at)
        result = state.last
        if result is None:
            return
        self.success.add_metric(labels, 1.0 if result.success else 0.0)
        self.status.add_metric(labels, float(result.status))
        self.reason.add_metric([*labels, result.reason.value], 1.0)
        self.duration.add_metric(labels, result.duration_seconds)
        self.last_run.add_metric(labels, result.started_at)
        for step in result.steps:
            step_labels = [*labels, step.name]
            self.step_status.add_metric(step_labels, float(step.status))
            if step.ran:
                passed = step.status in (Status.OK, Status.WARNING)
                self.step_success.add_metric(step_labels, 1.0 if passed else 0.0)
                self.step_duration.add_metric(step_labels, step.duration_seconds)
        for measurement, value in result.measurements.items():
            self.measurements[measurement].add_metric(labels, value)

    def all(self) -> list[Metric]:
        return [
            self.success,
            self.status,
            self.reason,
            self.duration,
            self.last_run,
            self.last_success,
            self.consecutive,
            self.runs,
            self.failures,
            self.step_success,
            self.step_status,
            self.step_duration,
            *self.measurements.values(),
        ]
