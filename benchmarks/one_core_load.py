"""Benchmark: the realistic daemon load on one core. The real daemon (config, plan, scheduler,
results store, /metrics served), pinned to one core with `taskset`, probes a local lake of
three real XRootD sites with the `webdav` (davs://) and `xrootd` (root://) probes at their
default 1 MiB test file. Targets per minute are reached with many endpoints per site: the
same servers under different test directories.

    .venv/bin/python benchmarks/one_core_load.py [--targets 10000] [--seconds 150] [--cpu 0]
        [--loop asyncio|uvloop] [--py-spy PATH --profile FILE] [--max-concurrent 64]
        [--switch-interval 0.005] [--disturb SECONDS] [--contend SHARE]
        [--delete-missing-every SECONDS]

`--max-concurrent` is the config's max_concurrent_runs; `--switch-interval` the daemon's
sys.setswitchinterval. `--loop` picks the daemon's event loop
(lakeprobe/service/eventloop.py): uvloop, the daemon's default, or the standard asyncio
loop, to measure what the loop costs.

The lake's XRootD servers are moved to the other core(s), so the pinned core is the daemon's
alone (other processes on the machine may still share it). Reported, from the daemon's
process: CPU time per run (user + sys, the XrdCl threads included) and core usage over the
steady part (after the first interval and its jitter: every target greeted), runs started
against the expected count, start lag (due -> slots granted) p50/p99/max from the
scheduler's own hook, missed runs by cause and failed runs by reason; and the servers'
CPU over the same part (on a 2-core machine they have one core: are they the limit?). And
how fast the host is at the time: the CPU a fixed piece of reference work costs on the pinned
core just before the daemon starts and just after it stops, that core's steal time over the
window, the daemon's context switches and minor page faults a run and its system CPU.
`--disturb N` runs a busy loop on the daemon's core for N s from 20 s in (before the window);
the p99 lag over the window's last interval shows whether the backlog drained. `--contend F`
keeps a neighbour busy F of every 10 ms on that core for the whole run: a slower host.
`--delete-missing-every S` shortens the webdav probe's period for DELETE of a missing file
(default 900 s), to see its repeats within a short run. A time series every 10 s from the
daemon's start (warm-up included) gives its core, runs started a minute, the start lag
p50/p99 of the runs started then, runs running and waiting for slots at its end, and the
garbage collector's CPU and passes: when it fell behind, and when it caught up.
Loopback only.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import itertools
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import yaml

from lakeprobe.config import load_config
from lakeprobe.config.plan import ProbeJob
from lakeprobe.lake import LocalLake, free_ports
from lakeprobe.service import eventloop
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.scheduler import ProbeScheduler
from lakeprobe.service.server import serve
from lakeprobe.service.timetable import JITTER_FRACTION

INTERVAL = 60.0
SERIES_STEP = 10.0  # seconds a row of the time series covers
WARM_UP = INTERVAL * (1 + JITTER_FRACTION) + 2.0  # + the plan's application, generously
TIMEOUT = 20.0


class RecordingScheduler(ProbeScheduler):
    """The daemon's scheduler, noting each start's time and lag."""

    lags: ClassVar[list[tuple[float, float]]] = []

    def _on_start(self, job: ProbeJob, lag: float) -> None:
        super()._on_start(job, lag)
        self.lags.append((time.monotonic(), lag))


def config(
    lake: LocalLake, per_site: int, listen: str, slots: int, delete_missing_every: float | None
) -> dict[str, Any]:
    """`per_site` endpoints per XRootD site and protocol, each with its own test directory,
    in configured sites of 50 (a site takes at most 100 endpoints); caps sized for the many
    endpoints these few servers stand in for."""
    sites = []
    for site in lake.sites:
        for group in range(0, per_site, 50):
            endpoints = []
            for n in range(group, min(per_site, group + 50)):
                test_dir = f"{lake.test_dir}/e{n}"
                site.make_dir(test_dir, writable=True)
                endpoints += [
                    {"name": f"dav{n}", "url": site.davs_url, "test_dir": test_dir},
                    {"name": f"root{n}", "url": site.root_url, "test_dir": test_dir},
                ]
            sites.append({"name": f"{site.name}-{group // 50:02d}", "endpoints": endpoints})
    webdav: dict[str, Any] = {"name": "webdav", "type": "webdav"}
    if delete_missing_every is not None:
        webdav["params"] = {"delete_missing_every_seconds": delete_missing_every}
    return {
        "server": {"listen": listen, "probe_host": "bench"},
        "defaults": {
            "interval": INTERVAL,
            "timeout": TIMEOUT,
            "ca_dir": str(lake.pki.ca_dir),
            "max_concurrent_runs": slots,
            "max_concurrent_per_endpoint": 32,
        },
        "sites": sites,
        "probes": [webdav, {"name": "xrootd", "type": "xrootd"}],
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def kernel_side() -> tuple[float, int]:
    """System CPU seconds and minor page faults of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_stime, usage.ru_minflt


def servers_cpu_seconds(pids: list[int]) -> float:
    """user + sys CPU of the lake's xrootd processes (all their threads), from /proc."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def reference_work_ms(repeats: int = 7) -> tuple[float, float]:
    """CPU ms of two fixed pieces of work, medians of `repeats`: SHA-256 of 4 MiB and an
    interpreter loop (in the caches), and copying 64 MiB twice (memory bandwidth). How fast
    this core is now: on a shared VM the same code costs more CPU while other guests load the
    host, which steal time does not show."""
    block, big, compute, memory = bytes(4 * 1024 * 1024), bytearray(64 * 1024 * 1024), [], []
    for _ in range(repeats):
        started, total = time.thread_time(), 0
        hashlib.sha256(block).digest()
        for i in range(200_000):
            total += i & 7
        compute.append((time.thread_time() - started) * 1000)
        started = time.thread_time()
        bytes(big)
        bytearray(big)
        memory.append((time.thread_time() - started) * 1000)
    return statistics.median(compute), statistics.median(memory)


def steal_seconds(cpu: int) -> float:
    """The hypervisor's steal time of one core so far, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def context_switches() -> tuple[int, int]:
    """Voluntary and involuntary context switches of this process's threads that are alive
    (the event loop's, XrdCl's, the copy and resolver pools'), from /proc."""
    voluntary = involuntary = 0
    for status in Path("/proc/self/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # the thread ended
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary += int(line.split()[1])
    return voluntary, involuntary


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class GcTimer:
    """CPU seconds (of the thread that collects) and count of the garbage collector's passes,
    per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.thread_time() - self._started
            self.count[generation] += 1

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.count)


async def sample_series(
    scheduler: RecordingScheduler, gc_timer: GcTimer, rows: list[dict[str, Any]]
) -> None:
    """Every SERIES_STEP s from the daemon's start: its CPU, the runs started so far, runs in
    flight and waiting for slots, and the garbage collector's total: when did it fall
    behind, and did it catch up?"""
    while True:
        seconds, count = gc_timer.snapshot()
        rows.append({
            "at": time.monotonic(), "cpu": cpu_seconds(), "started": len(scheduler.lags),
            "running": scheduler.admission.running, "waiting": scheduler.admission.waiting,
            "gc": sum(seconds), "gc_count": count,
        })  # fmt: skip
        await asyncio.sleep(SERIES_STEP)


def series_table(rows: list[dict[str, Any]], lags: list[tuple[float, float]]) -> list[str]:
    """One line per SERIES_STEP: runs started a minute, core, start lag p50/p99 of the runs
    started in it, runs running/waiting at its end, GC CPU and passes per generation."""
    lines = ["  from  runs/min  core  lag p50  lag p99  running  waiting  GC core  gen0/1/2"]
    origin = rows[0]["at"]
    for before, after in itertools.pairwise(rows):
        span = after["at"] - before["at"]
        started = [lag for at, lag in lags if before["at"] <= at < after["at"]]
        passes = "/".join(
            str(b - a) for a, b in zip(before["gc_count"], after["gc_count"], strict=True)
        )
        lines.append(
            f"{before['at'] - origin:6.0f}  {len(started) / span * 60:8.0f}  "
            f"{(after['cpu'] - before['cpu']) / span:4.2f}  {quantile(started, 0.5):7.3f}  "
            f"{quantile(started, 0.99):7.3f}  {after['running']:7d}  {after['waiting']:7d}  "
            f"{(after['gc'] - before['gc']) / span:7.3f}  {passes}"
        )
    return lines


async def run_daemon(path: Path, seconds: float, server_pids: list[int]) -> dict[str, Any]:
    """In the pinned child: run the daemon `seconds`, measure after WARM_UP."""
    reference_before = reference_work_ms()
    core = min(os.sched_getaffinity(0))
    gc_timer = GcTimer()
    daemon = Daemon(path, load_config(path))
    defaults = daemon.config.defaults
    daemon.scheduler = RecordingScheduler(
        daemon.store, daemon.metrics, probe_host="bench", state=daemon.state,
        resources=daemon.resources, max_concurrent=defaults.max_concurrent_runs,
        max_per_endpoint=defaults.max_concurrent_per_endpoint,
    )  # fmt: skip
    stop = asyncio.Event()
    rows: list[dict[str, Any]] = []
    sampling = asyncio.create_task(sample_series(daemon.scheduler, gc_timer, rows))
    serving = asyncio.create_task(serve(daemon, stop))
    # Every target greeted and run once, and its first jittered run due: a job's first run is
    # at its phase, later ones up to 5 % of the interval after their grid time, so a window
    # that opened right after the first interval would miss ~2.5 % of the runs (those whose
    # second run slips past its end) with none missed by the daemon.
    await asyncio.sleep(WARM_UP)
    cpu0, wall0, begun = cpu_seconds(), time.monotonic(), len(RecordingScheduler.lags)
    kernel0 = kernel_side()
    servers0, steal0 = servers_cpu_seconds(server_pids), steal_seconds(core)
    switches0 = context_switches()
    gc0 = gc_timer.snapshot()
    await asyncio.sleep(seconds - WARM_UP)
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    (system, faults), (system0, faults0) = kernel_side(), kernel0
    servers = servers_cpu_seconds(server_pids) - servers0
    steal = steal_seconds(core) - steal0
    switches = [b - a for a, b in zip(switches0, context_switches(), strict=True)]
    gc1 = gc_timer.snapshot()
    gc_seconds = [b - a for a, b in zip(gc0[0], gc1[0], strict=True)]
    gc_count = [b - a for a, b in zip(gc0[1], gc1[1], strict=True)]
    runs = len(RecordingScheduler.lags) - begun
    sampling.cancel()
    ended = wall0 + wall
    admission = daemon.scheduler.admission  # the series' last row: the window's end
    rows.append({
        "at": ended, "cpu": cpu0 + cpu, "started": begun + runs, "running": admission.running,
        "waiting": admission.waiting, "gc": sum(gc1[0]), "gc_count": gc1[1],
    })  # fmt: skip
    stop.set()
    await serving
    reference_after = reference_work_ms()
    steady = [lag for at, lag in RecordingScheduler.lags if wall0 <= at < ended]
    last_minute = [lag for at, lag in RecordingScheduler.lags if ended - INTERVAL <= at < ended]
    registry = daemon.registry
    missed = {
        f"{p}/{c}": registry.get_sample_value(
            "lakeprobe_scheduler_missed_runs_total", {"probe": p, "cause": c}
        )
        or 0
        for p in ("webdav", "xrootd")
        for c in ("overlap", "no_slot")
    }
    last = [state.last for _, state in daemon.store.items() if state.last is not None]
    reasons = Counter(result.reason.value for result in last)
    # A run with failures measures less work: name a few, with the step that failed.
    failures = {}
    for key, state in daemon.store.items():
        result = state.last
        if result is None or result.success or result.reason.value in failures:
            continue
        step = next((s for s in result.steps if s.reason is result.reason), None)
        where = f"{step.name}: {step.detail}" if step is not None else "-"
        failures[result.reason.value] = f"{key} {where}"
    return {
        "targets": len(daemon.store),
        "steady_seconds": wall,
        "runs": runs,
        "cpu_seconds": cpu,
        "servers_cpu_seconds": servers,
        "lag_p50": quantile(steady, 0.5),
        "lag_p99": quantile(steady, 0.99),
        "lag_max": max(steady, default=float("nan")),
        "lag_p99_last_interval": quantile(last_minute, 0.99),
        "missed": missed,
        "last_reasons": dict(reasons),
        "failure_examples": failures,
        "gc_seconds": gc_seconds,
        "gc_count": gc_count,
        "run_seconds_p50": quantile([result.duration_seconds for result in last], 0.5),
        "reference_ms": [reference_before, reference_after],
        "steal_seconds": steal,
        "context_switches": switches,
        "system_seconds": system - system0,
        "page_faults": faults - faults0,
        "series": series_table(rows, RecordingScheduler.lags),
    }


def report(result: dict[str, Any]) -> None:
    runs, wall, cpu = result["runs"], result["steady_seconds"], result["cpu_seconds"]
    expected = result["targets"] / INTERVAL * 60
    print(f"targets {result['targets']}, steady {wall:.0f} s: {runs} runs started "
          f"({runs / wall * 60:.0f}/min, expected {expected:.0f}/min)")  # fmt: skip
    print(f"CPU {cpu:.1f} s = {cpu / wall:.2f} core, {cpu / max(runs, 1) * 1000:.2f} ms per run")
    if "servers_cpu_seconds" in result:  # the other core(s): are the servers the limit?
        servers = result["servers_cpu_seconds"]
        print(f"servers' CPU {servers:.1f} s = {servers / wall:.2f} core")
    print(f"start lag p50 {result['lag_p50']:.3f} s, p99 {result['lag_p99']:.3f} s, "
          f"max {result['lag_max']:.3f} s")  # fmt: skip
    if "lag_p99_last_interval" in result:  # a backlog from before the window, drained or not
        print(f"start lag p99 over the window's last {INTERVAL:.0f} s: "
              f"{result['lag_p99_last_interval']:.3f} s")  # fmt: skip
    print(f"missed {result['missed']}")
    if "gc_seconds" in result:
        passes = ", ".join(
            f"gen{g} {n} in {t:.2f} s"
            for g, (n, t) in enumerate(zip(result["gc_count"], result["gc_seconds"], strict=True))
        )
        print(f"garbage collector: {passes} CPU")  # fmt: skip
    print(f"run wall time p50 {result.get('run_seconds_p50', float('nan')):.3f} s (slots held)")
    if "reference_ms" in result:
        (compute0, memory0), (compute1, memory1) = result["reference_ms"]
        work = f"compute {compute0:.1f}/{compute1:.1f}, memory {memory0:.1f}/{memory1:.1f}"
        steal = result["steal_seconds"]
        print(f"host: reference work, ms CPU before/after: {work}; steal {steal:.1f} s")
    if "page_faults" in result:
        system, faults = result["system_seconds"], result["page_faults"] / max(runs, 1)
        print(f"of the CPU: system {system:.1f} s; minor page faults a run {faults:.0f}")
    if "context_switches" in result:
        voluntary, involuntary = (n / max(runs, 1) for n in result["context_switches"])
        print(f"context switches a run: {voluntary:.1f} voluntary, {involuntary:.1f} involuntary")
    print(f"last result reasons {result['last_reasons']}")
    if "series" in result:
        print("time series, from the daemon's start:")
        print("\n".join(result["series"]))
    for reason, example in result.get("failure_examples", {}).items():
        print(f"  e.g. {reason}: {example}")


def pin_lake(lake: LocalLake, cpus: str) -> None:
    for site in lake.sites:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(site.pid)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip


def disturb(cpu: int, seconds: float) -> subprocess.Popen[bytes]:
    """A busy loop on the daemon's core from 20 s after its start for `seconds` (ended before
    the window opens): does the daemon, pushed behind, catch up once the core is its own?"""
    spin = f"import time; time.sleep(20); end = time.monotonic() + {seconds}\n"
    spin += "while time.monotonic() < end: pass"
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", spin])


def contend(cpu: int, share: float, seconds: float) -> subprocess.Popen[bytes]:
    """For `seconds`, a process on the daemon's core busy `share` of every 10 ms: a host that
    leaves the daemon that much less of its core (a neighbour, a slower VM)."""
    spin = f"import time\nend = time.monotonic() + {seconds}\n"
    spin += "while (now := time.monotonic()) < end:\n"
    spin += f"    while time.monotonic() < now + {share * 0.01}: pass\n"
    spin += f"    time.sleep({(1 - share) * 0.01})"
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", spin])


def main(args: argparse.Namespace) -> None:
    others = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != args.cpu)
    per_site = max(1, args.targets // (3 * 2))
    with tempfile.TemporaryDirectory(prefix="lakeprobe-load-") as tmp:
        workdir = Path(tmp)
        with LocalLake(3, base_dir=workdir / "lake") as lake:
            if others:
                pin_lake(lake, others)
            path = workdir / "lakeprobe.yaml"
            listen = f"127.0.0.1:{free_ports(1)[0]}"
            settings = config(
                lake, per_site, listen, args.max_concurrent, args.delete_missing_every
            )
            path.write_text(yaml.safe_dump(settings))
            pids = ",".join(str(site.pid) for site in lake.sites)
            child = [sys.executable, __file__, "--child", str(path), "--seconds", str(args.seconds),
                     "--loop", args.loop, "--server-pids", pids,
                     "--switch-interval", str(args.switch_interval)]  # fmt: skip
            if args.py_spy:  # collapsed stacks of the daemon, sampled for its whole run
                child = [args.py_spy, "record", "-r", "50", "-f", "raw", "-o", str(args.profile),
                         "--", *child]  # fmt: skip
            hog = disturb(args.cpu, args.disturb) if args.disturb else None
            neighbour = contend(args.cpu, args.contend, args.seconds + 30) if args.contend else None
            out = subprocess.run(
                ["taskset", "-c", str(args.cpu), *child], check=True, stdout=subprocess.PIPE
            ).stdout
            if hog is not None:
                hog.wait()
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
            report(json.loads(next(x for x in reversed(out.splitlines()) if x[:1] == b"{")))
            crashed = [site.name for site in lake.sites if site.crashed]
            if crashed:  # XRootD 5.5.3 segfaults now and then under many HTTPS connections
                print(f"NOT VALID: xrootd crashed on {', '.join(crashed)} during the run")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=10_000, help="targets, each run per minute")
    parser.add_argument("--seconds", type=float, default=150.0, help="daemon run time, > 65")
    parser.add_argument("--cpu", type=int, default=0, help="the core the daemon is pinned to")
    parser.add_argument("--max-concurrent", type=int, default=64,
                        help="defaults.max_concurrent_runs (the daemon's default: 32)")  # fmt: skip
    parser.add_argument("--switch-interval", type=float, default=sys.getswitchinterval(),
                        help="the daemon's sys.setswitchinterval, seconds")  # fmt: skip
    parser.add_argument("--delete-missing-every", type=float,
                        help="the webdav probe's delete_missing_every_seconds")  # fmt: skip
    parser.add_argument("--contend", type=float, default=0.0,
                        help="share of the daemon's core a neighbour takes, e.g. 0.1")  # fmt: skip
    parser.add_argument("--disturb", type=float, default=0.0,
                        help="busy-loop seconds on the daemon's core, from 20 s in")  # fmt: skip
    parser.add_argument("--loop", choices=eventloop.CHOICES, default="uvloop")
    parser.add_argument("--py-spy", help="profile the daemon with this py-spy executable")
    parser.add_argument("--profile", type=Path, default=Path("one_core_load.txt"),
                        help="where --py-spy writes collapsed stacks")  # fmt: skip
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--server-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        os.environ[eventloop.ENV] = args.loop  # the child is the daemon: as `serve` picks it
        sys.setswitchinterval(args.switch_interval)
        pids = [int(pid) for pid in args.server_pids.split(",") if pid]
        print(json.dumps(eventloop.run(run_daemon(args.child, args.seconds, pids))))
    else:
        main(args)
