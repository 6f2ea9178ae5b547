"""The results store: the latest result and counters per target. Probes write, scrapes read."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import ItemsView, Iterable, Mapping
from dataclasses import dataclass, field

from lakeprobe.config.plan import SeriesKey
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status

# Measurements only some runs carry (a recall's numbers appear in the run that saw it
# complete), kept between them so their gauges show the last value. A result carrying any
# member of a group replaces the whole group: a locality count absent from a new check is
# gone, not the old count.
KEPT_GROUPS: tuple[frozenset[Measurement], ...] = (
    frozenset({Measurement.TAPE_RECALL}),
    frozenset({Measurement.TAPE_QUEUE}),
    frozenset({Measurement.TAPE_ARCHIVE_LAG}),
    frozenset(
        {
            Measurement.TAPE_FILES_DISK,
            Measurement.TAPE_FILES_TAPE,
            Measurement.TAPE_FILES_DISK_AND_TAPE,
            Measurement.TAPE_FILES_LOST,
            Measurement.TAPE_FILES_NONE,
            Measurement.TAPE_FILES_UNAVAILABLE,
        }
    ),
)
# Measurements observed into a histogram per target: the buckets' upper bounds (seconds;
# a recall takes from seconds off a disk buffer to a day behind a busy library).
HISTOGRAMS: dict[Measurement, tuple[float, ...]] = {
    Measurement.TAPE_RECALL: (
        1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400,
    ),
}  # fmt: skip
_TRACKED = frozenset(HISTOGRAMS).union(*KEPT_GROUPS)


@dataclass(slots=True)
class Histogram:
    """Observations of one measurement: per-bucket (not cumulative) counts, the last one
    above every bound (+Inf), and their sum."""

    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.total += value


@dataclass(slots=True)
class TargetState:
    last: ProbeResult | None = None
    runs: Counter[Status] = field(default_factory=Counter)
    failures: Counter[Reason] = field(default_factory=Counter)
    consecutive_failures: int = 0
    last_success_at: float | None = None
    version: int = 0  # bumped on every change: the exposition cache's key
    interval: float | None = None  # the schedule, exported so staleness alerts need no config
    # Of KEPT_GROUPS and HISTOGRAMS; None until a result carries one, so the many targets
    # whose probes report none of them allocate nothing. Lost on restart, like the counters.
    kept: dict[Measurement, float] | None = None
    histograms: dict[Measurement, Histogram] | None = None

    def add(self, result: ProbeResult) -> None:
        self.version += 1
        self.last = result
        self.runs[result.status] += 1
        if result.success:
            self.consecutive_failures = 0
            self.last_success_at = result.started_at + result.duration_seconds
        else:
            self.consecutive_failures += 1
            self.failures[result.reason] += 1
        if result.measurements and not _TRACKED.isdisjoint(result.measurements):
            self._track(result.measurements)

    def _track(self, measurements: Mapping[Measurement, float]) -> None:
        kept = self.kept if self.kept is not None else {}
        for group in KEPT_GROUPS:
            if not group.isdisjoint(measurements):
                for member in group:
                    kept.pop(member, None)
                kept.update((m, measurements[m]) for m in group & measurements.keys())
        self.kept = kept
        histograms = self.histograms if self.histograms is not None else {}
        for measurement, bounds in HISTOGRAMS.items():
            value = measurements.get(measurement)
            if value is not None:
                histograms.setdefault(measurement, Histogram.empty(bounds)).observe(value)
        self.histograms = histograms


class ResultsStore:
    """Keyed by SeriesKey. Only configured targets are kept: a reload that removes a
    target removes its state, so its series disappear from /metrics."""

    def __init__(self) -> None:
        self._states: dict[SeriesKey, TargetState] = {}

    def set_targets(
        self, keys: Iterable[SeriesKey], intervals: dict[str, float] | None = None
    ) -> None:
        """Keep exactly `keys`; `intervals` maps job ids to their schedule in seconds."""
        wanted = set(keys)
        ordered = sorted(wanted, key=lambda k: (type(k).__name__, k.job_id))
        self._states = {key: self._states.get(key) or TargetState() for key in ordered}
        for key, state in self._states.items():
            interval = (intervals or {}).get(key.job_id)
            if interval != state.interval:
                state.interval = interval
                state.version += 1

    def record(self, key: SeriesKey, result: ProbeResult) -> bool:
        """False when the target was removed while its run was in flight."""
        state = self._states.get(key)
        if state is None:
            return False
        state.add(result)
        return True

    def get(self, key: SeriesKey) -> TargetState | None:
        return self._states.get(key)

    def items(self) -> list[tuple[SeriesKey, TargetState]]:
        return list(self._states.items())

    def view(self) -> ItemsView[SeriesKey, TargetState]:
        """The live items, for a reader that never awaits while iterating (the exposition):
        no list of tens of thousands of new tuples per scrape."""
        return self._states.items()

    def __len__(self) -> int:
        return len(self._states)
