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


def lake_config(
    sites: int, interval: float = 600, timeout: float = 300, network: bool = False
) -> dict[str, Any]:
    """`sites` sites with one WebDAV endpoint each and the http-tpc matrix (pull); with
    `network`, also a perfSONAR archive per site and the perfsonar probe over IPv4 and IPv6:
    a network series per ordered pair and IP version."""
    config: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:9780"},
        "defaults": {"interval": interval, "timeout": timeout},
        "sites": [
            {
                "name": f"SITE-{n:03d}",
                "endpoints": [{"name": "webdav", "url": f"davs://{loopback(n)}:9"}]
                + (_archive(n) if network else []),
            }
            for n in range(sites)
        ],
        "probes": [{"name": "http-tpc", "type": "http-tpc", "params": {"modes": ["pull"]}}],
    }
    if network:
        config["probes"].append({"name": "perfsonar", "type": "perfsonar"})
    return config


def _archive(n: int) -> list[dict[str, Any]]:
    block = {"bandwidth_hosts": [f"ps-bw.site-{n:03d}.example"],
             "latency_hosts": [f"ps-lat.site-{n:03d}.example"]}  # fmt: skip
    return [{"name": "perfsonar", "url": f"https://{loopback(n)}:10", "perfsonar": block}]


NETWORK_STEPS = ("credential", "throughput", "latency", "trace", "freshness")


def network_result(rng: random.Random) -> ProbeResult:
    """A perfsonar result: mostly fresh and fine, some stale (no throughput, no loss)."""
    stale = rng.random() < 0.05
    status, reason = (
        (Status.WARNING, Reason.MEASUREMENT_STALE) if stale else (Status.OK, Reason.NONE)
    )
    steps = tuple(StepResult(name, Status.OK, rng.random() / 10) for name in NETWORK_STEPS)
    measurements = {} if stale else {
        Measurement.NETWORK_THROUGHPUT: 9e9 * rng.random(),
        Measurement.NETWORK_RETRANSMITS: float(rng.randrange(100)),
        Measurement.NETWORK_LOSS: rng.random() / 1000,
        Measurement.NETWORK_LATENCY: rng.random() / 10,
        Measurement.NETWORK_HOPS: float(rng.randrange(4, 20)),
        Measurement.NETWORK_MEASURED_AT: time.time() - rng.random() * 3600,
    }  # fmt: skip
    return ProbeResult(status, reason, steps, rng.random(), time.time(), measurements)


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
