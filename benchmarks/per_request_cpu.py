"""Benchmark: the daemon's CPU per HTTP request against Debian's prometheus-blackbox-exporter
(an `http` module GETting a file) on the same server: Debian's nginx (lakeprobe/lake/nginxdav.py)
over https and plain http, on loopback.

    .venv/bin/python benchmarks/per_request_cpu.py [--sizes 1KiB,1MiB] [--schemes https,http] \
        [--rounds 3] [--seconds 15] [--probes 300] [--endpoints 20] [--interval 5]

Each round runs every (scheme, size) cell for both sides, interleaved:
- blackbox_exporter, started once, is sent `--probes` /probe requests on loopback, one at a
  time; each makes one GET of a static file of the size (a new connection and, over https, a
  full TLS handshake each: blackbox makes a new client per probe), reads the whole body and
  answers the /probe request with its metrics. Its CPU covers the GET and serving /probe.
- `lakeprobe serve`, started for the cell with only the `webdav` probe and `--endpoints`
  targets on the same server (each its own test directory, every `--interval` seconds,
  file_size_bytes the size), is measured over `--seconds` after one interval of warm-up (every
  target run once). Its CPU covers the whole webdav run: one connection per run; payload
  generation, PUT, HEAD + adler32, GET compared with what was written, PROPFIND, HEAD and
  DELETE of a missing file, DELETE, sweep, plus the scheduler, results store and logging.
CPU is user+sys of the process from /proc/<pid>/stat (threads included); requests are counted
from nginx's access log by User-Agent over the same window. Reported: medians over rounds of
ms CPU per request, and for lakeprobe also per run and the requests per run. The driver and
nginx are not counted. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from lakeprobe.lake import free_ports
from lakeprobe.lake.nginxdav import NginxDav

BLACKBOX = "prometheus-blackbox-exporter"
LAKEPROBE_AGENT = "lakeprobe/"
BLACKBOX_AGENT = "Blackbox Exporter"
TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

Samples = dict[tuple[str, str, str], list[float]]  # (side, scheme, size) -> ms per request


@dataclass(frozen=True, slots=True)
class Window:
    cpu_seconds: float
    requests: int
    runs: int  # lakeprobe: PUT requests (one a run); blackbox: /probe requests


def parse_size(text: str) -> int:
    for unit, factor in (("KiB", 1024), ("MiB", 1024 * 1024)):
        if text.endswith(unit):
            return int(text.removesuffix(unit)) * factor
    return int(text)


def process_cpu(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class AccessLog:
    """nginx's access log (combined format: the User-Agent is the last quoted field)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, agent: str) -> tuple[int, int]:
        """Requests, and PUT requests, made by clients whose User-Agent starts with `agent`."""
        requests = puts = 0
        for line in self.path.read_text(errors="replace").splitlines():
            if line.rsplit('"', 2)[-2].startswith(agent):
                requests += 1
                puts += '"PUT ' in line
        return requests, puts


def wait_http(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Blackbox:
    """One blackbox_exporter on loopback with a GET module per scheme."""

    def __init__(self, workdir: Path, ca_file: Path) -> None:
        module = {"prober": "http", "timeout": "10s"}
        http = {"method": "GET", "valid_status_codes": [200], "preferred_ip_protocol": "ip4"}
        config = {"modules": {"get": {**module, "http": {**http, "tls_config": {
            "ca_file": str(ca_file)}}}}}  # fmt: skip
        path = workdir / "blackbox.yml"
        path.write_text(yaml.safe_dump(config))
        self.address = f"127.0.0.1:{free_ports(1)[0]}"
        command = [BLACKBOX, f"--config.file={path}", f"--web.listen-address={self.address}"]
        with (workdir / "blackbox.log").open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_http(f"http://{self.address}/-/healthy")

    def measure(self, url: str, probes: int, log: AccessLog) -> Window:
        query = urllib.parse.urlencode({"module": "get", "target": url})
        probe_url = f"http://{self.address}/probe?{query}"
        before, cpu = log.count(BLACKBOX_AGENT)[0], process_cpu(self.proc.pid)
        for _ in range(probes):
            with urllib.request.urlopen(probe_url, timeout=15.0) as answer:
                if b"probe_success 1" not in answer.read():
                    raise RuntimeError(f"blackbox probe of {url} failed")
        cpu = process_cpu(self.proc.pid) - cpu
        return Window(cpu, log.count(BLACKBOX_AGENT)[0] - before, probes)


def lakeprobe_config(base_url: str, ca_dir: Path, size: int, args: argparse.Namespace) -> str:
    endpoints = [
        {"name": f"e{n}", "url": base_url, "test_dir": f"/bench/e{n}"}
        for n in range(args.endpoints)
    ]
    return yaml.safe_dump({
        "server": {"listen": f"127.0.0.1:{free_ports(1)[0]}", "probe_host": "bench"},
        "defaults": {"interval": args.interval, "timeout": args.interval, "ca_dir": str(ca_dir)},
        "sites": [{"name": "SITE", "endpoints": endpoints}],
        "probes": [{"name": "webdav", "type": "webdav", "params": {"file_size_bytes": size}}],
    })  # fmt: skip


def measure_lakeprobe(
    config: str, workdir: Path, log: AccessLog, args: argparse.Namespace
) -> Window:
    """Start `lakeprobe serve`, let every target run once, measure `args.seconds`, stop."""
    path = workdir / "lakeprobe.yaml"
    path.write_text(config)
    lakeprobe = str(Path(sys.executable).with_name("lakeprobe"))
    with (workdir / "lakeprobe.log").open("ab") as out:
        proc = subprocess.Popen([lakeprobe, "serve", "-c", str(path)], stdout=out, stderr=out)
    try:
        time.sleep(args.interval + 1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"lakeprobe serve exited: see {workdir / 'lakeprobe.log'}")
        (requests, puts), cpu = log.count(LAKEPROBE_AGENT), process_cpu(proc.pid)
        time.sleep(args.seconds)
        cpu = process_cpu(proc.pid) - cpu
        requests_after, puts_after = log.count(LAKEPROBE_AGENT)
    finally:
        stop(proc)
    return Window(cpu, requests_after - requests, puts_after - puts)


def run(args: argparse.Namespace, workdir: Path) -> None:
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    nginx = NginxDav(workdir / "nginx", plain_http=True)
    with nginx:
        for n in range(args.endpoints):
            nginx.make_dir(f"/bench/e{n}")
        for size in sizes:  # the files blackbox GETs
            nginx.local_path(f"/bench/file-{size}").write_bytes(os.urandom(size))
        log = AccessLog(nginx.base_dir / "log" / "access.log")
        bases = {"https": nginx.https_url, "http": nginx.http_url}
        blackbox = Blackbox(workdir, nginx.pki.ca_cert)
        per_request: Samples = defaultdict(list)
        per_run: Samples = defaultdict(list)
        requests_per_run: Samples = defaultdict(list)
        try:
            for round_ in range(args.rounds):
                for scheme in args.schemes.split(","):
                    for size, label in zip(sizes, args.sizes.split(","), strict=True):
                        key = (scheme, label)
                        got = blackbox.measure(
                            f"{bases[scheme]}/bench/file-{size}", args.probes, log
                        )
                        per_request[("blackbox", *key)].append(got.cpu_seconds / got.requests * 1e3)
                        config = lakeprobe_config(bases[scheme], nginx.pki.ca_dir, size, args)
                        got = measure_lakeprobe(config, workdir, log, args)
                        per_request[("lakeprobe", *key)].append(
                            got.cpu_seconds / got.requests * 1e3
                        )
                        per_run[("lakeprobe", *key)].append(got.cpu_seconds / got.runs * 1e3)
                        requests_per_run[("lakeprobe", *key)].append(got.requests / got.runs)
                        print(f"round {round_ + 1} {scheme} {label}: blackbox "
                              f"{per_request[('blackbox', *key)][-1]:.3f} ms/GET, lakeprobe "
                              f"{per_request[('lakeprobe', *key)][-1]:.3f} ms/request "
                              f"({got.requests} requests, {got.runs} runs)")  # fmt: skip
        finally:
            stop(blackbox.proc)
    report(args, per_request, per_run, requests_per_run)


def report(args: argparse.Namespace, per_request: Samples, per_run: Samples, rpr: Samples) -> None:
    median = statistics.median
    print(f"\nmedians of {args.rounds} rounds (ms CPU, user+sys)")
    print("| scheme | size | blackbox per GET | lakeprobe per request | ratio | "
          "lakeprobe per run | requests per run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for scheme in args.schemes.split(","):
        for label in args.sizes.split(","):
            black, lake = (
                per_request[("blackbox", scheme, label)],
                per_request[("lakeprobe", scheme, label)],
            )
            run_ms, requests = (
                per_run[("lakeprobe", scheme, label)],
                rpr[("lakeprobe", scheme, label)],
            )
            print(f"| {scheme} | {label} | {median(black):.3f} | {median(lake):.3f} | "
                  f"{median(lake) / median(black):.2f}x | {median(run_ms):.2f} | "
                  f"{median(requests):.2f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1KiB,1MiB", help="test file sizes, comma-separated")
    parser.add_argument("--schemes", default="https,http", help="https, http or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="lakeprobe window per cell")
    parser.add_argument("--probes", type=int, default=300, help="blackbox /probe requests per cell")
    parser.add_argument("--endpoints", type=int, default=20, help="lakeprobe targets")
    parser.add_argument("--interval", type=float, default=5.0, help="lakeprobe interval, seconds")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary dir)")
    args = parser.parse_args()
    if shutil.which(BLACKBOX) is None:
        sys.exit(f"{BLACKBOX} not found: apt-get install prometheus-blackbox-exporter")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args, args.workdir)
        return
    with tempfile.TemporaryDirectory(prefix="lakeprobe-per-request-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
