"""Benchmark: adler32 with the system zlib (the standard library) against zlib-ng (what the
probes use, probes/core/testfiles.py), CPU per call for the default 1 MiB test file and 1 GiB.

    .venv/bin/python benchmarks/adler32_speed.py [--rounds 5]

Interleaved rounds in one process; medians of per-call CPU (process_time). The two must give
the same value (checked). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import time
import zlib
from collections.abc import Callable

from zlib_ng import zlib_ng

SIZES = {"1 MiB": (1 << 20, 200), "1 GiB": (1 << 30, 1)}  # size, calls per round


def per_call(function: Callable[[bytes], int], data: bytes, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        function(data)
    return (time.process_time() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print("| size | zlib ms | zlib-ng ms | ratio |")
    print("|---|---|---|---|")
    for name, (size, calls) in SIZES.items():
        data = b"".join(ssl.RAND_bytes(1 << 20) for _ in range(size >> 20))
        if zlib.adler32(data) != zlib_ng.adler32(data):
            raise SystemExit(f"{name}: zlib-ng's adler32 differs from zlib's")
        system, simd = [], []
        for _ in range(rounds):
            system.append(per_call(zlib.adler32, data, calls))
            simd.append(per_call(zlib_ng.adler32, data, calls))
        slow, fast = statistics.median(system), statistics.median(simd)
        print(f"| {name} | {slow * 1000:.3f} | {fast * 1000:.3f} | {slow / fast:.1f}x |")


if __name__ == "__main__":
    main()
