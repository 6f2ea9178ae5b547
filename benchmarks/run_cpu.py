"""Benchmark: CPU of one probe run in-process (no daemon around it), per endpoint kind, for this
checkout and optionally another one (`--tree`, e.g. a `git worktree` of an older commit), in
interleaved child processes: XRootD's XrdHttp over https (it closes the connection after
every 404, so a webdav run makes 2 TLS handshakes), Debian's nginx dav over https and plain
http (one connection per run), and the xrootd probe over root://.

    .venv/bin/python benchmarks/run_cpu.py [--runs 100] [--rounds 3] [--tree /tmp/old]
        [--loop uvloop asyncio] [--concurrency 1 32] [--pin CPU] [--mixed] [--gap SECONDS]

Each child makes 5 warm-up runs, then `--runs` runs of the default 1 MiB test file through
run_probe with one shared ProbeResources and StateStore (as in the daemon) and prints
user+sys CPU per run (RUSAGE_SELF: the client's threads included, the servers not). With a
concurrency of N, N targets (test directories c0..cN-1 on the same servers) run at once,
each its share of the runs, as the daemon's runs overlap under load. Medians over rounds; ms.

What the daemon benchmark (one_core_load.py) does differently, one option each: `--pin` runs
the children on one core and the servers on the others; `--mixed` adds a row where webdav
and xrootd runs alternate, as a daemon's targets do; `--gap` idles after each run, as a
target waits for its next turn. Loopback only. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lakeprobe.lake import LocalLake
from lakeprobe.lake.nginxdav import NginxDav

CHILD = """
import sys
tree, kinds, urls, ca, runs, loop, width, gap = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6],
                                                               int(sys.argv[7]), float(sys.argv[8])]
if tree:  # import lakeprobe from that checkout, not through this venv's editable install
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, tree)
import asyncio, importlib, logging, resource
from pathlib import Path
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target

def probe_of(kind):
    probe = importlib.import_module("lakeprobe.probes.storage." + kind)
    return probe, (probe.XrootdParams if kind == "xrootd" else probe.WebdavParams)()

# "webdav+xrootd" with two URLs: each lane alternates between the two probes.
probes = [(*probe_of(kind), url) for kind, url in zip(kinds.split("+"), urls.split())]

async def main() -> None:
    resources, log = ProbeResources(), logging.getLogger("bench.run_cpu")
    state = StateStore.memory()  # one store for all runs, as the daemon's (not one per run)
    dirs = ["/lakeprobe"] if width == 1 else [f"/lakeprobe/c{i}" for i in range(width)]
    async def lane(lane_dir: str, count: int) -> None:
        targets = [(probe, params, Target("BENCH", f"e{n}", url, lane_dir, ca_dir=Path(ca)))
                   for n, (probe, params, url) in enumerate(probes)]
        for run in range(count):
            probe, params, target = targets[run % len(targets)]
            outcome = await run_probe(probe.PROBE_TYPE, target, params, timeout=30,
                                      probe_host="bench", log=log, resources=resources,
                                      state=state)
            if not outcome.result.success:
                raise SystemExit(f"{target.url}: {outcome.result.reason} {outcome.result.detail}")
            if gap:
                await asyncio.sleep(gap)
    await asyncio.gather(*(lane(d, 5 * len(probes)) for d in dirs))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_utime + usage.ru_stime
    await asyncio.gather(*(lane(d, runs // width) for d in dirs))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print((usage.ru_utime + usage.ru_stime - before) / (runs // width * width))

if loop == "uvloop":  # as the daemon runs (lakeprobe/service/eventloop.py)
    import uvloop
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
else:
    asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, help="another checkout to compare with")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), nargs="+", default=["uvloop"],
                        help="event loop(s), each a column (the daemon's is uvloop)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1],
                        help="runs in flight at once, each a column")  # fmt: skip
    parser.add_argument("--pin", type=int, metavar="CPU",
                        help="pin each child to this core and the servers to the others, "
                             "as one_core_load.py pins the daemon")  # fmt: skip
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="one more row: webdav (XrdHttp https) and xrootd runs alternating",
    )
    parser.add_argument("--gap", type=float, default=0.0, metavar="SECONDS",
                        help="each lane idles this long after each run, as daemon targets "
                             "wait for their next turn")  # fmt: skip
    args = parser.parse_args()
    pinned = ["taskset", "-c", str(args.pin)] if args.pin is not None else []
    checkouts = {"this": "", **({str(args.tree): str(args.tree.resolve())} if args.tree else {})}
    # One column per checkout, loop and concurrency: "this", or "this asyncio x32" when loops
    # and concurrencies are compared.
    trees = {
        " ".join(
            [name]
            + ([loop] if len(args.loop) > 1 else [])
            + ([f"x{width}"] if len(args.concurrency) > 1 else [])
        ): (tree, loop, width)
        for name, tree in checkouts.items()
        for loop in args.loop
        for width in args.concurrency
    }
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        with (
            LocalLake(1, base_dir=work / "lake") as lake,
            NginxDav(work / "nginx", lake.pki, plain_http=True) as nginx,
        ):
            nginx.make_dir("/lakeprobe")
            site = lake.sites[0]
            if args.pin is not None:
                others = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != args.pin)
                nginx_pids = subprocess.run(["pgrep", "-f", str(work / "nginx")], text=True,
                                            capture_output=True).stdout.split()  # fmt: skip
                for pid in (str(site.pid), *nginx_pids):
                    subprocess.run(["taskset", "-a", "-p", "-c", others, pid], check=True,
                                   stdout=subprocess.DEVNULL)  # fmt: skip
            for i in range(max(args.concurrency)):
                nginx.make_dir(f"/lakeprobe/c{i}")
                site.make_dir(f"/lakeprobe/c{i}")
            cells = {
                "webdav XrdHttp https": ("webdav", site.https_url),
                "webdav nginx https": ("webdav", nginx.https_url),
                "webdav nginx http": ("webdav", nginx.http_url),
                "xrootd root://": ("xrootd", site.root_url),
            }
            if args.mixed:  # as the daemon's targets come: one kind, then the other
                mixed = ("webdav+xrootd", f"{site.https_url} {site.root_url}")
                cells["webdav XrdHttp https, xrootd root://, alternating"] = mixed
            samples: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for cell, (kind, url) in cells.items():
                    for name, (tree, loop, width) in trees.items():  # interleaved: all, each round
                        argv = [*pinned, sys.executable, "-c", CHILD, tree, kind, url,
                                str(lake.pki.ca_dir), str(args.runs), loop, str(width),
                                str(args.gap)]  # fmt: skip
                        done = subprocess.run(argv, capture_output=True, text=True, check=True)
                        samples.setdefault((cell, name), []).append(float(done.stdout))
    print(f"| endpoint | {' | '.join(f'{name} ms CPU/run' for name in trees)} |")
    print("|---" * (1 + len(trees)) + "|")
    for cell in cells:
        values = [statistics.median(samples[(cell, name)]) * 1000 for name in trees]
        print(f"| {cell} | " + " | ".join(f"{value:.2f}" for value in values) + " |")
    print(json.dumps({f"{c}/{n}": v for (c, n), v in samples.items()}))


if __name__ == "__main__":
    main()
