"""Benchmark: CPU of a whole `lakeprobe run` process against the grid tools an operator would
run instead, on one real local lake site (XRootD with its WebDAV port, loopback only).

    .venv/bin/python benchmarks/cli_start.py [--rounds 15]

Interleaved rounds; CPU = user + sys of each child (os.wait4), medians. lakeprobe's modules are
byte-compiled first (`compileall`), as a wheel install does: an editable checkout under
PYTHONDONTWRITEBYTECODE=1 (set on the project's machines) would compile every module from source
in every run, ~50-90 ms that no installed lakeprobe pays. `gfal-ls` (gfal2-util)
is not packaged for Debian 13: the stand-in is what it does, `python3 -c "import gfal2;
gfal2.creat_context().listdir(url)"` on the system Python with Debian's gfal2 bindings.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
from pathlib import Path

from lakeprobe.lake import LocalLake

VENV_BIN = Path(sys.executable).parent
GFAL_LS = "import sys, gfal2; gfal2.creat_context().listdir(sys.argv[1])"


def commands(lake: LocalLake) -> dict[str, list[str]]:
    site, ca = lake.sites[0], str(lake.pki.ca_dir)
    davs, root = f"{site.davs_url}/lakeprobe", f"{site.root_url}//lakeprobe"
    lakeprobe = [str(VENV_BIN / "lakeprobe"), "run"]
    return {
        "python -c pass (venv)": [sys.executable, "-c", "pass"],
        # What any webdav run must import: the floor under `lakeprobe run`, with and without
        # pydantic (the probes' parameters and the endpoint checks are pydantic models).
        "imports: asyncio ssl pycurl": [sys.executable, "-c", "import asyncio, ssl, pycurl"],
        "imports: + pydantic": [
            sys.executable, "-c", "import asyncio, ssl, pycurl, pydantic.main",
        ],
        "lakeprobe run webdav": [*lakeprobe, "webdav", davs, "--ca-dir", ca],
        "lakeprobe run xrootd": [*lakeprobe, "xrootd", root, "--ca-dir", ca],
        "gfal-ls stand-in (davs)": ["/usr/bin/python3", "-c", GFAL_LS, davs],
        "curl PROPFIND": [
            "curl", "-sS", "-o", "/dev/null", "--capath", ca, "-X", "PROPFIND", "-H", "Depth: 1",
            f"{site.https_url}/lakeprobe/",
        ],
    }  # fmt: skip


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + sys CPU of one child process, which must succeed."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {child.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    tree = Path(__file__).resolve().parent.parent
    for package in ("lakeprobe", "probes", "exporter"):
        compileall.compile_dir(tree / package, quiet=1)
    with LocalLake(1) as lake:
        env = {**os.environ, "X509_CERT_DIR": str(lake.pki.ca_dir)}
        runs = commands(lake)
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, argv in runs.items():  # interleaved: each round runs every command
                samples[name].append(cpu_seconds(argv, env))
    floor = statistics.median(samples["gfal-ls stand-in (davs)"])
    print(f"{'command':28} {'median CPU ms':>14} {'vs gfal-ls':>11}  ({rounds} rounds)")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:28} {median * 1000:14.1f} {median / floor:10.2f}x")


if __name__ == "__main__":
    main()
