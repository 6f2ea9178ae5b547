"""Benchmark: render /metrics for a synthetic 150-site lake (22,350 ordered pairs, every
matrix series populated) and report the daemon's resident memory.

    .venv/bin/python benchmarks/matrix_metrics.py [--sites 150] [--repeat 5]

The daemon object is built for real (config validation, plan, APScheduler jobs, results store);
only the probe runs are synthetic. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import lake_config, tpc_result

from lakeprobe.config import load_config
from lakeprobe.service.daemon import Daemon


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(function: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


async def main(sites: int, repeat: int, workdir: Path) -> None:
    config_path = workdir / "lake.yaml"
    config_path.write_text(yaml.safe_dump(lake_config(sites)))
    started = time.perf_counter()
    daemon = Daemon(config_path, load_config(config_path))
    daemon.start()  # validates, plans and schedules every pair (first runs are far ahead)
    print(f"sites={sites} targets={len(daemon.store)} start={time.perf_counter() - started:.2f}s")

    def scrape() -> int:
        """What the /metrics handler does, minus the socket: render each chunk, then let go."""
        return sum(len(chunk) for chunk in daemon.metrics_chunks())

    rng = random.Random(1)
    for key, _ in daemon.store.items():
        daemon.store.record(key, tpc_result(rng))
    gc.collect()
    first = timed(scrape, 1)  # empty cache: every target rendered
    size = scrape()
    lines = sum(chunk.count(b"\n") for chunk in daemon.metrics_chunks())
    print(f"/metrics: {size / 1e6:.1f} MB, {lines} lines")
    warm = timed(scrape, repeat)
    keys = [key for key, _ in daemon.store.items()]
    for key in rng.sample(keys, len(keys) // 10):  # a tenth of the pairs ran since
        daemon.store.record(key, tpc_result(rng))
    partial = timed(scrape, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render, every target new: {first[0]:.3f} s")
    print(f"render, 10% of targets new: {partial[0]:.3f} s")
    print(f"render, unchanged (median of {repeat}): {statistics.median(warm):.3f} s")
    print(f"RSS {rss_mib():.0f} MiB (peak {peak:.0f} MiB)")
    await daemon.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.sites, args.repeat, Path(tmp)))
