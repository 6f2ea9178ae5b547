"""Benchmark: the xrootd-tpc probe's copy against `xrdcp --tpc only`, and both against the truth.

    .venv/bin/python benchmarks/xrootd_tpc_vs_xrdcp.py [--rounds 8] [--sizes-mib 128 1024]
        [--lake-in /dev/shm] [--pin-sites]

A 2-site local lake (lakeprobe.lake.LocalLake, 127.0.0.1). Per size, the probe uploads its
source file once (a warm-up run), then `--rounds` interleaved rounds of (in even rounds a
control copy, xrdcp, the probe; in odd ones the probe, xrdcp, the control copy):

- `xrdcp --tpc only root://A//<source> root://B//lakeprobe/dst-<n>`: wall time of the process;
- one xrootd-tpc probe run (run_probe, engine xrootd): its TRANSFER_THROUGHPUT (what the
  daemon exports), the transfer time it implies, the copy step's duration, and how many
  destination stats its landing watch (probes/clients/xrdcopy.py) sent;
- a control: a second `xrdcp --tpc only` of the same file, on xrdcp's other side: how much
  two copies of the same tool differ anyway (the floor of any "within 5 %" between copies).

For both, the truth: a thread stats the destination's file on B's local disk every 5 ms and
notes when it reached its final size (the data moved), timed from the copy's start (the
xrdcp process's start; the probe's copy step's start, known afterwards from its duration).
So each side is compared with the real transfer of the same copy (like with like), and the
two real transfers with each other (a real slowdown shows there). Rates in MiB/s. CPU (user+sys):
the xrdcp process; this process during the probe run (includes the 5 ms stat thread).

Two ways to look for where the copies' spread comes from: `--lake-in` makes the lake's
directory (its data too) under a directory of your choice, e.g. tmpfs, to take the disk
out; `--pin-sites` pins site A's server to CPU 0 and B's to CPU 1 (taskset, every thread),
to take the scheduler's moving them out.

Results: benchmarks/RESULTS.md ("XRootD TPC vs xrdcp").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.clients import xrdcopy
from lakeprobe.probes.clients.xrdasync import StatInfo, XrdFileSystem
from lakeprobe.probes.core.outcome import Measurement, ProbeResult
from lakeprobe.probes.core.params import MIB
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import source_file
from lakeprobe.probes.transfer.xrootd_tpc import PROBE_TYPE, XrootdTpcParams

HOST = "benchhost"
LOG = logging.getLogger("bench.xrootd_tpc")
POLL = 0.005


class SizeWatch:
    """Stats new files in a local directory every POLL s on a thread: when each reached
    `size` bytes (time.monotonic())."""

    def __init__(self, directory: Path, size: int, ignore: set[str]) -> None:
        self.directory, self.size, self.ignore = directory, size, ignore
        self.done: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SizeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name in self.ignore or entry.name in self.done:
                        continue
                    try:
                        if entry.stat().st_size >= self.size:
                            self.done[entry.name] = time.monotonic()
                    except FileNotFoundError:
                        continue

    def reached(self) -> float:
        """When the one new file reached full size."""
        if len(self.done) != 1:
            raise RuntimeError(f"expected one new full-size file, saw {sorted(self.done)}")
        return next(iter(self.done.values()))


@dataclass(frozen=True)
class Round:
    xrdcp_wall: float  # seconds
    xrdcp_true: float  # start of xrdcp -> destination full size
    probe_reported: float  # transferred / TRANSFER_THROUGHPUT
    probe_step: float  # the copy step's duration
    probe_true: float  # start of the copy step -> destination full size
    xrdcp_cpu: float  # user+sys of the xrdcp process
    probe_cpu: float  # user+sys of this process during the probe run (whole run)
    stats: int  # destination stats the probe's landing watch sent
    control_true: float  # a second xrdcp copy, next to the first: how much copies differ


def target(lake: LocalLake, site: XrootdSite) -> Target:
    return Target(site=site.name, endpoint="xrootd", url=site.root_url, test_dir=lake.test_dir,
                  ca_dir=lake.pki.ca_dir)  # fmt: skip


async def probe_run(pair: PairTarget, size: int) -> ProbeResult:
    params = XrootdTpcParams(file_size_bytes=size, sweep_after_seconds=3600)
    outcome = await run_probe(PROBE_TYPE, pair, params, timeout=300, probe_host=HOST, log=LOG)
    if not outcome.result.success:
        raise RuntimeError(f"probe failed: {outcome.result}")
    return outcome.result


class CountedStats:
    """Counts the landing watch's stats: xrdcopy's XrdFileSystem, and only that one,
    replaced by a counting subclass (the probe's other steps import it from xrdasync)."""

    def __init__(self) -> None:
        self.count = 0
        counter = self

        class Counting(XrdFileSystem):
            async def stat(self, path: str, deadline: float) -> StatInfo:
                counter.count += 1
                return await super().stat(path, deadline)

        xrdcopy.XrdFileSystem = Counting  # type: ignore[misc]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def xrdcp_round(lake: LocalLake, size: int, n: int) -> tuple[float, float, float]:
    src, dst = lake.sites
    source = source_file(lake.test_dir, HOST, size)
    name = f"dst-{n}"
    directory = dst.local_path(lake.test_dir)
    with SizeWatch(directory, size, set(os.listdir(directory))) as watch:
        cpu = children_cpu()
        started = time.monotonic()
        subprocess.run(["xrdcp", "-s", "--tpc", "only", f"{src.root_url}/{source}",
                        f"{dst.root_url}/{lake.test_dir}/{name}"], check=True)  # fmt: skip
        wall = time.monotonic() - started
        cpu = children_cpu() - cpu
    rm = ["xrdfs", dst.root_url, "rm", f"{lake.test_dir}/{name}"]
    subprocess.run(rm, check=True, stdout=subprocess.DEVNULL)
    return wall, watch.reached() - started, cpu


def probe_round(lake: LocalLake, pair: PairTarget, size: int) -> tuple[float, float, float, float]:
    directory = lake.sites[1].local_path(lake.test_dir)
    with SizeWatch(directory, size, set(os.listdir(directory))) as watch:
        cpu = time.process_time()
        result = asyncio.run(probe_run(pair, size))
        ended = time.monotonic()
        cpu = time.process_time() - cpu  # includes the SizeWatch thread: an upper bound
    copy = next(step for step in result.steps if step.name == "copy")
    steps_after = sum(s.duration_seconds for s in result.steps[result.steps.index(copy) + 1 :])
    copy_started = ended - steps_after - copy.duration_seconds  # approximate: ignores gaps
    reported = size / result.measurements[Measurement.TRANSFER_THROUGHPUT]
    return reported, copy.duration_seconds, watch.reached() - copy_started, cpu


def within(ratios: list[float], tolerance: float = 0.05) -> int:
    return sum(1 for ratio in ratios if abs(ratio - 1) <= tolerance)


def rate(size: int, seconds: float) -> float:
    return size / MIB / seconds


def report(size: int, rounds: list[Round]) -> None:
    print(f"\n{size // MIB} MiB, {len(rounds)} rounds (MiB/s; seconds in brackets)")
    print(" n   xrdcp wall     xrdcp true     probe rep.     probe step     probe true"
          "    rep/wall  rep/xtrue  rep/own  stats")  # fmt: skip
    for i, r in enumerate(rounds):
        cells = [r.xrdcp_wall, r.xrdcp_true, r.probe_reported, r.probe_step, r.probe_true]
        text = "  ".join(f"{rate(size, s):5.0f} ({s:4.2f})" for s in cells)
        ratios = [r.xrdcp_wall, r.xrdcp_true, r.probe_true]
        text += "".join(f"  {x / r.probe_reported:8.2f}x" for x in ratios)
        print(f"{i:2d}  {text}  {r.stats:5d}")
    for field in ("xrdcp_wall", "xrdcp_true", "probe_reported", "probe_step", "probe_true"):
        median = statistics.median(getattr(r, field) for r in rounds)
        print(f"median {field:15s} {median:6.2f} s  {rate(size, median):7.0f} MiB/s")
    for field in ("xrdcp_cpu", "probe_cpu", "stats"):
        print(f"median {field:15s} {statistics.median(getattr(r, field) for r in rounds):6.2f}")
    for name, field in (("xrdcp wall", "xrdcp_wall"), ("xrdcp true", "xrdcp_true"),
                        ("its own true", "probe_true")):  # fmt: skip
        ratios = [getattr(r, field) / r.probe_reported for r in rounds]
        print(f"probe reported / {name} throughput: median {statistics.median(ratios):.2f}x, "
              f"min {min(ratios):.2f}x, max {max(ratios):.2f}x, "
              f"within 5 % in {within(ratios)} of {len(ratios)}")  # fmt: skip
    ratios = [r.control_true / r.xrdcp_true for r in rounds]
    print(f"control: xrdcp true / the control copy's true throughput: median "
          f"{statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x, "
          f"within 5 % in {within(ratios)} of {len(ratios)}")  # fmt: skip


def bench(lake: LocalLake, size: int, n_rounds: int) -> list[Round]:
    pair = PairTarget(target(lake, lake.sites[0]), target(lake, lake.sites[1]), "pull")
    asyncio.run(probe_run(pair, size))  # uploads the source file; warms the page cache
    rounds, counted = [], CountedStats()
    for n in range(n_rounds):
        # Even rounds: control, xrdcp, probe; odd: probe, xrdcp, control. The probe always
        # follows or precedes xrdcp's copy, as the control copy does on its other side.
        if n % 2:
            counted.count = 0
            reported, step, true, cpu = probe_round(lake, pair, size)
            xrdcp_wall, xrdcp_true, xrdcp_cpu = xrdcp_round(lake, size, n)
            control = xrdcp_round(lake, size, n)[1]
        else:
            control = xrdcp_round(lake, size, n)[1]
            xrdcp_wall, xrdcp_true, xrdcp_cpu = xrdcp_round(lake, size, n)
            counted.count = 0
            reported, step, true, cpu = probe_round(lake, pair, size)
        rounds.append(Round(xrdcp_wall, xrdcp_true, reported, step, true, xrdcp_cpu, cpu,
                            counted.count, control))  # fmt: skip
    return rounds


def pin_sites(lake: LocalLake) -> None:
    cpus = os.cpu_count() or 1
    for cpu, site in enumerate(lake.sites):
        pin = ["taskset", "--all-tasks", "--pid", "--cpu-list", str(cpu % cpus), str(site.pid)]
        subprocess.run(pin, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--lake-in", type=Path, help="make the lake's directory here (e.g. tmpfs)")
    parser.add_argument("--pin-sites", action="store_true", help="site A on CPU 0, B on CPU 1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.lake_in is not None:
        tempfile.tempdir = str(args.lake_in)  # where LocalLake makes (and removes) its directory
    with LocalLake(2) as lake:
        if args.pin_sites:
            pin_sites(lake)
        free = shutil.disk_usage(lake.base_dir).free
        for size in (s * MIB for s in args.sizes_mib):
            if free < 4 * size:
                print(f"skipping {size // MIB} MiB: {free // MIB} MiB free")
                continue
            report(size, bench(lake, size, min(args.rounds, 50)))


if __name__ == "__main__":
    main()
