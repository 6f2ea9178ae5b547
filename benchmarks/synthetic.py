"""A synthetic data lake for benchmarks: N sites with one WebDAV endpoint each. Benchmarks only
build plans and results, but the daemon's scheduler runs whatever falls due: every endpoint is
a distinct loopback address on the discard port (nothing listens there), so a run that does
start is refused at once and never leaves the machine, not even for a DNS lookup."""

from __future__ import annotations

import random
import time
from typing import Any

from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult

TPC_STEPS = ("credential", "source", "mkcol", "copy", "verify", "delete")


def loopback(n: int) -> str:
    """The n-th address of 127.0.0.0/8 after 127.0.0.1."""
    return f"127.{(n + 2) // 65536 % 256}.{(n + 2) // 256 % 256}.{(n + 2) % 256}"


def lake_config(sites: int, interval: float = 600, timeout: float = 300) -> dict[str, Any]:
    return {
        "server": {"listen": "127.0.0.1:9780"},
        "defaults": {"interval": interval, "timeout": timeout},
        "sites": [
            {
                "name": f"SITE-{n:03d}",
                "endpoints": [{"name": "webdav", "url": f"davs://{loopback(n)}:9"}],
            }
            for n in range(sites)
        ],
        "probes": [{"name": "http-tpc", "type": "http-tpc", "params": {"modes": ["pull"]}}],
    }


def tpc_result(rng: random.Random) -> ProbeResult:
    """A realistic copy result: mostly OK, some failures with a reason."""
    failed = rng.random() < 0.05
    status = Status.CRITICAL if failed else Status.OK
    reason = (
        rng.choice([Reason.CONNECT, Reason.TPC_FAILURE, Reason.TIMEOUT])
        if failed
        else (Reason.NONE)
    )
    steps = tuple(
        StepResult(
            name,
            status if name == "copy" else Status.OK,
            rng.random(),
            reason if name == "copy" else Reason.NONE,
        )
        for name in TPC_STEPS
    )
    size = 1024 * 1024
    seconds = 0.05 + rng.random()
    measurements = {
        Measurement.TRANSFER_BYTES: float(size),
        Measurement.TRANSFER_THROUGHPUT: size / seconds,
        Measurement.FIRST_MARKER: rng.random() / 10,
    }
    return ProbeResult(status, reason, steps, seconds, time.time(), measurements)
