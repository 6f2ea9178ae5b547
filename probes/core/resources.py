"""What outlives a probe run: owned by the daemon (or one CLI run), handed to probes through
the context. Probe modules keep no mutable state of their own.

- `threads`: the copy threads (probes/core/threads.py), shared by every copy probe.
- `oidc`: OIDC clients by settings, so issued tokens are reused across runs and reloads.
- `notices`: warnings given once per owner (a configuration fact that will not change).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lakeprobe.probes.core.payloads import Payloads
from lakeprobe.probes.core.serverlocks import ServerLocks
from lakeprobe.probes.core.threads import BlockingThreads
from lakeprobe.probes.credentials.oidcclients import OidcClients


class Notices:
    """Remembers which one-time warnings were given (keys chosen by the caller)."""

    def __init__(self) -> None:
        self._given: set[str] = set()
        self._lock = threading.Lock()  # copy threads may warn too

    def first(self, key: str) -> bool:
        """True the first time `key` is seen."""
        with self._lock:
            if key in self._given:
                return False
            self._given.add(key)
            return True


@dataclass(slots=True)
class ProbeResources:
    """What every run of this process shares: threads, OIDC clients, notices, locks."""

    threads: BlockingThreads = field(default_factory=BlockingThreads)
    oidc: OidcClients = field(default_factory=OidcClients)
    notices: Notices = field(default_factory=Notices)
    # One test at a time per server (iperf3): shared by every run of this process.
    server_locks: ServerLocks = field(default_factory=ServerLocks)
    # Large test-file buffers, reused across runs (payloads.py).
    payloads: Payloads = field(default_factory=Payloads)

    def close(self) -> None:
        """Copy threads stop taking work (busy ones finish on their own)."""
        self.threads.shutdown()
