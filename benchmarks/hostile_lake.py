"""Benchmark: one healthy site beside hundreds of hostile endpoints, with the default caps.

    .venv/bin/python benchmarks/hostile_lake.py [--seconds 600] [--per-kind 100]

A local lake of three real XRootD sites: SITE-A healthy, SITE-B and SITE-C frozen with
SIGSTOP (they keep their ports and answer nothing). Beside them, 5 x --per-kind hostile
endpoints from benchmarks/hostile_servers.py (refused, blackhole, tarpit, slowloris,
garbage), half probed over root:// (xrootd), half over https:// (webdav). SITE-A is probed
every 10 s (timeout 8 s); everything else with the shipped defaults (interval 60 s, timeout
30 s), under the default caps (32 runs, 2 per endpoint). The daemon runs in this process
with /metrics served; the hostile servers in another.

Reports, for SITE-A's targets: runs against the expected count, start lag (due -> slots
granted) p50/p99/max over the whole run and after the first interval of the hostile
targets (when every endpoint's standing is known), and missed runs; for the daemon: RSS,
threads and open fds over time, CPU time, /metrics scrape time. Loopback only.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import yaml

from lakeprobe.config import load_config
from lakeprobe.config.plan import ProbeJob
from lakeprobe.lake import LocalLake, free_ports
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.scheduler import ProbeScheduler
from lakeprobe.service.server import serve

HERE = Path(__file__).resolve().parent
HEALTHY_INTERVAL = 10.0
HOSTILE_INTERVAL = 60.0


class RecordingScheduler(ProbeScheduler):
    lags: ClassVar[dict[str, list[tuple[float, float]]]] = defaultdict(list)

    def _on_start(self, job: ProbeJob, lag: float) -> None:
        super()._on_start(job, lag)
        self.lags[job.key.probe].append((time.monotonic(), lag))


def config(lake: LocalLake, ports: dict[str, list[int]], listen: str) -> dict[str, Any]:
    def endpoints(site: Any) -> list[dict[str, Any]]:
        return [
            {"name": "root", "url": site.root_url},
            {"name": "web", "url": site.https_url, "ca_dir": str(lake.pki.ca_dir)},
        ]

    sites = [{"name": s.name, "endpoints": endpoints(s)} for s in lake.sites]
    hostile = []
    for kind, numbers in ports.items():
        for i, port in enumerate(numbers):
            url = f"root://127.0.0.1:{port}" if i % 2 == 0 else f"https://127.0.0.1:{port}"
            hostile.append({"name": f"{kind}-{i}", "endpoints": [{"name": "e", "url": url}]})
    others = [s.name for s in lake.sites[1:]] + [site["name"] for site in hostile]
    fast = {"interval": HEALTHY_INTERVAL, "timeout": 8, "targets": {"sites": ["SITE-A"]}}
    return {
        "server": {"listen": listen, "probe_host": "bench"},
        "defaults": {"interval": HOSTILE_INTERVAL, "timeout": 30},
        "sites": sites + hostile,
        "probes": [
            {"name": "xrootd-healthy", "type": "xrootd", **fast},
            {"name": "webdav-healthy", "type": "webdav", **fast},
            {"name": "xrootd", "type": "xrootd", "targets": {"sites": others}},
            {"name": "webdav", "type": "webdav", "targets": {"sites": others}},
        ],
    }


def proc_status() -> tuple[float, int, int]:
    """RSS in MiB, threads, open fds of this process."""
    rss = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(daemon: Daemon, base: str, seconds: float) -> dict[str, Any]:
    samples, scrapes = [], []
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < seconds:
            samples.append((time.monotonic() - started, *proc_status()))
            begun = time.monotonic()
            async with session.get(f"{base}/metrics") as reply:
                await reply.read()
            scrapes.append(time.monotonic() - begun)
            await asyncio.sleep(5)
    return {"samples": samples, "scrapes": scrapes, "started": started}


def report(daemon: Daemon, measured: dict[str, Any], seconds: float) -> None:
    registry = daemon.registry
    warm = measured["started"] + HOSTILE_INTERVAL
    print(f"duration {seconds:.0f} s, targets {len(daemon.store)}")
    for probe in ("xrootd-healthy", "webdav-healthy"):
        lags = RecordingScheduler.lags[probe]
        steady = [lag for at, lag in lags if at >= warm]
        all_lags = [lag for _, lag in lags]
        missed = {
            cause: registry.get_sample_value(
                "lakeprobe_scheduler_missed_runs_total", {"probe": probe, "cause": cause}
            )
            or 0
            for cause in ("overlap", "no_slot")
        }
        print(
            f"{probe}: runs {len(lags)} (expected ~{seconds / HEALTHY_INTERVAL:.0f}), "
            f"lag all p50 {quantile(all_lags, 0.5):.3f} p99 {quantile(all_lags, 0.99):.3f} "
            f"max {max(all_lags, default=float('nan')):.3f} s; after the first "
            f"{HOSTILE_INTERVAL:.0f} s p99 {quantile(steady, 0.99):.3f} "
            f"max {max(steady, default=float('nan')):.3f} s; missed {missed}"
        )
    hostile_runs = sum(len(v) for k, v in RecordingScheduler.lags.items() if "healthy" not in k)
    print(f"hostile-side runs started: {hostile_runs}")
    for probe in ("xrootd", "webdav"):
        for cause in ("overlap", "no_slot"):
            value = registry.get_sample_value(
                "lakeprobe_scheduler_missed_runs_total", {"probe": probe, "cause": cause}
            )
            print(f"  missed {probe} {cause}: {value or 0:.0f}")
    samples = measured["samples"]
    for label, index in (("RSS MiB", 1), ("threads", 2), ("fds", 3)):
        values = [s[index] for s in samples]
        late = [s[index] for s in samples if s[0] >= seconds / 2]
        print(
            f"{label}: start {values[0]:.0f}, max {max(values):.0f}, end {values[-1]:.0f}, "
            f"second half min/max {min(late):.0f}/{max(late):.0f}"
        )
    scrapes = measured["scrapes"]
    print(f"/metrics: median {statistics.median(scrapes) * 1000:.0f} ms, max "
          f"{max(scrapes) * 1000:.0f} ms over {len(scrapes)} scrapes")  # fmt: skip
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU: {usage.ru_utime + usage.ru_stime:.1f} s "
          f"({(usage.ru_utime + usage.ru_stime) / seconds:.2f} core)")  # fmt: skip


async def run(seconds: float, per_kind: int, workdir: Path) -> None:
    servers = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "hostile_servers.py"), "--per-kind", str(per_kind),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert servers.stdout is not None
        ports = json.loads(await servers.stdout.readline())
        with LocalLake(3, base_dir=workdir / "lake") as lake:
            for site in lake.sites[1:]:
                site.pause()
            listen = f"127.0.0.1:{free_ports(1)[0]}"
            path = workdir / "lakeprobe.yaml"
            path.write_text(yaml.safe_dump(config(lake, ports, listen)))
            daemon = Daemon(path, load_config(path))
            daemon.scheduler = RecordingScheduler(
                daemon.store, daemon.metrics, probe_host="bench",
                max_concurrent=32, max_per_endpoint=2,
            )  # fmt: skip
            stop = asyncio.Event()
            serving = asyncio.create_task(serve(daemon, stop))
            await asyncio.sleep(1)
            measured = await measure(daemon, f"http://{listen}", seconds)
            report(daemon, measured, seconds)
            stop.set()
            await serving
            for site in lake.sites[1:]:
                site.resume()
    finally:
        servers.kill()
        await servers.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--per-kind", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lakeprobe-hostile-") as tmp:
        asyncio.run(run(args.seconds, args.per_kind, Path(tmp)))
