"""`lakeprobe lake` (a real local data lake) and `lakeprobe demo` (the lake plus the daemon)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from lakeprobe.config import load_config


def add_commands(commands: Any) -> None:
    lake = commands.add_parser("lake", help="run a local XRootD data lake until interrupted")
    demo = commands.add_parser("demo", help="local lake + the daemon probing it")
    for parser in (lake, demo):
        parser.add_argument("--sites", type=int, default=2, help="number of XRootD sites")
        parser.add_argument("--dir", type=Path, help="where the lake lives (default: a temp dir)")
        parser.add_argument("--listen", default="127.0.0.1:9780", help="daemon HOST:PORT")
        parser.add_argument("--interval", type=float, default=15.0, help="probe interval, s")
    lake.add_argument("--config-out", type=Path, help="write a lakeprobe config for the lake")


def dispatch(args: argparse.Namespace) -> int:
    from lakeprobe.lake import LocalLake, require_binaries

    missing = require_binaries()
    if missing:
        print(f"missing binaries: {', '.join(missing)} (run `make install` first)")
        return 3
    # Without --dir the lake lives in a temporary directory, removed when it stops.
    with LocalLake(args.sites, base_dir=args.dir) as lake:
        config_path = getattr(args, "config_out", None) or lake.base_dir / "lakeprobe.yaml"
        lake.write_config(
            config_path,
            listen=args.listen,
            interval=args.interval,
            timeout=min(args.interval, 20.0),
            transfers=True,
        )
        _banner(lake, config_path, args)
        if args.command == "lake":
            asyncio.run(_wait_for_signal())
        else:
            _serve(config_path)
    return 0


def _serve(config_path: Path) -> None:
    from lakeprobe.exporter.daemon import Daemon
    from lakeprobe.exporter.server import serve

    asyncio.run(serve(Daemon(config_path, load_config(config_path))))


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _banner(lake: Any, config_path: Path, args: argparse.Namespace) -> None:
    first = lake.sites[0]
    lines = [f"local data lake with {len(lake.sites)} XRootD sites:"]
    lines += [f"  {s.name}: {s.root_url}  {s.davs_url}" for s in lake.sites]
    lines += [
        f"config: {config_path}",
        f"CA directory: {lake.pki.ca_dir}",
    ]
    if args.command == "demo":
        lines += [f"metrics: curl http://{args.listen}/metrics"]
    lines += [
        "try, in another shell (.venv/bin/lakeprobe if not on PATH):",
        f"  lakeprobe run xrootd {first.root_url} --test-dir {lake.test_dir}",
        f"  lakeprobe run webdav {first.davs_url} --test-dir {lake.test_dir} "
        f"--ca-dir {lake.pki.ca_dir}",
        f"  lakeprobe run -c {config_path} webdav --site {first.name}",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
