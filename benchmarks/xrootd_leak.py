"""Benchmark: what each XrdCl call lakeprobe makes leaves behind, with and without a callback.

    .venv/bin/python benchmarks/xrootd_leak.py [--calls 200] [--ops stat ping ...]

Against one real local site (lakeprobe.lake.LocalLake, 127.0.0.1), for each operation and
mode: a few warm-up calls, then `--calls` calls, and the difference before/after (after
gc.collect()) in: Python objects the cyclic GC tracks, by type (gc.get_objects()); pymalloc
blocks (sys.getallocatedblocks(), which also counts untracked str/int/tuple); and bytes held
by allocations made during the calls (tracemalloc). Modes:

- `sync`: XRootD.client's synchronous call (a thread waits for the server; for comparison);
- `callback`: the same call with `callback=`, waited for with a threading.Event;
- `lakeprobe`: probes/clients/xrdasync.py, as the probes call it (asyncio).

Then whole xrootd probe runs (run_probe, as the daemon runs them; `--runs`), with the
containment of probes/clients/xrdleak.py on and off in turn: pymalloc blocks and bytes per run.

Results: benchmarks/RESULTS.md ("XRootD callback leak").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import sys
import threading
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.clients import xrdasync, xrdleak
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage.xrootd import PROBE_TYPE, XrootdParams

WARMUP = 20
PROBE_DIR = LocalLake.test_dir  # the probe runs' test directory: kept small, as a sweep keeps it
DIR = f"{PROBE_DIR}/ops"  # the single calls' files (hundreds)
BIG = f"{PROBE_DIR}/big"  # BIG_ENTRIES files: converting its listing always runs a collection
BIG_ENTRIES = 1000
DATA = b"x" * 4096
Call = Callable[[int], None]  # one operation, the argument numbers the call


@dataclass(frozen=True)
class Leak:
    types: dict[str, float]  # tracked objects by type, per call (only types that grew)
    blocks: float  # pymalloc blocks per call
    traced: float  # bytes per call still held, of allocations made during the calls


def count_types() -> collections.Counter[str]:
    return collections.Counter(type(obj).__name__ for obj in gc.get_objects())


def measure(call: Call, calls: int) -> Leak:
    for i in range(WARMUP):
        call(-1 - i)
    gc.collect()
    before, blocks = count_types(), sys.getallocatedblocks()
    tracemalloc.start()
    start = tracemalloc.take_snapshot()
    for i in range(calls):
        call(i)
    gc.collect()
    end = tracemalloc.take_snapshot()
    tracemalloc.stop()
    traced = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    del start, end  # the snapshots' own tuples must not be counted
    gc.collect()
    blocks = sys.getallocatedblocks() - blocks
    grown = count_types() - before
    return Leak(
        {name: round(n / calls, 2) for name, n in grown.most_common(6) if n >= calls // 2},
        blocks / calls,
        traced / calls,
    )


class Client:
    """The XRootD.client calls, in one mode: sync, or callback (waited for on an Event)."""

    def __init__(self, url: str, with_callback: bool) -> None:
        self.client = xrdasync.client_module()
        self.url = url
        self.fs = self.client.FileSystem(url)
        self.with_callback = with_callback

    def do(self, owner: Any, method: str, *args: Any) -> Any:
        if not self.with_callback:
            status, response = getattr(owner, method)(*args, timeout=10)
            assert status.ok, status.message
            return response
        done = threading.Event()
        answer: list[Any] = []

        def callback(status: Any, response: Any, hosts: Any) -> None:
            answer[:] = [status, response]
            done.set()

        assert getattr(owner, method)(*args, timeout=10, callback=callback).ok
        assert done.wait(10)
        assert answer[0].ok, answer[0].message
        return answer[1]

    def path(self, i: int, kind: str) -> str:
        return f"{DIR}/leak-{kind}-{i}-{uuid.uuid4().hex[:8]}"

    def operations(self) -> dict[str, Call]:
        flags = self.client.flags
        fs, do = self.fs, self.do
        probe_file = f"{DIR}/leak-reference"
        self.client.FileSystem(self.url).rm(probe_file)
        file = self.client.File()
        assert file.open(f"{self.url}/{probe_file}", flags.OpenFlags.NEW)[0].ok
        assert file.write(DATA)[0].ok
        assert file.close()[0].ok

        def write_cycle(i: int) -> None:
            f = self.client.File()
            do(f, "open", f"{self.url}/{self.path(i, 'w')}", flags.OpenFlags.NEW)
            do(f, "write", DATA, 0, len(DATA))
            do(f, "close")

        def read_cycle(_i: int) -> None:
            f = self.client.File()
            do(f, "open", f"{self.url}/{probe_file}", flags.OpenFlags.READ)
            do(f, "read", 0, len(DATA))
            do(f, "close")

        def rm(i: int) -> None:
            path = self.path(i, "rm")
            assert self.client.FileSystem(self.url).mkdir(path)[0].ok  # sync: not measured
            do(fs, "rmdir", path)

        return {
            "ping": lambda _i: do(fs, "ping"),
            "stat": lambda _i: do(fs, "stat", probe_file),
            "checksum": lambda _i: do(fs, "query", flags.QueryCode.CHECKSUM, probe_file),
            "dirlist": lambda _i: do(fs, "dirlist", DIR, 0),
            "dirlist(1000 entries)": lambda _i: do(fs, "dirlist", BIG, 0),
            "mkdir": lambda i: do(fs, "mkdir", self.path(i, "d")),
            "rmdir": rm,
            "write(open,write,close)": write_cycle,
            "read(open,read,close)": read_cycle,
        }


def lakeprobe_operations(url: str) -> dict[str, Call]:
    """The same operations through xrdasync, each on a fresh event loop run."""
    fs = xrdasync.XrdFileSystem(url)
    probe_file = f"{DIR}/leak-reference"

    def run(factory: Callable[[float], Any]) -> None:
        async def go() -> None:
            await factory(asyncio.get_running_loop().time() + 10)

        asyncio.run(go())

    def write_cycle(i: int) -> None:
        name = f"{url}/{DIR}/leak-lp-{i}-{uuid.uuid4().hex[:8]}"
        run(lambda deadline: xrdasync.upload(name, DATA, deadline))

    return {
        "ping": lambda _i: run(fs.ping),
        "stat": lambda _i: run(lambda d: fs.stat(probe_file, d)),
        "checksum": lambda _i: run(lambda d: fs.checksum(probe_file, d)),
        "dirlist": lambda _i: run(lambda d: fs.dirlist(DIR, d)),
        "dirlist(1000 entries)": lambda _i: run(lambda d: fs.dirlist(BIG, d)),
        "write(open,write,close)": write_cycle,
        "read(open,read,close)": lambda _i: run(
            lambda d: xrdasync.download(f"{url}/{probe_file}", len(DATA), d)
        ),
    }


def probe_runs(site: XrootdSite, runs: int) -> None:
    """Whole xrootd probe runs, containment on, off, on: growth per run."""
    target = Target(site.name, "xrootd", site.root_url, PROBE_DIR)
    log = logging.getLogger("xrootd_leak")

    async def run(count: int) -> None:
        for _ in range(count):
            outcome = await run_probe(PROBE_TYPE, target, XrootdParams(), timeout=10,
                                      probe_host="bench", log=log)  # fmt: skip
            assert outcome.exception is None

    loop = asyncio.new_event_loop()  # one loop, as in the daemon (a loop per run keeps a list)
    contained = xrdleak.enabled
    for mode in ("contained", "leaking", "contained"):
        switch = contained if mode == "contained" else (lambda: False)
        setattr(xrdleak, "enabled", switch)  # noqa: B010  (mypy: a cached function)
        leak = measure(lambda _i: loop.run_until_complete(run(1)), runs)
        print(f"xrootd probe run          {mode:9} blocks {leak.blocks:6.2f}  "
              f"bytes {leak.traced:7.1f}  {leak.types or '-'}")  # fmt: skip
    setattr(xrdleak, "enabled", contained)  # noqa: B010  (mypy: a cached function)
    loop.close()


def main(calls: int, only: list[str] | None, runs: int) -> None:
    with LocalLake(1) as lake:
        url = lake.sites[0].root_url
        lake.sites[0].make_dir(DIR, writable=True)
        for n in range(BIG_ENTRIES):
            lake.sites[0].put_file(f"{BIG}/f{n}", b"")
        modes: dict[str, dict[str, Call]] = {
            "sync": Client(url, with_callback=False).operations(),
            "callback": Client(url, with_callback=True).operations(),
            "lakeprobe": lakeprobe_operations(url),
        }
        print(f"{calls} calls each, per call: tracked objects that grew, pymalloc blocks, "
              "bytes held (tracemalloc)")  # fmt: skip
        for name in modes["sync"]:
            if only and name not in only:
                continue
            for mode, operations in modes.items():
                if name in operations:
                    leak = measure(operations[name], calls)
                    print(f"{name:24} {mode:9} blocks {leak.blocks:6.2f}  "
                          f"bytes {leak.traced:7.1f}  {leak.types or '-'}")  # fmt: skip
        if runs:
            probe_runs(lake.sites[0], runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--ops", nargs="*")
    parser.add_argument("--runs", type=int, default=200, help="xrootd probe runs (0: none)")
    args = parser.parse_args()
    main(args.calls, args.ops, args.runs)
