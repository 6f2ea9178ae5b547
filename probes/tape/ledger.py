"""What a tape endpoint's runs hand on to the next: the stage request in flight, the archive
canary written, which reference file comes next. Kept in the daemon's state store (SQLite
under server.state_dir), so a restart, even a SIGKILL, continues the recall it left: nothing
lakeprobe asked a tape system for stays pinned because lakeprobe forgot it.

Times are unix seconds (they outlive the process); no secrets, ever (the file is plain)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target

SCOPE = "tape-recall"
FIRST_POLL = 2.0  # seconds after the stage; then doubling, capped at TapeQos.poll_max_interval


@dataclass(frozen=True, slots=True)
class Request:
    """A stage request lakeprobe submitted and has not finished with."""

    request_id: str
    path: str
    submitted_at: float
    polls: int = 0
    next_poll_at: float = 0.0
    started_at: float | None = None  # when the server started it, once known
    pending_at: float | None = None  # the last poll that found it still pending

    def age(self, now: float) -> float:
        return max(0.0, now - self.submitted_at)

    def polled(self, now: float, cap: float) -> Request:
        """After a poll that found it pending: the next poll with capped exponential backoff."""
        wait = min(cap, FIRST_POLL * 2.0**self.polls)
        return replace(self, polls=self.polls + 1, next_poll_at=now + wait, pending_at=now)


@dataclass(frozen=True, slots=True)
class Canary:
    """A file written to the tape-class directory, waiting to be seen on tape."""

    path: str
    written_at: float


@dataclass(slots=True)
class Ledger:
    request: Request | None = None
    canary: Canary | None = None
    next_file: int = 0  # index into TapeQos.files where the next choice starts
    evicted: list[str] = field(default_factory=list)  # evicted by us, to stage next

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Ledger:
        """A stored ledger; anything unreadable (an older format) starts afresh."""
        if not isinstance(value, dict):
            return cls()
        try:
            request = value.get("request")
            canary = value.get("canary")
            return cls(
                Request(**request) if isinstance(request, dict) else None,
                Canary(**canary) if isinstance(canary, dict) else None,
                int(value.get("next_file", 0)),
                [str(p) for p in value.get("evicted", []) if isinstance(p, str)],
            )
        except (TypeError, ValueError):
            return cls()


def ledger_key(target: Target) -> str:
    """Stable across restarts and reloads: the endpoint's identity and URL."""
    return f"{target.site}/{target.endpoint} {target.url}"


def load(state: StateStore, target: Target) -> Ledger:
    return Ledger.from_json(state.get(SCOPE, ledger_key(target)))


def save(state: StateStore, target: Target, ledger: Ledger) -> None:
    state.put(SCOPE, ledger_key(target), ledger.to_json())
