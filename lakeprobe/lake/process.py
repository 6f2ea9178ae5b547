"""Running a server as a child process: in its own session (so that stopping it also ends its
helpers), and under a dedicated user when we are root."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.02
PORT_ATTEMPTS = 5


class ServerStartError(RuntimeError):
    """A server that did not come up; the message carries the tail of its output, and
    `address_in_use` says whether the port was taken (then a new port is worth a try)."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(f"{message}\n--- log tail ---\n{log_tail}")
        self.log_tail = log_tail
        self.address_in_use = "address already in use" in log_tail.lower()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (another process may still take it before the
    server binds it: start with `retry_on_taken_port`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def retry_on_taken_port(start_once: Callable[[], None], new_ports: Callable[[], None]) -> None:
    """`start_once()`; when it fails because the port was taken, `new_ports()` and again, at
    most PORT_ATTEMPTS times in all."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            start_once()
            return
        except ServerStartError as error:
            if not error.address_in_use or attempt == PORT_ATTEMPTS:
                raise
            new_ports()


def server_ids(user: str) -> tuple[int, int]:
    """uid/gid a server runs as: `user` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"running servers as root needs a {user!r} user") from None
    return entry.pw_uid, entry.pw_gid


def make_traversable(path: Path) -> None:
    """Give others search (x) permission on `path` and its parents (tempdirs are 0700), so that
    a server running under another user can reach files below it."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & 0o001:
            log.info("adding o+x to %s so that the server user can reach it", directory)
            directory.chmod((mode & 0o7777) | 0o001)


class ChildProcess:
    """Spawn `command` as the leader of a new session (process group = its pid), with stdin
    closed and stdout/stderr appended to `output`."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], cwd: Path, output: Path
    ) -> None:
        with output.open("ab") as out:  # the child keeps its own copy of the descriptor
            self._popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env), cwd=cwd, start_new_session=True,
            )  # fmt: skip
        self.pid = self._popen.pid
        self.returncode: int | None = None

    def exited(self) -> bool:
        """Whether the process has exited. It is not reaped here: until stop() reaps it, its pid
        (and so our process group id) cannot be reused by another process."""
        if self.returncode is not None:
            return True
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None and info.si_pid == self.pid

    def killed_by_signal(self) -> bool:
        """Whether the process has ended by a signal (a crash, unless we sent it). Not
        reaped either: waitid's WNOWAIT reads the status and leaves it."""
        if self.returncode is not None:
            return self.returncode < 0
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None and info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)

    def pause(self) -> None:
        """SIGSTOP, then wait (briefly) until the kernel reports the process stopped."""
        os.kill(self.pid, signal.SIGSTOP)
        stat = Path(f"/proc/{self.pid}/stat")
        deadline = time.monotonic() + 2.0
        while stat.exists() and time.monotonic() < deadline:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
                return
            time.sleep(_POLL_SECONDS)

    def resume(self) -> None:
        if not self.exited():
            os.kill(self.pid, signal.SIGCONT)

    def stop(self, bound: float) -> int:
        """SIGCONT + SIGTERM to the group, SIGKILL to whatever is left after `bound` seconds,
        then reap. Idempotent; returns the exit status (negative: killed by that signal)."""
        if self.returncode is not None:
            return self.returncode
        if not self.exited():
            for sig in (signal.SIGCONT, signal.SIGTERM):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + bound
            while not self.exited() and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
        with contextlib.suppress(ProcessLookupError):  # helpers (xrdcp --server) or a hung leader
            os.killpg(self.pid, signal.SIGKILL)
        self.returncode = self._popen.wait()
        return self.returncode
