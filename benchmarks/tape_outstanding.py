"""Benchmark: 100 tape endpoints with recalls outstanding; the daemon's cost and the other
probes' schedule lag.

    .venv/bin/python benchmarks/tape_outstanding.py [--minutes 10] [--tape-endpoints 100]

A local lake (127.0.0.1) of two real XRootD sites: SITE-A emulates tape with every stage
hanging (`hang_stages`), so each recall stays outstanding for the whole run; SITE-B is an
ordinary disk site. A Tape REST double (dCache dialect) in this process fronts SITE-A through
XRootD prepare. Two `lakeprobe serve` processes run side by side, at the same time:

- `tape`: --tape-endpoints tape endpoints on SITE-A, half `protocol: xrootd` (root://), half
  `tape-rest` (the double), each with its own 2 reference files, probed by `tape-recall`
  every --tape-interval s with the polls' backoff capped at --poll-cap s (by default every
  run polls: the busiest case); plus the ordinary targets below.
- `control`: the ordinary targets only: 2 root:// and 2 https:// endpoints on SITE-B,
  probed by `xrootd` and `webdav` every 10 s (timeout 8 s).

Each daemon's start lag per run (due -> slots granted, the value behind
lakeprobe_scheduler_lag_seconds) is written by a hook on ProbeScheduler._on_start installed in
that child process only. Every 10 s: RSS (VmRSS, MiB = 2**20 bytes), CPU (user+sys from
/proc/PID/stat), threads and open fds of each daemon, the size and row count of its state
store (server.state_dir) and its tape-recall runs. At the end: the ledgers (one request per
endpoint, polls so far) and the stage requests the tape site and the double received.
Results: benchmarks/RESULTS.md ("Tape recalls outstanding").
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from soak import slope

from lakeprobe.lake import LocalLake, TapeEmulation, free_ports
from lakeprobe.lake.taperest import TapeRestDouble
from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend

SAMPLE_SECONDS = 10.0
ORDINARY_INTERVAL = 10.0
ORDINARY = ("xrootd", "webdav")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
# The daemon, with each run's start lag appended to the file named by argv[1] (child only).
HOOKED = """
import sys, time
from lakeprobe.service.scheduler import ProbeScheduler
out = open(sys.argv.pop(1), "a", buffering=1)
original = ProbeScheduler._on_start
def _on_start(self, job, lag):
    original(self, job, lag)
    out.write(f"{time.monotonic():.3f} {job.key.probe} {lag:.6f}\\n")
ProbeScheduler._on_start = _on_start
from lakeprobe.cli.main import main
sys.exit(main())
"""
TAPE_RUNS = re.compile(r'^lakeprobe_probe_runs_total\{[^}]*probe="tape-recall"[^}]*\} (\S+)$', re.M)


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    rss_mib: float
    cpu_seconds: float
    threads: int
    fds: int
    state_bytes: int  # the database file
    wal_bytes: int  # its write-ahead log (reused after each checkpoint, 1000 pages)
    state_rows: int
    tape_runs: float


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    samples: list[Sample] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.workdir / f"{self.name}-state" / "state.sqlite"

    def sample(self, elapsed: float) -> None:
        if self.process.poll() is not None:
            tail = (self.workdir / f"{self.name}.log").read_text()[-3000:]
            raise SystemExit(f"{self.name} exited {self.process.returncode}:\n{tail}")
        pid = self.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / CLOCK_TICK  # utime + stime
        files = [self.state_file, self.state_file.with_name("state.sqlite-wal")]
        db, wal = (path.stat().st_size if path.exists() else 0 for path in files)
        self.samples.append(
            Sample(
                elapsed,
                int(fields["VmRSS"].split()[0]) / 1024,
                cpu,
                int(fields["Threads"]),
                len(os.listdir(f"/proc/{pid}/fd")),
                db,
                wal,
                len(self.ledgers()),
                self.tape_runs(),
            )
        )

    def tape_runs(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as reply:
            return sum(float(v) for v in TAPE_RUNS.findall(reply.read().decode()))

    def ledgers(self) -> dict[str, Any]:
        """The state store's records (read-only; the daemon keeps writing)."""
        if not self.state_file.exists():
            return {}
        with contextlib.closing(sqlite3.connect(f"file:{self.state_file}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT scope, key, value FROM record").fetchall()
        return {f"{scope} {key}": json.loads(value) for scope, key, value in rows}

    def lags(self) -> list[tuple[float, str, float]]:
        text = (self.workdir / f"{self.name}.lags").read_text()
        return [
            (float(t), probe, float(lag)) for t, probe, lag in map(str.split, text.split("\n")[:-1])
        ]


def tape_endpoints(
    lake: LocalLake, tape: TapeEmulation, api: TapeRestDouble, args: argparse.Namespace
) -> list[dict[str, Any]]:
    site, endpoints = lake.sites[0], []
    for n in range(args.tape_endpoints):
        files = []
        for i in range(2):
            path, data = f"/tape/bench/e{n}/f{i}", f"reference {n}.{i}\n".encode() * 1000
            tape.put_on_tape(path, data)
            files.append({"path": path, "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"})
        qos: dict[str, Any] = {"files": files, "poll_max_interval": args.poll_cap}
        if n % 2:
            qos |= {"protocol": "tape-rest", "rest_api": api.api_uri}
            url = site.https_url
        else:
            qos |= {"protocol": "xrootd"}
            url = site.root_url
        endpoints.append(
            {"name": f"tape{n}", "url": url, "ca_dir": str(lake.pki.ca_dir), "tape": qos}
        )
    return endpoints


def config(
    lake: LocalLake,
    name: str,
    port: int,
    workdir: Path,
    tape: list[dict[str, Any]],
    interval: float,
) -> dict[str, Any]:
    disk = lake.sites[1]
    ordinary = []
    for n in range(2):
        test_dir = f"{lake.test_dir}/{name}{n}"
        disk.make_dir(test_dir, writable=True)
        ca = str(lake.pki.ca_dir)
        ordinary += [
            {"name": f"root{n}", "url": disk.root_url, "test_dir": test_dir},
            {"name": f"web{n}", "url": disk.https_url, "test_dir": test_dir, "ca_dir": ca},
        ]
    sites = [{"name": disk.name, "endpoints": ordinary}]
    sites += [
        {"name": f"TAPE-{i // 25}", "endpoints": tape[i : i + 25]} for i in range(0, len(tape), 25)
    ]
    fast = {"interval": ORDINARY_INTERVAL, "timeout": 8, "targets": {"sites": [disk.name]}}
    probes: list[dict[str, Any]] = [{"name": p, "type": p, **fast} for p in ORDINARY]
    if tape:
        probes.append(
            {
                "name": "tape-recall",
                "type": "tape-recall",
                "interval": interval,
                "timeout": min(30.0, interval),
            }
        )
    return {
        "server": {
            "listen": f"127.0.0.1:{port}",
            "probe_host": f"bench-{name}",
            "state_dir": str(workdir / f"{name}-state"),
        },
        "sites": sites,
        "probes": probes,
    }


@contextlib.contextmanager
def daemons(
    lake: LocalLake, workdir: Path, tape: list[dict[str, Any]], interval: float
) -> Iterator[list[Daemon]]:
    started = []
    try:
        for name, endpoints in (("control", []), ("tape", tape)):
            port = free_ports(1)[0]
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config(lake, name, port, workdir, endpoints, interval)))
            log = (workdir / f"{name}.log").open("wb")
            lags = str(workdir / f"{name}.lags")
            command = [sys.executable, "-c", HOOKED, lags, "serve", "-c", str(path)]
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            started.append(Daemon(name, process, port, workdir))
        yield started
    finally:
        for daemon in started:
            daemon.process.terminate()
            daemon.process.wait(30)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report_resources(daemon: Daemon, seconds: float) -> None:
    samples, half = daemon.samples, seconds / 2
    late = [s for s in samples if s.seconds >= half]
    cores = [
        (b.cpu_seconds - a.cpu_seconds) / (b.seconds - a.seconds)
        for a, b in itertools.pairwise(samples)
    ]
    late_cores = cores[-len(late) + 1 :] if len(late) > 1 else cores
    print(
        f"{daemon.name}: CPU {samples[-1].cpu_seconds - samples[0].cpu_seconds:.1f} s over "
        f"{(samples[-1].seconds - samples[0].seconds) / 60:.1f} min; per 10 s: median "
        f"{statistics.median(cores):.3f} core, max {max(cores):.3f}, second half median "
        f"{statistics.median(late_cores):.3f}, slope "
        f"{slope([(s.seconds / 60, c) for s, c in zip(samples[1:], cores, strict=True)]):+.4f}"
        f" core/min"
    )
    for label, get in (
        ("RSS MiB", lambda s: s.rss_mib),
        ("threads", lambda s: s.threads),
        ("fds", lambda s: s.fds),
        ("state KiB", lambda s: s.state_bytes / 1024),
        ("WAL KiB", lambda s: s.wal_bytes / 1024),
        ("state rows", lambda s: s.state_rows),
    ):
        values, second = [get(s) for s in samples], [get(s) for s in late]
        print(
            f"  {label}: start {values[0]:.1f}, max {max(values):.1f}, end {values[-1]:.1f}, "
            f"second half {min(second):.1f}..{max(second):.1f}"
        )
    kib = slope([(s.seconds / 60, s.rss_mib * 1024) for s in late])
    runs = late[-1].tape_runs - late[0].tape_runs
    per_run = kib * (late[-1].seconds - late[0].seconds) / 60 / runs if runs else float("nan")
    print(
        f"  RSS slope, second half: {kib:+.1f} KiB/min ({per_run:+.3f} KiB per tape-recall "
        f"run); tape-recall runs {samples[-1].tape_runs:.0f}"
    )


def report_lags(daemon: Daemon, start: float, warm: float) -> None:
    lags = [(t - start, probe, lag) for t, probe, lag in daemon.lags()]
    for probe in (*ORDINARY, "tape-recall"):
        every = [lag for _, p, lag in lags if p == probe]
        if not every:
            continue
        steady = [lag for t, p, lag in lags if p == probe and t >= warm]
        print(
            f"  lag {probe}: {len(every)} runs, p50 {quantile(every, 0.5) * 1000:.1f} ms, "
            f"p99 {quantile(every, 0.99) * 1000:.1f} ms, max {max(every) * 1000:.1f} ms; "
            f"after {warm:.0f} s p99 {quantile(steady, 0.99) * 1000:.1f} ms"
        )


def report_tape(daemon: Daemon, tape: TapeEmulation, api: TapeRestDouble) -> None:
    requests = [v["request"] for k, v in daemon.ledgers().items() if k.startswith("tape-recall ")]
    held = [r for r in requests if r]
    polls = [r["polls"] for r in held]
    print(
        f"  ledgers: {len(requests)}, requests outstanding {len(held)}, polls per request "
        f"min/median/max {min(polls, default=0)}/{quantile(polls, 0.5):.0f}/"
        f"{max(polls, default=0)}; "
        f"stage requests received: tape site {len(tape.stage_requests_seen())}, "
        f"Tape REST double open {len(api.open_requests())}"
    )


def main(args: argparse.Namespace) -> None:
    seconds = args.minutes * 60
    with (
        tempfile.TemporaryDirectory(prefix="lakeprobe-tape-bench-") as tmp,
        LocalLake(2, base_dir=Path(tmp) / "lake", tape_sites=["SITE-A"]) as lake,
    ):
        tape = lake.sites[0].tape
        assert tape is not None
        tape.hang_stages = True
        backend = XrootdPrepareBackend(lake.sites[0].root_url)
        with TapeRestDouble(lake.pki, backend, "dcache") as api:
            endpoints = tape_endpoints(lake, tape, api, args)
            with daemons(lake, Path(tmp), endpoints, args.tape_interval) as running:
                time.sleep(5)
                start = time.monotonic()
                while (elapsed := time.monotonic() - start) < seconds:
                    for daemon in running:
                        with contextlib.suppress(OSError, sqlite3.Error):  # not up yet
                            daemon.sample(elapsed)
                    print(
                        f"{elapsed / 60:5.1f} min  "
                        + "  ".join(
                            f"{d.name} {d.samples[-1].rss_mib:.1f} MiB "
                            f"{d.samples[-1].cpu_seconds:.1f} s CPU"
                            for d in running
                            if d.samples
                        ),
                        flush=True,
                    )
                    time.sleep(SAMPLE_SECONDS - (time.monotonic() - start) % SAMPLE_SECONDS)
                for daemon in running:
                    report_resources(daemon, seconds)
                    report_lags(daemon, start, args.tape_interval)
                report_tape(running[1], tape, api)


if __name__ == "__main__":
    # Stop cleanly (daemons, lake, its tmpfs) on SIGTERM, and on SIGINT in the background too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--tape-endpoints", type=int, default=100)
    parser.add_argument("--tape-interval", type=float, default=30, help="seconds between runs")
    parser.add_argument("--poll-cap", type=float, default=30, help="tape poll_max_interval, s")
    main(parser.parse_args())
