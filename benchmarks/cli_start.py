"""Benchmark: CPU of a whole `lakeprobe run` process against the grid tools an operator would
run instead, on one real local lake site (XRootD with its WebDAV port, loopback only).

    .venv/bin/python benchmarks/cli_start.py [--rounds 15]

Interleaved rounds; CPU = user + sys of each child (os.wait4), medians. lakeprobe is measured
as installed: a wheel of this tree in a throwaway venv, as the Docker image installs it. The
dependencies come from the project venv's site-packages and Debian's dist-packages (XRootD's
bindings), both listed as plain paths in a .pth file: their own .pth files do not run. Two of
those run at every start on this machine and are not lakeprobe's: the editable install's import
finder, and a .pth of the build machines' image that imports certifi wherever it is importable
(~25 ms together; the "editable" rows show the project venv with both). Everything is
byte-compiled, as a wheel install is. `gfal-ls` (gfal2-util)
is not packaged for Debian 12: the stand-in is what it does, `python3 -c "import gfal2;
gfal2.creat_context().listdir(url)"` on the system Python with Debian's gfal2 bindings.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from lakeprobe.lake import LocalLake

VENV_BIN = Path(sys.executable).parent
GFAL_LS = "import sys, gfal2; gfal2.creat_context().listdir(sys.argv[1])"
NOT_BUILT = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "lake-run")


def installed(tree: Path, home: Path) -> Path:
    """A venv at `home` with lakeprobe installed from a wheel of `tree`; its bin directory."""
    venv.EnvBuilder(with_pip=False).create(home)
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]  # the project venv's too
    (Path(purelib(home)) / "project-deps.pth").write_text("".join(p + "\n" for p in paths))
    source, wheels = home / "source", home / "wheels"  # a copy: setuptools writes build/
    shutil.copytree(tree, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_BUILT))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source],
                   check=True)  # fmt: skip
    subprocess.run([*pip, "--python", home / "bin" / "python", "install", "--no-deps",
                    "--no-index", "--compile", *wheels.glob("*.whl")], check=True)  # fmt: skip
    return home / "bin"


def purelib(home: Path) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(home / "lib" / version / "site-packages")


def commands(lake: LocalLake, bin_dir: Path, baseline: Path | None) -> dict[str, list[str]]:
    site_, ca = lake.sites[0], str(lake.pki.ca_dir)
    davs, root = f"{site_.davs_url}/lakeprobe", f"{site_.root_url}//lakeprobe"
    lakeprobe, python = [str(bin_dir / "lakeprobe"), "run"], str(bin_dir / "python")
    editable = [str(VENV_BIN / "lakeprobe"), "run"]
    runs = {
        "python -c pass": [python, "-c", "pass"],
        "python -c pass (editable)": [sys.executable, "-c", "pass"],
        # What any webdav run must import: the floor under `lakeprobe run`.
        "imports: asyncio ssl pycurl": [python, "-c", "import asyncio, ssl, pycurl"],
        "lakeprobe run webdav": [*lakeprobe, "webdav", davs, "--ca-dir", ca],
        "lakeprobe run xrootd": [*lakeprobe, "xrootd", root, "--ca-dir", ca],
        "run webdav (editable)": [*editable, "webdav", davs, "--ca-dir", ca],
        "gfal-ls stand-in (davs)": ["/usr/bin/python3", "-c", GFAL_LS, davs],
        "curl PROPFIND": [
            "curl", "-sS", "-o", "/dev/null", "--capath", ca, "-X", "PROPFIND", "-H", "Depth: 1",
            f"{site_.https_url}/lakeprobe/",
        ],
    }  # fmt: skip
    if baseline is not None:
        for probe, url in (("webdav", davs), ("xrootd", root)):
            runs[f"baseline run {probe}"] = [str(baseline / "lakeprobe"), "run", probe, url,
                                             "--ca-dir", ca]  # fmt: skip
    return runs


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
    parser.add_argument(
        "--baseline", type=Path, help="also time a wheel of this tree (e.g. a git worktree)"
    )
    options = parser.parse_args()
    rounds = options.rounds
    tree = Path(__file__).resolve().parent.parent
    for package in ("lakeprobe", "probes", "exporter"):
        compileall.compile_dir(tree / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="lakeprobe-cli-") as home, LocalLake(1) as lake:
        bin_dir = installed(tree, Path(home) / "venv")
        baseline = None
        if options.baseline is not None:
            baseline = installed(options.baseline.resolve(), Path(home) / "baseline")
        env = {**os.environ, "X509_CERT_DIR": str(lake.pki.ca_dir)}
        runs = commands(lake, bin_dir, baseline)
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, argv in runs.items():  # interleaved: each round runs every command
                samples[name].append(cpu_seconds(argv, env))
    floor = statistics.median(samples["gfal-ls stand-in (davs)"])
    print(f"{'command':30} {'median CPU ms':>14} {'vs gfal-ls':>11}  ({rounds} rounds)")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:30} {median * 1000:14.1f} {median / floor:10.2f}x")


if __name__ == "__main__":
    main()
