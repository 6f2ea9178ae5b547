"""The results store: the latest result and counters per target. Probes write, scrapes read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from lakeprobe.config.plan import TargetKey
from lakeprobe.probes.outcome import ProbeResult, Reason, Status


@dataclass(slots=True)
class TargetState:
    last: ProbeResult | None = None
    runs: Counter[Status] = field(default_factory=Counter)
    failures: Counter[Reason] = field(default_factory=Counter)
    consecutive_failures: int = 0
    last_success_at: float | None = None

    def add(self, result: ProbeResult) -> None:
        self.last = result
        self.runs[result.status] += 1
        if result.success:
            self.consecutive_failures = 0
            self.last_success_at = result.started_at + result.duration_seconds
        else:
            self.consecutive_failures += 1
            self.failures[result.reason] += 1


class ResultsStore:
    """Keyed by TargetKey. Only configured targets are kept: a reload that removes a
    target removes its state, so its series disappear from /metrics."""

    def __init__(self) -> None:
        self._states: dict[TargetKey, TargetState] = {}

    def set_targets(self, keys: Iterable[TargetKey]) -> None:
        wanted = set(keys)
        self._states = {key: self._states.get(key) or TargetState() for key in sorted(wanted)}

    def record(self, key: TargetKey, result: ProbeResult) -> bool:
        """False when the target was removed while its run was in flight."""
        state = self._states.get(key)
        if state is None:
            return False
        state.add(result)
        return True

    def get(self, key: TargetKey) -> TargetState | None:
        return self._states.get(key)

    def items(self) -> list[tuple[TargetKey, TargetState]]:
        return list(self._states.items())

    def __len__(self) -> int:
        return len(self._states)
