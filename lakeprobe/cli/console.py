"""The `lakeprobe` console script (pyproject's entry point).

A command starts by loading ~250 modules. Left on, the garbage collector scans their objects
over and over while they load (44 collections, ~4.5 ms of a ~95 ms `lakeprobe run webdav`,
benchmarks/RESULTS.md), and none of them is garbage. So it is off until the command has
loaded what it needs; then those objects are frozen out of its scans and it runs as usual
(`startup_done`), through the whole of a probe run and a daemon's life."""

from __future__ import annotations

import gc
from typing import NoReturn


def console() -> NoReturn:
    gc.disable()
    from lakeprobe.cli.main import console as run_command

    run_command()


def startup_done() -> None:
    """The collector back on after `console`'s start; a no-op when it was never turned off
    (main() called in-process, the tests)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
