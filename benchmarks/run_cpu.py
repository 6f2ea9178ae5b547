"""Benchmark: CPU of one probe run in-process (no daemon around it), per endpoint kind, for this
checkout and optionally another one (`--tree`, e.g. a `git worktree` of an older commit), in
interleaved child processes: XRootD's XrdHttp over https (it closes the connection after
every 404, so a webdav run makes 3 TLS handshakes), Debian's nginx dav over https and plain
http (one connection per run), and the xrootd probe over root://.

    .venv/bin/python benchmarks/run_cpu.py [--runs 100] [--rounds 3] [--tree /tmp/old]
        [--loop uvloop asyncio] [--concurrency 1 32]

Each child makes 5 warm-up runs, then `--runs` runs of the default 1 MiB test file through
run_probe with one shared ProbeResources and StateStore (as in the daemon) and prints
user+sys CPU per run (RUSAGE_SELF: the client's threads included, the servers not). With a
concurrency of N, N targets (test directories c0..cN-1 on the same servers) run at once,
each its share of the runs, as the daemon's runs overlap under load. Medians over rounds; ms.
Loopback only. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lakeprobe.lake import LocalLake
from lakeprobe.lake.nginxdav import NginxDav

CHILD = """
import sys
tree, kind, url, ca, runs, loop, width = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6],
                                                        int(sys.argv[7])]
if tree:  # import lakeprobe from that checkout, not through this venv's editable install
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, tree)
import asyncio, importlib, logging, resource
from pathlib import Path
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target
probe = importlib.import_module("lakeprobe.probes.storage." + kind)
params_class = probe.XrootdParams if kind == "xrootd" else probe.WebdavParams

async def main() -> None:
    resources, log = ProbeResources(), logging.getLogger("bench.run_cpu")
    state = StateStore.memory()  # one store for all runs, as the daemon's (not one per run)
    dirs = ["/lakeprobe"] if width == 1 else [f"/lakeprobe/c{i}" for i in range(width)]
    targets = [Target("BENCH", f"e{i}", url, d, ca_dir=Path(ca)) for i, d in enumerate(dirs)]
    params = params_class()
    async def runs_of(target: Target, count: int) -> None:
        for _ in range(count):
            outcome = await run_probe(probe.PROBE_TYPE, target, params, timeout=30,
                                      probe_host="bench", log=log, resources=resources,
                                      state=state)
            if not outcome.result.success:
                raise SystemExit(f"{kind} {url}: {outcome.result.reason} {outcome.result.detail}")
    await asyncio.gather(*(runs_of(target, 5) for target in targets))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_utime + usage.ru_stime
    await asyncio.gather(*(runs_of(target, runs // width) for target in targets))
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
    args = parser.parse_args()
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
            for i in range(max(args.concurrency)):
                nginx.make_dir(f"/lakeprobe/c{i}")
                site.make_dir(f"/lakeprobe/c{i}")
            cells = {
                "webdav XrdHttp https": ("webdav", site.https_url),
                "webdav nginx https": ("webdav", nginx.https_url),
                "webdav nginx http": ("webdav", nginx.http_url),
                "xrootd root://": ("xrootd", site.root_url),
            }
            samples: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for cell, (kind, url) in cells.items():
                    for name, (tree, loop, width) in trees.items():  # interleaved: all, each round
                        argv = [sys.executable, "-c", CHILD, tree, kind, url,
                                str(lake.pki.ca_dir), str(args.runs), loop, str(width)]  # fmt: skip
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
