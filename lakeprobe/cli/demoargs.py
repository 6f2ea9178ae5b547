"""The command lines of `lakeprobe lake` and `lakeprobe demo` (lakeprobe/cli/demo.py runs
them): apart, so that every other command's parser is built without loading the demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("lake", "demo")
TAPE_DELAY = 5.0  # s: slow enough to see a recall pending, quick enough to see it complete


def add_commands(commands: Any) -> None:
    lake = commands.add_parser("lake", help="run a local XRootD data lake until interrupted")
    demo = commands.add_parser("demo", help="local lake + the daemon probing it")
    for parser in (lake, demo):
        parser.add_argument("--sites", type=int, default=2, help="number of XRootD sites")
        parser.add_argument("--dir", type=Path, help="where the lake lives (default: a temp dir)")
        parser.add_argument("--listen", default="127.0.0.1:9780", help="daemon HOST:PORT")
        parser.add_argument("--interval", type=float, default=15.0, help="probe interval, s")
        parser.add_argument(
            "--token-sites",
            default="last",
            help="sites that need tokens from the lake's issuer: comma-separated names, "
            "'all', 'none' or 'last' (default: the last site)",
        )
        parser.add_argument(
            "--tape-delay",
            type=float,
            default=TAPE_DELAY,
            help="seconds the first open site's emulated tape takes to recall or archive a file",
        )
    lake.add_argument("--config-out", type=Path, help="write a lakeprobe config for the lake")
    demo.add_argument(
        "--corrupt-canary-after",
        type=_seconds,
        metavar="SECONDS",
        help="then flip bytes of one fixity canary at rest (mtime kept): the next fixity run "
        "reports canary_corrupted",
    )
    demo.add_argument(
        "--monitoring",
        action="store_true",
        help="also run Prometheus (with alerting/lakeprobe-rules.yaml) and Alertmanager",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds >= 0: {text!r}")
    return value
