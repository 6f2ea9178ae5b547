"""Helpers for tests against a real iperf3 server (lakeprobe/lake/iperf3.py)."""

from __future__ import annotations

import subprocess
import time

from lakeprobe.lake.iperf3 import Iperf3Server


def hold(server: Iperf3Server, seconds: int) -> subprocess.Popen[bytes]:
    """Someone else's client running a test (not ours: no shared lock); returns once it runs."""
    offset = server.output.stat().st_size
    holder = subprocess.Popen(
        ["iperf3", "-c", "127.0.0.1", "-p", str(server.port), "-t", str(seconds), "-J"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 5
    while b"Accepted connection" not in server.output.read_bytes()[offset:]:
        assert time.monotonic() < deadline, "the other client never started its test"
        assert holder.poll() is None
        time.sleep(0.02)
    return holder
