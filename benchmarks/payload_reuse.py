"""Benchmark: the webdav probe's PUT rate with its payload in a buffer reused across runs
(the daemon's ProbeResources, probes/core/payloads.py) against a new buffer every run (a
Payloads that keeps nothing: what every run did before), 1 GiB, nginx dav over https on
loopback with its data on tmpfs (no disk in the way), interleaved rounds. curl's PUT of the
same size runs in every round too, for the ratio.

    .venv/bin/python benchmarks/data_path.py ...            # the probe against curl, per endpoint
    .venv/bin/python benchmarks/payload_reuse.py [--rounds 6] [--size-mib 1024]

Rates are MiB/s as the probe reports them (Measurement.WRITE_THROUGHPUT); medians.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
from pathlib import Path

from data_path import MIB, TEST_DIR, Endpoint, curl

from lakeprobe.lake.nginxdav import NginxDav
from lakeprobe.probes.core.outcome import Measurement
from lakeprobe.probes.core.payloads import Payloads
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

LOG = logging.getLogger("bench.payload_reuse")


def put_rate(endpoint: Endpoint, size: int, resources: ProbeResources) -> float:
    target = Target("BENCH", endpoint.name, endpoint.url, TEST_DIR, ca_dir=endpoint.ca_dir)
    params = WebdavParams(file_size_bytes=size)
    outcome = asyncio.run(
        run_probe(
            PROBE_TYPE, target, params, timeout=600, probe_host="bench", log=LOG,
            resources=resources,
        )
    )  # fmt: skip
    if not outcome.result.success:
        raise RuntimeError(f"probe failed: {outcome.result.reason} {outcome.result.detail}")
    return outcome.result.measurements[Measurement.WRITE_THROUGHPUT] / MIB


def main(rounds: int, size: int) -> None:
    """On tmpfs: the server's writes cost memory bandwidth, not a disk's seek and flush."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        compare(Path(tmp), rounds, size)


def compare(work: Path, rounds: int, size: int) -> None:
    reused, new = ProbeResources(), ProbeResources(payloads=Payloads(keep_bytes=0))
    rates: dict[str, list[float]] = {"curl": [], "new buffer": [], "reused buffer": []}
    with NginxDav(work / "nginx") as nginx:
        nginx.make_dir(TEST_DIR)
        endpoint = Endpoint("nginx-https", nginx.https_url, nginx.pki.ca_dir)
        source = work / "source"
        with source.open("wb") as handle:
            for _ in range(-(-size // (64 * MIB))):
                handle.write(os.urandom(min(size, 64 * MIB)))
            handle.truncate(size)
        put_rate(endpoint, size, reused)  # the first lease allocates: not a sample
        for turn in range(rounds):
            order = ["curl", "new buffer", "reused buffer"]
            for name in order[turn % 3 :] + order[: turn % 3]:
                if name == "curl":
                    rates[name].append(curl(endpoint, "PUT", f"{TEST_DIR}/curl", source, size)[0])
                else:
                    resources = reused if name == "reused buffer" else new
                    rates[name].append(put_rate(endpoint, size, resources))
            print(f"round {turn}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
    for name, got in rates.items():
        print(f"{name}: median {statistics.median(got):.0f} MiB/s of {[round(r) for r in got]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    main(args.rounds, args.size_mib * MIB)
