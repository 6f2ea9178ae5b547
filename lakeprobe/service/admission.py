"""Who may start a probe run now: slots per endpoint and for the whole daemon.

A run needs one slot on every endpoint it touches (both ends of a copy) and one of the
daemon's `capacity` slots. It takes them all at once or none: a waiting run holds nothing,
so a hung endpoint never ties up a slot that another endpoint's run could use.

Hung endpoints must not crowd healthy ones out of the shared slots. Each run carries the
standing of its target:
- GOOD: its last run ended within half its timeout;
- NEW: no run of it has ended yet (since start or since it was added);
- HUNG: its last run held its slots for half its timeout or more (a tarpit, a stopped
  server, a blackholed network), or the run now in flight has (`demote`).
NEW and HUNG runs together may hold at most `capacity - reserve` slots (reserve: a quarter
of the capacity), so GOOD targets always find a free slot once the lake is known, however
many endpoints hang. Free slots go to GOOD runs first, then NEW, then HUNG, each in order
of arrival; a run blocked only by its own busy endpoint waits in that endpoint's queue and
never delays anyone else.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

RESERVE_FRACTION = 0.25


class Standing(enum.IntEnum):
    GOOD = 0
    NEW = 1
    HUNG = 2

    @property
    def trusted(self) -> bool:
        return self is Standing.GOOD


class Phase(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"  # released, or withdrawn before it was granted


@dataclass(eq=False, slots=True)
class Ticket:
    """One run's request for slots. `granted` is set when it may start."""

    job_id: str
    endpoints: tuple[str, ...]
    standing: Standing
    seq: int
    granted: asyncio.Event = field(default_factory=asyncio.Event)
    phase: Phase = Phase.WAITING
    counted_trusted: bool = False  # while running: which budget it is counted in


class Admission:
    def __init__(self, capacity: int, per_endpoint: int) -> None:
        self._capacity = capacity
        self._per_endpoint = per_endpoint
        self._running = 0
        self._untrusted = 0
        self._waiting = 0
        self._per_host: Counter[str] = Counter()
        self._blocked: dict[str, deque[Ticket]] = {}  # waiting for that endpoint
        self._queues = {standing: deque[Ticket]() for standing in Standing}
        self._seq = itertools.count()

    # --- limits ------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def untrusted_limit(self) -> int:
        reserve = int(self._capacity * RESERVE_FRACTION)
        return max(1, self._capacity - reserve)

    def resize(self, capacity: int, per_endpoint: int) -> None:
        """New caps (a reload). Runs holding more than the new caps keep their slots."""
        self._capacity, self._per_endpoint = capacity, per_endpoint
        for endpoint in list(self._blocked):
            self._retry_endpoint(endpoint)
        self._retry_queues()

    # --- what is going on ------------------------------------------------------------------
    @property
    def running(self) -> int:
        return self._running

    @property
    def running_untrusted(self) -> int:
        return self._untrusted

    @property
    def waiting(self) -> int:
        return self._waiting

    # --- a run's life ----------------------------------------------------------------------
    def request(self, job_id: str, endpoints: Iterable[str], standing: Standing) -> Ticket:
        """Queue a run; `ticket.granted` is set (maybe at once) when it may start."""
        ticket = Ticket(job_id, tuple(sorted(set(endpoints))), standing, next(self._seq))
        self._waiting += 1
        self._place(ticket)
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting run gives up (its wait bound, or it was cancelled). Queued entries are
        dropped lazily. A ticket granted meanwhile is released."""
        if ticket.phase is Phase.RUNNING:
            self.release(ticket)
        elif ticket.phase is Phase.WAITING:
            self._waiting -= 1
        ticket.phase = Phase.DONE

    def release(self, ticket: Ticket) -> None:
        if ticket.phase is not Phase.RUNNING:
            return
        ticket.phase = Phase.DONE
        self._running -= 1
        if not ticket.counted_trusted:
            self._untrusted -= 1
        for endpoint in ticket.endpoints:
            self._per_host[endpoint] -= 1
            if not self._per_host[endpoint]:
                del self._per_host[endpoint]
        for endpoint in ticket.endpoints:
            self._retry_endpoint(endpoint)
        self._retry_queues()

    def demote(self, ticket: Ticket) -> None:
        """A running run has held its slots for half its timeout: count it as HUNG."""
        if ticket.phase is Phase.RUNNING and ticket.counted_trusted:
            ticket.counted_trusted = False
            self._untrusted += 1

    # --- granting --------------------------------------------------------------------------
    def _place(self, ticket: Ticket) -> None:
        """Grant `ticket` if it can run now, else queue it where it is blocked."""
        busy = next((e for e in ticket.endpoints if not self._endpoint_free(e)), None)
        if busy is not None:
            self._blocked.setdefault(busy, deque()).append(ticket)
        elif not self._shared_free(ticket.standing):
            self._queues[ticket.standing].append(ticket)
        else:
            self._grant(ticket)

    def _endpoint_free(self, endpoint: str) -> bool:
        return self._per_host[endpoint] < self._per_endpoint

    def _shared_free(self, standing: Standing) -> bool:
        if self._running >= self._capacity:
            return False
        return standing.trusted or self._untrusted < self.untrusted_limit

    def _grant(self, ticket: Ticket) -> None:
        self._waiting -= 1
        ticket.phase = Phase.RUNNING
        ticket.counted_trusted = ticket.standing.trusted
        self._running += 1
        if not ticket.counted_trusted:
            self._untrusted += 1
        for endpoint in ticket.endpoints:
            self._per_host[endpoint] += 1
        ticket.granted.set()

    def _retry_endpoint(self, endpoint: str) -> None:
        queue = self._blocked.get(endpoint)
        while queue and self._endpoint_free(endpoint):
            ticket = queue.popleft()
            if ticket.phase is Phase.WAITING:
                self._place(ticket)
        if queue is not None and not queue:
            del self._blocked[endpoint]

    def _retry_queues(self) -> None:
        for standing in Standing:  # GOOD first, then NEW, then HUNG
            queue = self._queues[standing]
            while queue and self._shared_free(standing):
                ticket = queue.popleft()
                if ticket.phase is Phase.WAITING:
                    self._place(ticket)
