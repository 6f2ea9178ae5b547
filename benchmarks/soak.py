"""Benchmark: a soak of the real daemon with xrootd targets; RSS, threads and fds over time.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--targets 250] [--sites 2]

Two `lakeprobe serve` processes run side by side, at the same time, against the same local
lake (LocalLake, 127.0.0.1): `contained` as shipped, and `leaking` with the containment of
probes/clients/xrdleak.py switched off in that process only (the binding's leak as before).
Each probes `--targets` xrootd endpoints (the lake's sites under distinct test directories)
every `--interval` seconds. Every 10 s: RSS (VmRSS, in MiB = 2**20 bytes), threads and open
fds of each daemon, and its runs so far (lakeprobe_probe_runs_total from /metrics). Reported:
the RSS slope after the first interval (least squares), in KiB per minute and per run.
Results: benchmarks/RESULTS.md ("Soak").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakeprobe.lake import LocalLake, free_ports

SAMPLE_SECONDS = 10.0
LEAKING = (  # the same daemon with the containment switched off (xrdleak.SWITCH)
    "import os, sys; os.environ['LAKEPROBE_XRD_LEAK_CONTAINMENT'] = 'off'; "
    "from lakeprobe.cli.main import main; sys.exit(main())"
)
CONTAINED = "import sys; from lakeprobe.cli.main import main; sys.exit(main())"
RUNS = re.compile(r'^lakeprobe_probe_runs_total\{[^}]*probe="xrootd"[^}]*\} (\S+)$', re.M)


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    samples: list[tuple[float, float, int, int, float]] = field(default_factory=list)

    def sample(self, elapsed: float) -> None:
        """(seconds, RSS MiB, threads, fds, runs)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) / 1024
        fds = len(os.listdir(f"/proc/{self.process.pid}/fd"))
        self.samples.append((elapsed, rss, int(fields["Threads"]), fds, self.runs()))

    def runs(self) -> float:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return sum(float(value) for value in RUNS.findall(text))


def config(lake: LocalLake, name: str, targets: int, port: int, interval: float) -> dict[str, Any]:
    sites = []
    per_site = -(-targets // len(lake.sites))
    for site in lake.sites:
        endpoints = []
        for n in range(per_site):
            test_dir = f"{lake.test_dir}/{name}{n}"
            site.make_dir(test_dir, writable=True)
            endpoints.append({"name": f"root{n}", "url": site.root_url, "test_dir": test_dir})
        for group in range(0, len(endpoints), 50):
            chunk = endpoints[group : group + 50]
            sites.append({"name": f"{site.name}-{group // 50}", "endpoints": chunk})
    return {
        "server": {"listen": f"127.0.0.1:{port}", "probe_host": f"soak-{name}"},
        "defaults": {"interval": interval, "timeout": 30, "max_concurrent_runs": 32},
        "sites": sites,
        "probes": [{"name": "xrootd", "type": "xrootd"}],
    }


@contextlib.contextmanager
def daemons(lake: LocalLake, workdir: Path, args: argparse.Namespace) -> Iterator[list[Daemon]]:
    started = []
    try:
        for name, code in (("contained", CONTAINED), ("leaking", LEAKING)):
            port = free_ports(1)[0]
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config(lake, name, args.targets, port, args.interval)))
            log = (workdir / f"{name}.log").open("wb")
            command = [sys.executable, "-c", code, "serve", "-c", str(path)]
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            started.append(Daemon(name, process, port))
        yield started
    finally:
        for daemon in started:
            daemon.process.terminate()
            daemon.process.wait(30)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def report(daemon: Daemon, skip: float) -> None:
    steady = [s for s in daemon.samples if s[0] >= skip]
    if len(steady) < 3:
        print(f"{daemon.name}: too few samples")
        return
    kib_per_min = slope([(s[0] / 60, s[1] * 1024) for s in steady])
    kib_per_run = slope([(s[4], s[1] * 1024) for s in steady])
    first, last = steady[0], steady[-1]
    print(f"{daemon.name:9}: RSS {first[1]:.1f} -> {last[1]:.1f} MiB over "
          f"{(last[0] - first[0]) / 60:.1f} min, {last[4] - first[4]:.0f} runs; slope "
          f"{kib_per_min:.1f} KiB/min, {kib_per_run:.2f} KiB/run; threads {first[2]}->{last[2]}, "
          f"fds {first[3]}->{last[3]}")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        LocalLake(args.sites) as lake,
        daemons(lake, Path(tmp), args) as running,
    ):
        time.sleep(5)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            for daemon in running:
                with contextlib.suppress(OSError):  # /metrics not up yet
                    daemon.sample(elapsed)
            line = "  ".join(f"{d.name} {d.samples[-1][1]:.1f} MiB {d.samples[-1][4]:.0f} runs"
                             for d in running if d.samples)  # fmt: skip
            print(f"{elapsed / 60:5.1f} min  {line}", flush=True)
            time.sleep(SAMPLE_SECONDS)
        for daemon in running:
            report(daemon, skip=args.interval)


if __name__ == "__main__":
    # Stop cleanly (daemons, lake, its tmpfs) on SIGTERM, and on SIGINT even when started in
    # the background, where SIGINT is ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--targets", type=int, default=250, help="xrootd targets per daemon")
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--interval", type=float, default=60, help="seconds between runs")
    main(parser.parse_args())
