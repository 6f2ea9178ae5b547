"""`lakeprobe demo`, the whole command: the local lake with its tape, the daemon probing it,
and recalls completing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import need_binaries

from lakeprobe.lake import free_ports

pytestmark = pytest.mark.lake

LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script
RECALL_BOUND = 90.0  # s: runs every 3 s, a recall takes 1 s: seconds are enough when idle
STOP_BOUND = 30.0
SERIES = re.compile(r"^(lakeprobe_\w+)\{([^}]*)\} (\S+)$", re.MULTILINE)


def tape_series(listen: str) -> dict[tuple[str, str], float]:
    """(family, endpoint) -> value of the tape-recall probe's series now; {} while the daemon
    is not up yet."""
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    found = {}
    for family, labels, value in SERIES.findall(text):
        endpoint = re.search(r'endpoint="([^"]*)"', labels)
        if 'probe="tape-recall"' in labels and endpoint:
            found[family, endpoint[1]] = float(value)
    return found


def recalled(series: dict[tuple[str, str], float], endpoint: str) -> bool:
    """A recall completed on the endpoint and its latest run succeeded."""
    count = series.get(("lakeprobe_tape_recall_duration_seconds_count", endpoint), 0.0)
    return count >= 1 and series.get(("lakeprobe_probe_success", endpoint)) == 1.0


def test_demo_shows_a_recall_completing(tmp_path: Path) -> None:
    """`lakeprobe demo` gives its first open site a tape, fronts it with a Tape REST double,
    and names both in its banner; within a bounded time /metrics counts a completed recall
    on both tape endpoints (prepare over root://, Tape REST over davs://) with the probe
    succeeding. Ctrl-C then stops the daemon and the lake, exit code 0."""
    need_binaries()
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    output = tmp_path / "demo.log"
    command = [LAKEPROBE, "demo", "--sites", "1", "--token-sites", "none", "--interval", "3"]
    command += ["--tape-delay", "1", "--listen", listen, "--dir", str(tmp_path / "lake")]
    with output.open("w") as log:
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RECALL_BOUND
        series = tape_series(listen)
        while not (recalled(series, "tape-xrootd") and recalled(series, "tape-rest")):
            assert demo.poll() is None, output.read_text()
            assert time.monotonic() < deadline, f"no recall completed: {series}"
            time.sleep(1.0)
            series = tape_series(listen)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)
    assert demo.returncode == 0, output.read_text()
    banner = output.read_text()
    assert "tape on SITE-A" in banner
    assert "/.well-known/wlcg-tape-rest-api" in banner
    assert "lakeprobe_tape_recall_duration_seconds" in banner
    assert "lakeprobe run tape-recall root://" in banner


def fixity_reason(listen: str) -> str | None:
    """The fixity probe's last reason on SITE-A/xrootd, None while it has not run."""
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    for family, labels, _ in SERIES.findall(text):
        if family == "lakeprobe_probe_reason" and 'probe="fixity"' in labels:
            found = re.search(r'reason="([^"]*)"', labels)
            return found[1] if found else None
    return None


def test_demo_corrupts_a_canary_and_fixity_finds_it(tmp_path: Path) -> None:
    """`--corrupt-canary-after` flips bytes of one canary at rest once it is written, says
    which in one line, and the fixity probe's next run reports canary_corrupted."""
    need_binaries()
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    output = tmp_path / "demo.log"
    command = [LAKEPROBE, "demo", "--sites", "1", "--token-sites", "none", "--interval", "2"]
    command += ["--corrupt-canary-after", "1", "--listen", listen, "--dir", str(tmp_path / "l")]
    with output.open("w") as log:
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RECALL_BOUND
        while fixity_reason(listen) != "canary_corrupted":
            assert demo.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)
    assert demo.returncode == 0, output.read_text()
    said = [line for line in output.read_text().splitlines() if "corrupted fixity canary" in line]
    assert len(said) == 1, said
    assert re.search(r"lakeprobe-canary-\S+-1-1024 on SITE-A", said[0]), said


def test_corrupt_canary_after_must_be_seconds() -> None:
    """A negative or non-numeric delay is a usage error (exit 3) naming the option."""
    for value in ("-1", "soon"):
        done = subprocess.run(
            [LAKEPROBE, "demo", "--corrupt-canary-after", value],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 3
        assert f"argument --corrupt-canary-after: not a number of seconds >= 0: '{value}'" in (
            done.stderr
        )
