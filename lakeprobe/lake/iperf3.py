"""A real iperf3 server on loopback (Debian's iperf3), one per local site: the `iperf3` probe's
destination.

`iperf3 -s -B HOST -p PORT`: `-B` binds the one loopback address, 127.0.0.1 or ::1 (iperf3
binds a single address; without `-B` it listens on every interface, which a test must not).
A site wanting both IP versions runs two servers. Ready when it prints "Server listening"
(`--forceflush`: its output goes to a file, unbuffered); a probe connection would count as a
(failed) test. Faults: `stop()` (connection refused), `pause()` (accepts, never answers).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from lakeprobe.lake.process import ChildProcess, ServerStartError, free_port, retry_on_taken_port

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1")
_STOP_BOUND_SECONDS = 5.0
_POLL_SECONDS = 0.02


class Iperf3StartError(ServerStartError):
    """iperf3 did not come up; the message carries the tail of its output."""


class Iperf3Server:
    """One `iperf3 -s` bound to `host` (a loopback address) on a free port, its output in
    `base_dir`/iperf3-<v4|v6>.log."""

    def __init__(self, base_dir: Path, host: str = "127.0.0.1", binary: str = "iperf3") -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"iperf3 servers bind loopback only: {LOOPBACK_HOSTS}, not {host!r}")
        self.base_dir = base_dir
        self.host = host
        self.binary = binary
        self.port = free_port(host)
        self.output = base_dir / f"iperf3-v{6 if ':' in host else 4}.log"
        self._proc: ChildProcess | None = None

    def __repr__(self) -> str:
        return f"Iperf3Server({self.url}, running={self.running})"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"iperf3://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._proc.exited()

    def start(self, timeout: float = 5.0) -> None:
        """Start and wait until it listens; on a taken port, retry on another. Idempotent."""
        retry_on_taken_port(lambda: self._start_once(timeout), self._new_port)

    def _new_port(self) -> None:
        self.port = free_port(self.host)

    def _start_once(self, timeout: float) -> None:
        if self.running:
            return
        self.stop()
        binary = shutil.which(self.binary)
        if binary is None:
            raise FileNotFoundError(f"{self.binary} not found")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        offset = self.output.stat().st_size if self.output.exists() else 0
        command = [binary, "-s", "-B", self.host, "-p", str(self.port), "--forceflush"]
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
        self._proc = ChildProcess(command, env, self.base_dir, self.output)
        try:
            self._wait_ready(offset, timeout)
        except BaseException:
            self.stop()
            raise
        log.info("iperf3 server up (pid %d): %s", self._proc.pid, self.url)

    def _wait_ready(self, offset: int, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while f"Server listening on {self.port}" not in self._output_since(offset):
            if self._proc.exited():
                raise Iperf3StartError("iperf3 exited during start-up", self._output_since(offset))
            if time.monotonic() > deadline:
                raise Iperf3StartError(
                    f"iperf3 not ready after {timeout} s", self._output_since(offset)
                )
            time.sleep(_POLL_SECONDS)

    def _output_since(self, offset: int) -> str:
        if not self.output.exists():
            return ""
        with self.output.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")[-4000:]

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, but nothing answers."""
        if self._proc is not None:
            self._proc.pause()

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.resume()

    def stop(self) -> None:
        """Stop exactly our server (its process group). Idempotent; start() works again."""
        proc, self._proc = self._proc, None
        if proc is not None:
            status = proc.stop(_STOP_BOUND_SECONDS)
            log.info("iperf3 server stopped (pid %d, status %d)", proc.pid, status)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
