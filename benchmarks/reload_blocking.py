"""Benchmark: how long a reload of a 150-site config (22,350 pairs) blocks the event loop.

    .venv/bin/python benchmarks/reload_blocking.py [--sites 150] [--reloads 5]

Side by side in one process: the reload as the daemon does it (read, validate and plan in a
worker thread, then apply on the loop: Daemon.reload_async) and the same work done inline on
the loop, as before (Daemon._prepare called on the loop, then the same apply). A ticker task
measures the loop's longest stall while each reload runs (a tick every 5 ms), which is what a
concurrent /metrics request waits at most. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import lake_config

from lakeprobe.config import load_config
from lakeprobe.service.daemon import Daemon

TICK = 0.005


async def longest_stall(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(wall seconds of `work`, longest gap between loop ticks meanwhile)."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            worst = max(worst, now - last - TICK)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(TICK * 2)
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    done.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed, worst


async def main(sites: int, reloads: int, workdir: Path) -> None:
    path = workdir / "lake.yaml"
    path.write_text(yaml.safe_dump(lake_config(sites)))
    daemon = Daemon(path, load_config(path))
    daemon.start()
    print(f"sites={sites} targets={len(daemon.store)}")

    async def threaded() -> None:
        assert await daemon.reload_async() == []

    async def inline() -> None:
        config, jobs = daemon._prepare()  # the old way: all of it on the event loop
        daemon._apply(config, jobs)

    results: dict[str, list[tuple[float, float]]] = {"worker thread": [], "inline": []}
    for _ in range(reloads):  # interleaved, so both see the same machine load
        results["worker thread"].append(await longest_stall(threaded))
        results["inline"].append(await longest_stall(inline))
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        stall = statistics.median(r[1] for r in runs)
        print(f"{name:14} reload median {wall:.3f} s, longest loop stall median {stall:.3f} s "
              f"(max {max(r[1] for r in runs):.3f} s)")  # fmt: skip
    await daemon.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--reloads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.sites, args.reloads, Path(tmp)))
