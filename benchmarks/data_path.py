"""Benchmark: the webdav probe's PUT and GET throughput against curl (and davix) on the same
endpoint, for XRootD's XrdHttp over https (a LocalLake site) and Debian's nginx with dav over
https and plain http, all on loopback.

    .venv/bin/python benchmarks/data_path.py [--sizes 1MiB,1GiB] [--repeats 5] \
        [--large-repeats 3] [--no-davix] [--workdir DIR]

Every repeat runs each client once per endpoint, interleaved (curl PUT, curl GET, davix,
the probe), so load from other processes on the machine falls on all of them alike. Rates are
MiB/s (2**20 bytes a second), medians. The probe's rates are the ones it reports
(Measurement.WRITE_THROUGHPUT / READ_THROUGHPUT: request sent to answer read, on a connection
its OPTIONS opened); curl's are size / (time_total - time_pretransfer), the same span; davix's
are size / the process's wall time (it has no such timer, so it includes start-up and the TLS
handshake). CPU is user+sys: of this process for a whole probe run (every step, payload
included), of the children for curl and davix (RUSAGE_CHILDREN; servers are not waited for, so
they never count). The probe runs share one ProbeResources, as in the daemon, so its large
payload buffers are reused from the second run on.

Every client starts from the same memory state: curl uploads a new file and deletes it after
its GET, as the probe does, and before each client the benchmark faults in and frees twice the
file size of anonymous memory (`warm_free_memory`). On a VM whose balloon reports free pages to
the host (virtio-balloon free page reporting, as on the project's machines), memory freed more
than a moment ago is handed back and must be faulted in again on the host; the server's
allocation for a 1 GiB upload then ran 2-3x slower for whichever client came after a pause
(curl itself fell from ~850 to ~300 MiB/s while another process had just filled 1 GiB).
Without the conditioning the fixed order favoured curl: its uploads followed the probe's
DELETE of 1 GiB, the probe's followed curl's GET. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mmap
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lakeprobe.lake import LocalLake
from lakeprobe.lake.nginxdav import NginxDav
from lakeprobe.probes.core.outcome import Measurement
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

MIB = 1024 * 1024
TEST_DIR = "/lakeprobe"
LOG = logging.getLogger("bench.data_path")
PROCESS_TIMEOUT = 600.0
# One set for every probe run, as in the daemon: large payload buffers are reused across runs
# (probes/core/payloads.py); a one-off `lakeprobe run` starts without one.
RESOURCES = ProbeResources()

# (name, sample) -> list of (MiB/s, CPU seconds)
Samples = dict[tuple[str, str, int, str], list[tuple[float, float]]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str  # https://... or http://...
    ca_dir: Path


def parse_size(text: str) -> int:
    units = {"KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text.removesuffix(unit)) * factor
    return int(text)


def show_size(size: int) -> str:
    return f"{size // (1024 * MIB)} GiB" if size >= 1024 * MIB else f"{size // MIB} MiB"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def warm_free_memory(size: int) -> None:
    """Fault in `size` bytes of anonymous memory and free it at once, so the next allocation
    (the server's pages for an upload) finds memory the host still backs (see the module
    docstring)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    region = mmap.mmap(-1, size, flags=flags)
    try:
        for offset in range(0, size, mmap.PAGESIZE):
            region[offset] = 1
    finally:
        region.close()


def run_tool(command: list[str]) -> tuple[str, float, float]:
    """stdout, wall seconds and CPU seconds of one client process."""
    cpu, started = children_cpu(), time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout, wall, children_cpu() - cpu


def curl(
    endpoint: Endpoint, method: str, path: str, source: Path, size: int
) -> tuple[float, float]:
    """MiB/s over the transfer itself, and curl's CPU seconds."""
    common = ["curl", "-sS", "--fail", "--capath", str(endpoint.ca_dir), "-H", "Expect:"]
    timing = ["-w", "%{time_pretransfer} %{time_total}", "-o", "/dev/null"]
    io = ["-T", str(source)] if method == "PUT" else []
    out, _, cpu = run_tool([*common, *io, *timing, endpoint.url + path])
    pretransfer, total = map(float, out.split())
    return size / MIB / max(total - pretransfer, 1e-6), cpu


def curl_delete(endpoint: Endpoint, path: str) -> None:
    """Untimed: the file goes, as the probe's does at the end of its run."""
    run_tool(["curl", "-sS", "--fail", "--capath", str(endpoint.ca_dir), "-X", "DELETE",
              "-o", "/dev/null", endpoint.url + path])  # fmt: skip


def davix(
    endpoint: Endpoint, method: str, path: str, source: Path, size: int
) -> tuple[float, float]:
    url, capath = endpoint.url + path, ["--capath", str(endpoint.ca_dir)]
    if method == "PUT":
        command = ["davix-put", *capath, str(source), url]
    else:
        command = ["davix-get", *capath, url, "/dev/null"]
    _, wall, cpu = run_tool(command)
    return size / MIB / wall, cpu


def probe(endpoint: Endpoint, size: int) -> tuple[float, float, float]:
    """The rates the probe reports (write, read MiB/s) and its run's CPU seconds."""
    target = Target(
        site="BENCH", endpoint=endpoint.name, url=endpoint.url, test_dir=TEST_DIR,
        ca_dir=endpoint.ca_dir,
    )  # fmt: skip
    params = WebdavParams(file_size_bytes=size)
    cpu = self_cpu()
    outcome = asyncio.run(
        run_probe(
            PROBE_TYPE,
            target,
            params,
            timeout=PROCESS_TIMEOUT,
            probe_host="bench",
            log=LOG,
            resources=RESOURCES,
        )
    )
    cpu = self_cpu() - cpu
    result = outcome.result
    if not result.success:
        raise RuntimeError(f"probe on {endpoint.name} failed: {result.reason} {result.detail}")
    write = result.measurements[Measurement.WRITE_THROUGHPUT] / MIB
    read = result.measurements[Measurement.READ_THROUGHPUT] / MIB
    return write, read, cpu


def one_round(
    endpoints: list[Endpoint], size: int, source: Path, samples: Samples, use_davix: bool,
    turn: int, warm: bool,
) -> None:  # fmt: skip
    """Each client's PUT and GET per endpoint, in an order rotated by `turn` (the client
    that goes after two 1 GiB uploads meets the kernel's writeback of theirs), with the page
    cache's dirty pages written out (`sync`, not timed) and free memory warmed (not timed)
    before each client starts. Every client's file is new and deleted after its GET."""
    tools: list[tuple[str, Callable[..., tuple[float, float]]]] = [("curl", curl)]
    if use_davix:
        tools.append(("davix", davix))
    for endpoint in endpoints:
        clients = [*tools, ("probe", None)]
        shift = turn % len(clients)
        for tool, transfer in clients[shift:] + clients[:shift]:
            os.sync()
            if warm:
                warm_free_memory(2 * size)
            if transfer is None:
                write, read, cpu = probe(endpoint, size)
                samples[(endpoint.name, "probe", size, "PUT")].append((write, cpu))
                samples[(endpoint.name, "probe", size, "GET")].append((read, cpu))
                continue
            path = f"{TEST_DIR}/bench-{tool}-{size}-{turn}"
            for method in ("PUT", "GET"):
                samples[(endpoint.name, tool, size, method)].append(
                    transfer(endpoint, method, path, source, size)
                )
            curl_delete(endpoint, path)


def report(samples: Samples, endpoints: list[Endpoint], sizes: list[int], tools: list[str]) -> None:
    print("| endpoint | size | method | " + " | ".join(f"{t} MiB/s" for t in tools)
          + " | probe/curl | CPU s: " + " / ".join(tools) + " |")  # fmt: skip
    print("|---" * (5 + len(tools)) + "|")
    for endpoint in endpoints:
        for size in sizes:
            for method in ("PUT", "GET"):
                rates, cpus = [], []
                for tool in tools:
                    got = samples[(endpoint.name, tool, size, method)]
                    rates.append(statistics.median(rate for rate, _ in got))
                    cpus.append(statistics.median(cpu for _, cpu in got))
                ratio = rates[tools.index("probe")] / rates[0]
                cells = " | ".join(f"{rate:.0f}" for rate in rates)
                cpu_cells = " / ".join(f"{cpu:.2f}" for cpu in cpus)
                print(f"| {endpoint.name} | {show_size(size)} | {method} | {cells} "
                      f"| {ratio:.2f}x | {cpu_cells} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1MiB,1GiB")
    parser.add_argument("--repeats", type=int, default=5, help="below 1 GiB")
    parser.add_argument("--large-repeats", type=int, default=3, help="for 1 GiB and more")
    parser.add_argument("--no-davix", action="store_true")
    parser.add_argument(
        "--no-warm", action="store_true", help="skip warm_free_memory (to see its effect)"
    )
    parser.add_argument("--endpoints", default="xrootd-https,nginx-https,nginx-http")
    parser.add_argument("--workdir", type=Path, help="on disk, with room for 4 files per size")
    args = parser.parse_args()
    sizes = [parse_size(text) for text in args.sizes.split(",")]
    use_davix = not args.no_davix and shutil.which("davix-put") is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakeprobe-datapath-"))
    work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    samples: Samples = defaultdict(list)
    try:
        with (
            LocalLake(1, base_dir=work / "lake") as lake,
            NginxDav(work / "nginx", lake.pki, plain_http=True) as nginx,
        ):
            nginx.make_dir(TEST_DIR)
            ca = lake.pki.ca_dir
            every = {
                "xrootd-https": Endpoint("xrootd-https", lake.sites[0].https_url, ca),
                "nginx-https": Endpoint("nginx-https", nginx.https_url, ca),
                "nginx-http": Endpoint("nginx-http", nginx.http_url, ca),
            }
            endpoints = [every[name] for name in args.endpoints.split(",")]
            for size in sizes:
                source = work / f"source-{size}"
                with source.open("wb") as handle:
                    for _ in range(-(-size // (64 * MIB))):
                        handle.write(os.urandom(min(size, 64 * MIB)))
                    handle.truncate(size)
                repeats = args.large_repeats if size >= 1024 * MIB else args.repeats
                for turn in range(repeats):
                    one_round(endpoints, size, source, samples, use_davix, turn, not args.no_warm)
                source.unlink()
        tools = ["curl", *(["davix"] if use_davix else []), "probe"]
        report(samples, endpoints, sizes, tools)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
