"""SIGTERM ends the real daemon within its grace even while a copy thread is stuck in XrdCl."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from daemon_helpers import SHUTDOWN_BOUND
from lakeprobe.lake import LocalLake, free_ports

pytestmark = pytest.mark.lake

LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script
BUSY = re.compile(r"^lakeprobe_copy_threads_busy (\S+)$", re.MULTILINE)


def _busy_copies(base: str) -> float:
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:
            match = BUSY.search(reply.read().decode())
    except OSError:
        return 0.0
    return float(match[1]) if match else 0.0


def test_sigterm_with_a_hung_copy_exits_within_the_grace(
    lake_factory: Callable[[int], LocalLake], tmp_path: Path
) -> None:
    """The destination's transfer helper never moves a byte, and once it has started the
    destination is frozen (SIGSTOP): XrdCl's copy thread then waits on it for minutes.
    SIGTERM still ends the daemon within its 10 s grace, exit code 0, saying why."""
    lake = lake_factory(2)
    destination = lake.sites[1]
    destination.stop()
    helper = destination.base_dir / "stall-helper.sh"
    pulling = destination.base_dir / "pulling"  # the helper has started: the transfer runs
    helper.write_text(f"#!/bin/sh\ntouch {pulling}\nexec sleep 120\n")
    helper.chmod(0o755)
    destination.extra_config.append(f"ofs.tpc pgm {helper}")
    destination.start()
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    config = lake.config_dict(listen, interval=20, timeout=18)
    config["probes"] = [
        {
            "name": "xrootd-tpc",
            "type": "xrootd-tpc",
            "targets": {"pairs": ["SITE-A->SITE-B"]},
            "params": {"stall_seconds": 15},
        }
    ]
    path = tmp_path / "lakeprobe.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen([LAKEPROBE, "serve", "-c", str(path)], stdout=out,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://{listen}"
        waited = time.monotonic()
        while _busy_copies(base) < 1 or not pulling.exists():
            assert time.monotonic() - waited < 40, "the copy never started"
            time.sleep(0.2)
        # Frozen only now: frozen earlier, XrdCl's connect to it fails within 11 s by itself
        destination.pause()
        time.sleep(3)  # XrdCl's next 2.5 s check now waits on the frozen destination
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=SHUTDOWN_BOUND + 60)
        took = time.monotonic() - started
    finally:
        destination.resume()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert took < SHUTDOWN_BOUND, f"exit took {took:.1f} s"
    assert "copy threads still busy" in text
    assert "Traceback" not in text
