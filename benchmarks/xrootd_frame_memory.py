"""Benchmark: what a peer claiming a huge XRootD frame costs, with and without lakeprobe's
handshake pre-check (probes/clients/xrdhandshake.py).

    .venv/bin/python benchmarks/xrootd_frame_memory.py [--mib 128 1024]

For each size, a peer on 127.0.0.1 answers the XRootD handshake correctly and then claims
(and sends) a kXR_protocol answer of that many MiB. In a fresh child process each: XrdCl's
own ping against it (what every probe did before issue 8), and the xrootd probe (pre-check
first). Reported: peak RSS growth of the child. The peers and children are those of
tests/test_xrdhandshake.py. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_xrdhandshake import claims_protocol, peer, run_child


async def main(sizes: list[int]) -> None:
    for mib in sizes:
        async with contextlib.AsyncExitStack() as stack:
            hostile = await stack.enter_async_context(peer(claims_protocol(mib << 20)))
            (xrdcl,) = await run_child("xrdcl", hostile.url)
            (probe,) = await run_child("probe", hostile.url)
        print(f"claim {mib:5} MiB: XrdCl alone grew {xrdcl.grew_mib:7.1f} MiB "
              f"({xrdcl.result[0][:40]}); xrootd probe grew {probe.grew_mib:5.1f} MiB "
              f"({probe.result[1]} at {probe.result[2]})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, nargs="+", default=[128, 1024])
    asyncio.run(main(parser.parse_args().mib))
