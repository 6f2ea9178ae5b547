"""The fixity probe's canary inventory: per endpoint, each canary's path, size and adler32
(the truth), when it was written and last verified, and the state that verification found.
Kept in the daemon's state store, so a restart neither rewrites the canaries nor forgets a
loss it reported. Times are unix seconds; no secrets (the file is plain).

Canary names: <test_dir>/lakeprobe-canary-<host>-<endpoint>-<index>-<size>. The endpoint is in
the name because a site's root:// and davs:// endpoints often share one namespace: without it,
each endpoint's canaries would overwrite the other's. The sweep deletes only names
ending in -<epoch>-<32 hex digits> (probes/core/testfiles.py), which a size of at most 8
digits never is, so no probe's sweep ever deletes a canary, and the fixity probe deletes
nothing at all."""

from __future__ import annotations

import enum
import posixpath
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import PREFIX, safe_host

SCOPE = "fixity"


class CanaryState(enum.StrEnum):
    """What the last verification of a canary found (the `state` label of the counts)."""

    UNVERIFIED = "unverified"  # written or configured, not yet read back
    OK = "ok"
    CORRUPTED = "corrupted"  # bytes or size differ from the truth
    STALE = "stale"  # bytes intact, the server's checksum disagrees with them
    LOST = "lost"  # not there


@dataclass(frozen=True, slots=True)
class Canary:
    path: str
    size: int | None  # None: a reference file whose size is learned on its first read
    adler32: str | None  # None: a reference file without a configured checksum, until read
    written_at: float  # or, for a reference file, when it was first listed
    verified_at: float | None = None
    state: CanaryState = CanaryState.UNVERIFIED
    reference: bool = False  # configured, not written by the probe: never re-created

    def checked(self, state: CanaryState, now: float) -> Canary:
        return replace(self, state=state, verified_at=now)


@dataclass(slots=True)
class Ledger:
    canaries: list[Canary] = field(default_factory=list)
    next_index: int = 0  # where the rotation resumes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Ledger:
        """A stored ledger; anything unreadable (an older format) starts afresh."""
        if not isinstance(value, dict):
            return cls()
        try:
            canaries = [
                Canary(**{**item, "state": CanaryState(item["state"])})
                for item in value.get("canaries", [])
            ]
            return cls(canaries, int(value.get("next_index", 0)))
        except (TypeError, ValueError, KeyError):
            return cls()

    def oldest_verification(self) -> float | None:
        """The unix time of the least recently verified canary (its writing, if never)."""
        times = [c.verified_at or c.written_at for c in self.canaries]
        return min(times, default=None)

    def counts(self) -> dict[CanaryState, int]:
        return {state: sum(c.state is state for c in self.canaries) for state in CanaryState}


def canary_path(test_dir: str, probe_host: str, endpoint: str, index: int, size: int) -> str:
    owner = f"{safe_host(probe_host)}-{safe_host(endpoint)}"
    return posixpath.join(test_dir, f"{PREFIX}canary-{owner}-{index}-{size}")


def ledger_key(target: Target) -> str:
    """Stable across restarts and reloads: the endpoint's identity and URL."""
    return f"{target.site}/{target.endpoint} {target.url}"


def load(state: StateStore, target: Target) -> Ledger:
    return Ledger.from_json(state.get(SCOPE, ledger_key(target)))


def save(state: StateStore, target: Target, ledger: Ledger) -> None:
    state.put(SCOPE, ledger_key(target), ledger.to_json())


def reconcile(ledger: Ledger, wanted: list[Canary]) -> list[Canary]:
    """Keep the stored canaries that are still wanted (same path, size and kind; a reference
    file's configured checksum unchanged) and add the missing ones, in the wanted order.
    Canaries no longer wanted (sizes or test_dir changed) are forgotten, not deleted."""
    stored = {c.path: c for c in ledger.canaries}
    kept = []
    for want in wanted:
        have = stored.get(want.path)
        same = have is not None and have.reference == want.reference
        if same and have is not None and not want.reference:
            same = have.size == want.size
        if same and have is not None and want.reference and want.adler32 is not None:
            same = have.adler32 == want.adler32
        kept.append(have if same and have is not None else want)
    return kept
