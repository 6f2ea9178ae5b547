"""Benchmark: how the VM's free memory changes a 1 GiB upload's rate, for curl alone, so that
data_path.py's conditioning (`warm_free_memory`) rests on a measurement.

    .venv/bin/python benchmarks/free_memory_effect.py [--rounds 6] [--workdir DIR]

Debian's nginx (dav, plain http on loopback, data on DIR, default a tmpfs under /dev/shm)
takes `curl -T` of the same 1 GiB file in three conditions, interleaved in a rotated order:
- plain: curl alone;
- held: while a child process holds 1 GiB it has just filled with random bytes (as a probe
  run refills its payload just before its PUT);
- warmed: right after this process faulted in and freed 2 GiB (`warm_free_memory`).
On a VM whose balloon reports free pages to the host (virtio-balloon free page reporting),
the server's pages for the upload come back from the host when no memory was freed a moment
before. Rates are curl's size / (time_total - time_pretransfer), MiB/s, medians. Every file
is deleted after its upload. Loopback only. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from data_path import MIB, Endpoint, curl, curl_delete, warm_free_memory

from lakeprobe.lake.nginxdav import NginxDav

SIZE = 1024 * MIB
HOLDER = """
import ssl, sys
buffer = memoryview(bytearray(int(sys.argv[1])))
for start in range(0, len(buffer), 1 << 20):
    buffer[start : start + (1 << 20)] = ssl.RAND_bytes(min(1 << 20, len(buffer) - start))
print("filled", flush=True)
sys.stdin.read()
"""


def curl_put(endpoint: Endpoint, path: str, source: Path) -> float:
    rate, _ = curl(endpoint, "PUT", path, source, SIZE)
    curl_delete(endpoint, path)
    return rate


def held_put(endpoint: Endpoint, path: str, source: Path) -> float:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(SIZE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        if holder.stdout is None or holder.stdout.readline() != b"filled\n":
            raise RuntimeError("the memory-holding child did not fill its buffer")
        return curl_put(endpoint, path, source)
    finally:
        holder.communicate(b"")  # end of stdin: the holder exits and frees its memory


def warmed_put(endpoint: Endpoint, path: str, source: Path) -> float:
    warm_free_memory(2 * SIZE)
    return curl_put(endpoint, path, source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakeprobe-freemem-", dir="/dev/shm"))
    try:
        rates = measure(work, args.rounds)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"| condition | curl PUT MiB/s, median of {args.rounds} | all |")
    print("|---|---|---|")
    for name, values in rates.items():
        listed = " ".join(f"{value:.0f}" for value in values)
        print(f"| {name} | {statistics.median(values):.0f} | {listed} |")


def measure(work: Path, rounds: int) -> dict[str, list[float]]:
    source = work / "source"
    with source.open("wb") as handle:
        for _ in range(SIZE // (64 * MIB)):
            handle.write(os.urandom(64 * MIB))
    conditions = {"plain": curl_put, "held": held_put, "warmed": warmed_put}
    rates: dict[str, list[float]] = {name: [] for name in conditions}
    with NginxDav(work / "nginx", plain_http=True) as nginx:
        nginx.make_dir("/bench")
        endpoint = Endpoint("nginx-http", nginx.http_url, nginx.pki.ca_dir)
        names = list(conditions)
        for turn in range(rounds):
            for name in names[turn % 3 :] + names[: turn % 3]:
                path = f"/bench/{name}-{turn}"
                rates[name].append(conditions[name](endpoint, path, source))
    source.unlink()
    return rates


if __name__ == "__main__":
    main()
