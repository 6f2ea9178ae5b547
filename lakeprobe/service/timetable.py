"""When each job runs next, on the monotonic clock: a heap of due times.

A job runs at `anchor + k * interval` plus up to 5 % jitter, `anchor` being its start time
plus a stable per-job phase, so jobs spread over their interval instead of firing together.
Times that passed while the loop was busy are coalesced into one run (no burst), and the
grid never drifts with the runs' own durations.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import zlib
from dataclasses import dataclass, field

JITTER_FRACTION = 0.05


def phase(job_id: str, interval: float) -> float:
    """A stable offset in [0, interval): jobs spread evenly instead of firing together."""
    return (zlib.crc32(job_id.encode()) / 2**32) * interval


@dataclass(slots=True)
class Grid:
    anchor: float
    interval: float

    def next_after(self, now: float) -> float:
        """The first grid time after `now`, with jitter."""
        steps = max(0, math.floor((now - self.anchor) / self.interval) + 1)
        return (
            self.anchor + steps * self.interval + random.uniform(0, self.interval * JITTER_FRACTION)
        )


@dataclass(order=True, slots=True)
class Due:
    at: float
    seq: int
    job_id: str = field(compare=False)
    generation: int = field(compare=False)
    recheck: bool = field(default=False, compare=False)


class Timetable:
    def __init__(self) -> None:
        self._heap: list[Due] = []
        self._seq = itertools.count()

    def push(self, at: float, job_id: str, generation: int, *, recheck: bool = False) -> bool:
        """Returns True when this entry is now the earliest (the timer must wake)."""
        entry = Due(at, next(self._seq), job_id, generation, recheck)
        heapq.heappush(self._heap, entry)
        return self._heap[0] is entry

    def pop_due(self, now: float) -> list[Due]:
        due = []
        while self._heap and self._heap[0].at <= now:
            due.append(heapq.heappop(self._heap))
        return due

    def next_at(self) -> float | None:
        return self._heap[0].at if self._heap else None

    def compact(self, live: dict[str, int]) -> None:
        """Drop entries of removed or rescheduled jobs (job id -> current generation)."""
        self._heap = [d for d in self._heap if live.get(d.job_id) == d.generation]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
