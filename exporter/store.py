"""The results store: the latest result and counters per target. Probes write, scrapes read."""

from __future__ import annotations

from collections import Counter
from collections.abc import ItemsView, Iterable
from dataclasses import dataclass, field

from lakeprobe.config.plan import SeriesKey
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status


@dataclass(slots=True)
class TargetState:
    last: ProbeResult | None = None
    runs: Counter[Status] = field(default_factory=Counter)
    failures: Counter[Reason] = field(default_factory=Counter)
    consecutive_failures: int = 0
    last_success_at: float | None = None
    version: int = 0  # bumped on every change: the exposition cache's key
    interval: float | None = None  # the schedule, exported so staleness alerts need no config

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
