"""Benchmark: render /metrics for a synthetic 150-site lake (22,350 ordered pairs, every
matrix series populated) and report the daemon's resident memory.

    .venv/bin/python benchmarks/matrix_metrics.py [--sites 150] [--repeat 5] [--network]

With --network every site also has a perfSONAR archive and the perfsonar probe runs over
IPv4 and IPv6: 2 x 22,350 network series sets beside the transfer matrix. With
--shard i/N, one replica of a sharded central install (the Helm chart's StatefulSet).

The daemon object is built for real (config validation, plan, scheduler, results store);
only the probe runs are synthetic. Times are the process's CPU time (user + sys): the machine
is shared. The daemon is started by serve(), as `lakeprobe serve` starts it, and serves
/metrics throughout; last, curl (another process) scrapes it over HTTP with every pair new: the
daemon's CPU for that scrape and its peak RSS. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import lake_config, network_result, tpc_result

from lakeprobe.config import load_config
from lakeprobe.config.pairs import NetworkKey
from lakeprobe.lake import free_ports
from lakeprobe.probes.core.outcome import ProbeResult
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.server import serve


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(function: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()  # type: ignore[operator]
        times.append(time.process_time() - started)
    return times


def renew(daemon: Daemon, rng: random.Random, share: float = 1.0) -> None:
    """A new result for `share` of the pairs, as if they ran since the last scrape."""
    keys = [key for key, _ in daemon.store.items()]
    for key in rng.sample(keys, int(len(keys) * share)):
        daemon.store.record(key, _result(key, rng))


def _result(key: object, rng: random.Random) -> ProbeResult:
    return network_result(rng) if isinstance(key, NetworkKey) else tpc_result(rng)


async def http_scrape(daemon: Daemon) -> tuple[float, float, int]:
    """Let curl fetch /metrics once: the daemon's CPU and wall time, bytes."""
    url = f"http://{daemon.config.server.listen}/metrics"
    cpu, wall = time.process_time(), time.perf_counter()
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await curl.communicate()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, int(out or 0)


async def serving(daemon: Daemon, stop: asyncio.Event) -> asyncio.Task[None]:
    """The daemon as `lakeprobe serve` runs it: serve() starts it (plans and schedules every
    pair) and serves /metrics. Returns once it is started."""
    task = asyncio.create_task(serve(daemon, stop))
    while not daemon.started:
        if task.done():
            task.result()  # serve() failed: raise its error
        await asyncio.sleep(0.05)
    return task


async def main(sites: int, repeat: int, workdir: Path, network: bool, shard: str | None) -> None:
    config_path = workdir / "lake.yaml"
    config = lake_config(sites, network=network)
    config["server"]["listen"] = f"127.0.0.1:{free_ports(1)[0]}"
    config_path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    daemon = Daemon(config_path, load_config(config_path), shard=shard)
    stop = asyncio.Event()
    server = await serving(daemon, stop)  # first runs are far ahead; the few due fail at once
    print(f"sites={sites} targets={len(daemon.store)} start={time.perf_counter() - started:.2f}s")

    def scrape() -> int:
        """What the /metrics handler does, minus the socket: render each chunk, then let go."""
        return sum(len(chunk) for chunk in daemon.metrics_chunks())

    rng = random.Random(1)
    for key, _ in daemon.store.items():
        daemon.store.record(key, _result(key, rng))
    gc.collect()
    first = timed(scrape, 1)  # empty cache: every target rendered
    size = scrape()
    lines = sum(chunk.count(b"\n") for chunk in daemon.metrics_chunks())
    print(f"/metrics: {size / 1e6:.1f} MB, {lines} lines")
    warm = timed(scrape, repeat)
    renew(daemon, rng, 0.1)  # a tenth of the pairs ran since
    partial = timed(scrape, 1)
    renewed = []
    for _ in range(repeat):  # every pair ran since the last scrape
        renew(daemon, rng)
        renewed += timed(scrape, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render CPU, first scrape (every target new, nothing cached): {first[0]:.3f} s")
    print(f"render CPU, every target new since the last scrape (median of {repeat}): "
          f"{statistics.median(renewed):.3f} s")  # fmt: skip
    print(f"render CPU, 10% of targets new: {partial[0]:.3f} s")
    print(f"render CPU, unchanged (median of {repeat}): {statistics.median(warm):.3f} s")
    print(f"RSS {rss_mib():.0f} MiB (peak {peak:.0f} MiB)")
    idle = time.process_time()
    await asyncio.sleep(1)  # the runs that fall due meanwhile (they fail at once): background
    idle = time.process_time() - idle
    renew(daemon, rng)
    print(f"RSS before the HTTP scrape {rss_mib():.0f} MiB; daemon CPU idle {idle:.3f} s/s")
    cpu, wall, size = await http_scrape(daemon)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"HTTP scrape by curl, every target new: daemon CPU {cpu:.3f} s, {wall:.3f} s wall, "
          f"{size / 1e6:.1f} MB")  # fmt: skip
    print(f"RSS {rss_mib():.0f} MiB (peak {peak:.0f} MiB = {peak * 1.048576:.0f} MB)")
    stop.set()
    await server  # stops the daemon


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--network", action="store_true", help="add the perfsonar matrix")
    parser.add_argument("--shard", help="'i/N': one replica of a sharded central install")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the few runs that fall due fail at once
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.sites, args.repeat, Path(tmp), args.network, args.shard))
