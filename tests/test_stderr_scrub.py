"""Credentials are scrubbed from stderr as a whole: log records with their tracebacks
(lakeprobe/cli/logs.py), and what C libraries write to fd 2 (lakeprobe/cli/stderrscrub.py),
such as XrdCl's own log at XRD_LOGLEVEL=Debug, which prints `?authz=<token>`."""

from __future__ import annotations

import io
import logging
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeprobe.cli.logs import RedactingFormatter, setup_logging
from lakeprobe.lake import LocalLake
from lakeprobe.probes.credentials.secrets import MASK, Secret

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
FRAME_SECRET = "frame-secret-0123456789abcdef"  # also written literally in _fail's source


def _fail() -> None:
    raise PermissionError("authz=eyJhbGciOiJF.eyJzdWIiOiJs.c2ln frame-secret-0123456789abcdef")


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    """setup_logging() as the CLI calls it, its handler writing to a buffer; the root
    logger's handlers and level are put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("INFO")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved


def test_traceback_is_scrubbed(root_logging: io.StringIO) -> None:
    """log.exception with a token in the exception's message and in a traceback frame's
    source line, and stack_info: the whole record is redacted. A plain Formatter shows
    both (the frame and the message really carry them)."""
    held = Secret(FRAME_SECRET)  # the scrubber knows a value while a Secret holds it
    log = logging.getLogger("lakeprobe.test.traceback")
    try:
        _fail()
    except PermissionError:
        log.exception("probe failed with %s", FRAME_SECRET, stack_info=True)
    text = root_logging.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "in _fail" in text
    assert "Stack (most recent call last)" in text
    assert FRAME_SECRET not in text
    assert JWT.search(text) is None
    assert f"authz={MASK}" in text
    try:
        _fail()
    except PermissionError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, sys.exc_info())
    plain = logging.Formatter().format(record)
    assert plain.count(FRAME_SECRET) == 2  # the message and the frame's source line
    assert JWT.search(plain) is not None
    assert isinstance(logging.getLogger().handlers[0].formatter, RedactingFormatter)
    del held


SCRUBBED_CHILD = r"""
import os, sys
from lakeprobe.cli.stderrscrub import scrubbed_stderr
from lakeprobe.probes.credentials.secrets import Secret
known, shaped = sys.argv[1], sys.argv[2]
held = Secret(known)  # the scrubber knows a value while a Secret holds it
with scrubbed_stderr():
    os.write(2, f"c-level root://h//f?authz={shaped}&x=1 done\n".encode())
    os.write(2, f"split {known[:6]}".encode())
    os.write(2, f"{known[6:]} joined\n".encode())
    print("python", known, file=sys.stderr)
    sys.stderr.write(f"partial {known}")
    os.write(2, f"no newline at the end {known}".encode())
os.write(2, b"\nafter\n")
"""


def test_fd2_and_sys_stderr_are_scrubbed() -> None:
    """In a child process: writes to fd 2 (as C libraries make them, one token split across
    two writes) and to sys.stderr are redacted line by line, none is lost, and fd 2 is
    restored after the block."""
    known, shaped = "known-secret-value-42", "eyJhbGciOi.eyJzdWIiOi.c2ln"
    done = subprocess.run(
        [sys.executable, "-c", SCRUBBED_CHILD, known, shaped],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    err = done.stderr
    assert known not in err
    assert shaped not in err
    for line in ("c-level root://h//f?authz=***&x=1 done", "split *** joined", "python ***",
                 "partial ***", "no newline at the end ***"):  # fmt: skip
        assert line in err, err
    # fd 2 and sys.stderr are two channels: their lines may interleave (a partial Python
    # line may even precede an fd-2 line), but each channel keeps its own order.
    fd_level = [line for line in err.splitlines() if "c-level" in line or "split" in line]
    assert len(fd_level) == 2
    assert err.index("c-level") < err.index("split")
    assert err.endswith("\nafter\n")


STUCK_CHILD = r"""
import os, time
from lakeprobe.cli.stderrscrub import scrubbed_stderr
line = b"x" * 99 + b"\n"
with scrubbed_stderr():
    started = time.monotonic()
    for _ in range(80_000):  # 8 MB; the stuck pipe holds 64 KiB
        os.write(2, line)
    print(f"wrote {time.monotonic() - started:.3f}", flush=True)
    started = time.monotonic()
print(f"restored {time.monotonic() - started:.3f}", flush=True)
"""


def test_stuck_stderr_does_not_block_fd2_writers() -> None:
    """A child whose stderr nobody reads: 8 MB written to fd 2 still goes through within
    seconds (lines are dropped, not waited for), and leaving the block takes at most the
    drain bound (about 2 s), not forever."""
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while len(lines) < 2 and time.monotonic() < deadline:
        if select.select([child.stdout], [], [], 1)[0]:
            lines.append(child.stdout.readline().decode())
    _, err = child.communicate(timeout=30)  # only now is stderr read
    timings = dict(line.split() for line in lines)
    assert float(timings["wrote"]) < 5, timings
    assert float(timings["restored"]) < 3.5, timings
    assert len(err) < 4_000_000  # most lines were dropped


@pytest.fixture
def token_site(token_lake: LocalLake, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The token lake's config (its site over roots://, tokens from the lake's issuer) and
    an environment with XrdCl's log at Debug and the lake's CA for roots://."""
    config = token_lake.write_config(tmp_path / "lake.yaml", "127.0.0.1:1", timeout=15)
    env = {**os.environ, "X509_CERT_DIR": str(token_lake.pki.ca_dir), "XRD_LOGLEVEL": "Debug"}
    return config, env


RUN_ARGS = ["--log-level", "DEBUG", "run", "-c", "CONFIG", "xrootd", "--site", "SITE-A"]
UNSCRUBBED = """
import sys
from lakeprobe.cli import main
args = main._parser().parse_args(sys.argv[1:])
main.setup_logging(args.log_level)
sys.exit(main._dispatch(args))
"""


@pytest.mark.lake
def test_xrdcl_debug_log_carries_no_token(token_site: tuple[Path, dict[str, str]]) -> None:
    """`lakeprobe run xrootd` on a token-protected site with XRD_LOGLEVEL=Debug: the run
    passes (the token was used), XrdCl printed its debug log with the request paths, whose
    `authz=` is masked, and no JWT appears on stdout or stderr. Control: the same command
    without the stderr scrubber prints the JWT, so this test sees a leak."""
    config, env = token_site
    args = [str(config) if a == "CONFIG" else a for a in RUN_ARGS]
    done = subprocess.run([sys.executable, "-m", "lakeprobe.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "[Debug  ][ExDbgMsg" in done.stderr
    assert f"?authz={MASK}" in done.stderr
    assert JWT.search(done.stdout + done.stderr) is None
    control = subprocess.run([sys.executable, "-c", UNSCRUBBED, *args], env=env,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert control.returncode == 0
    assert JWT.search(control.stderr) is not None
