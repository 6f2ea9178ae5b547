"""One real XRootD server on loopback: root:// plus HTTP(S) with HTTP-TPC, from stock plugins."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from lakeprobe.lake import tmpfs
from lakeprobe.lake.issuer_process import LocalIssuer
from lakeprobe.lake.pki import TestPki
from lakeprobe.lake.process import ChildProcess, make_traversable, server_ids
from lakeprobe.lake.site_tokens import seed_key_cache, write_token_config
from lakeprobe.lake.tape import TapeEmulation

log = logging.getLogger(__name__)

SERVER_USER = "xrootd"  # xrootd refuses to run as root; Debian's package creates this user
_STOP_BOUND_SECONDS = 5.0
_POLL_SECONDS = 0.02
# The framework's last start-up line; earlier lines also say "initialization completed".
_READY = re.compile(r"^------ xrootd \S+ initialization (completed|failed)\.", re.MULTILINE)


class SiteStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(f"{message}\n--- log tail ---\n{log_tail}")
        self.log_tail = log_tail
        self.address_in_use = "address already in use" in log_tail.lower()
        # Died before writing a word (seen once in a full test run, not reproducible): most
        # likely the same port race before the log opened; worth a retry on new ports.
        self.silent = not log_tail.strip()


class XrootdSite:
    """An XRootD server process with its own data, admin, run, cache and log directories under
    `base_dir`, serving root:// on `root_port` and http(s)/HTTP-TPC on `http_port`. With a
    `token_issuer` (set before start), every access needs a token from it for `audience`.
    `checksums=False` leaves out `xrootd.chksum`, as sites without checksums configure it:
    root:// checksum queries are then unsupported and XrdHttp answers 405 to any request
    carrying `Want-Digest`. With `data_size_bytes` (set before start), the data directory is
    a tmpfs of that size, a disk that fills up (`fill_disk()`); `close()` unmounts it. With
    `tape`, paths below its tape_root are tape-backed (lakeprobe/lake/tape.py)."""

    def __init__(
        self,
        name: str,
        base_dir: Path,
        pki: TestPki,
        root_port: int,
        http_port: int,
        token_issuer: LocalIssuer | None = None,
        checksums: bool = True,
        data_size_bytes: int | None = None,
        tape: TapeEmulation | None = None,
    ) -> None:
        self.name = name
        self.data_size_bytes = data_size_bytes
        self.checksums = checksums
        self.base_dir = base_dir
        self.pki = pki
        self.root_port = root_port
        self.http_port = http_port
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "log" / "xrootd.log"
        self.config_path = base_dir / "xrootd.cfg"
        self._stdout = base_dir / "log" / "stdout.log"  # what xrootd says before its log opens
        self.extra_config: list[str] = []  # directives appended to the generated config
        self.token_issuer = token_issuer
        self.token_config_path = base_dir / "scitokens.cfg"
        self._uid, self._gid = server_ids(SERVER_USER)
        self._proc: ChildProcess | None = None
        self.tape = tape
        if tape is not None:
            tape.attach(base_dir, self.data_dir, self._uid, self._gid)

    def __repr__(self) -> str:
        return f"XrootdSite({self.name!r}, root={self.root_port}, http={self.http_port})"

    @property
    def root_url(self) -> str:
        return f"root://127.0.0.1:{self.root_port}"

    @property
    def roots_url(self) -> str:
        """The same port with TLS (XRootD's TLS starts after a plain handshake)."""
        return f"roots://127.0.0.1:{self.root_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def davs_url(self) -> str:
        return f"davs://127.0.0.1:{self.http_port}"

    @property
    def audience(self) -> str:
        """The token audience the site requires (follows http_port when ports are re-picked)."""
        return self.https_url

    @property
    def protected(self) -> bool:
        return self.token_issuer is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._proc.exited()

    @property
    def crashed(self) -> bool:
        """Died by a signal it was not sent by stop(): XRootD 5.5.3 occasionally segfaults in
        libssl/libcrypto under many concurrent HTTPS connections (seen in the kernel log)."""
        return self._proc is not None and self._proc.killed_by_signal()

    def config_text(self, token_directives: Sequence[str] = ()) -> str:
        xrdcp = shutil.which("xrdcp") or "/usr/bin/xrdcp"
        lines = [
            "all.role server",
            "all.export /",
            f"oss.localroot {self.data_dir}",
            f"all.adminpath {self.base_dir / 'admin'}",
            f"all.pidpath {self.base_dir / 'run'}",
            f"xrd.port {self.root_port}",
            "xrd.network nodnr",
            f"xrd.tls {self.pki.host_cert} {self.pki.host_key}",
            f"xrd.tlsca certdir {self.pki.ca_dir}",  # without TLS, XrdHttp ignores the TPC handler
            f"xrd.protocol XrdHttp:{self.http_port} libXrdHttp.so",
            "http.listingdeny false",
            "http.exthandler xrdtpc libXrdHttpTPC.so",
            f"ofs.tpc ttl 60 70 xfr 10 pgm {xrdcp} --server",
            # XRootD <= 5.8 can segfault when its checksum job table is full (default 4
            # jobs; XrdOucTable::Remove reads past the end): 12 concurrent TPC probes hit it.
            *(["xrootd.chksum max 64 adler32"] if self.checksums else []),
            *token_directives,
            *(self.tape.directives() if self.tape is not None else []),
            *self.extra_config,
        ]
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        """Directories owned by the server user, a readable host key, the config file."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        for sub in ("admin", "run", "cache", "log"):
            self._own(self.base_dir / sub, 0o755)
        self._own_data_dir()
        if self.tape is not None:
            self.tape.prepare()
        if os.geteuid() == 0:
            make_traversable(self.base_dir)
            make_traversable(self.pki.ca_dir)
            os.chown(self.pki.host_key, self._uid, self._gid)  # read after dropping root
        self.pki.host_key.chmod(0o400)
        self.config_path.write_text(self.config_text(self._prepare_tokens()))

    def _prepare_tokens(self) -> list[str]:
        """For a protected site: plugin config and key cache, at start (ports are final)."""
        if self.token_issuer is None:
            return []
        issuer = self.token_issuer.url
        jwks = self.token_issuer.jwks()
        seed_key_cache(self.base_dir / "cache", issuer, jwks, self._uid, self._gid)
        return write_token_config(self.token_config_path, issuer, self.audience)

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.base_dir),
            "LANG": "C.UTF-8",
            "XDG_CACHE_HOME": str(self.base_dir / "cache"),  # scitokens key cache lives here
            "X509_CERT_DIR": str(self.pki.ca_dir),  # for `xrdcp --server` TPC helpers
        }

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the server and wait until it reports ready; raise SiteStartError otherwise."""
        if self.running:
            return
        self.stop()  # reap a process that died on its own
        xrootd = shutil.which("xrootd")
        if xrootd is None:
            raise FileNotFoundError("xrootd not found on PATH")
        self._prepare()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [xrootd, "-c", str(self.config_path), "-l", str(self.log_path)]
        if os.geteuid() == 0:
            command[1:1] = ["-R", SERVER_USER]
        self._proc = ChildProcess(command, self._environment(), self.base_dir, self._stdout)
        try:
            self._wait_ready(offset, timeout)
        except BaseException:
            self.stop()
            raise
        if self.tape is not None:
            self.tape.start()
        log.info("%s up (pid %d): %s %s", self.name, self.pid, self.root_url, self.https_url)

    def _log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def _wait_ready(self, offset: int, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            text = self._log_since(offset)
            match = _READY.search(text)
            early = self._stdout.read_text(errors="replace") if self._stdout.exists() else ""
            tail = "\n".join([*early.splitlines()[-5:], *text.splitlines()[-20:]])
            if match and match.group(1) == "completed":
                return
            if match:
                raise SiteStartError(f"{self.name}: xrootd initialization failed", tail)
            if self._proc.exited():
                raise SiteStartError(f"{self.name}: xrootd exited during start-up", tail)
            if time.monotonic() > deadline:
                raise SiteStartError(f"{self.name}: xrootd not ready after {timeout} s", tail)
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """Terminate the server and its helpers: SIGTERM, then SIGKILL after a bound."""
        proc, self._proc = self._proc, None
        if self.tape is not None:
            self.tape.stop()
        if proc is not None:
            status = proc.stop(_STOP_BOUND_SECONDS)
            log.info("%s stopped (pid %d, status %d)", self.name, proc.pid, status)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its ports but answers nothing."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        self._proc.pause()

    def resume(self) -> None:
        """Let a paused server continue (SIGCONT)."""
        if self._proc is not None:
            self._proc.resume()

    # Files, as the server would see them ----------------------------------------------------

    def local_path(self, remote_path: str) -> Path:
        """Where server path "/x/y" lives on disk (data_dir/x/y)."""
        path = PurePosixPath(remote_path)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError(f"not an absolute server path: {remote_path!r}")
        return self.data_dir.joinpath(*path.parts[1:])

    def _own(self, path: Path, mode: int) -> None:
        """Create `path` (a directory) if needed, owned by the server user with `mode`."""
        path.mkdir(exist_ok=True)
        os.chown(path, self._uid, self._gid)
        path.chmod(mode)

    def _own_data_dir(self) -> None:
        """The data directory, on a tmpfs of `data_size_bytes` when set (MountError if the
        tmpfs cannot be mounted)."""
        self._own(self.data_dir, 0o755)
        if self.data_size_bytes is not None and not os.path.ismount(self.data_dir):
            tmpfs.mount_tmpfs(self.data_dir, self.data_size_bytes, self._uid, self._gid)

    def fill_disk(self) -> Path:
        """Fill the data directory's tmpfs up to the last byte (a file `filler` in it)."""
        if self.data_size_bytes is None or not os.path.ismount(self.data_dir):
            raise RuntimeError(f"{self.name}: no tmpfs data directory to fill")
        return tmpfs.fill(self.data_dir, self._uid, self._gid)

    def close(self) -> None:
        """Stop the server and unmount the data directory's tmpfs (its files are lost)."""
        self.stop()
        tmpfs.unmount(self.data_dir)

    def _make_parents(self, path: Path) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._own_data_dir()
        for parent in reversed(path.relative_to(self.data_dir).parents[:-1]):
            if not (self.data_dir / parent).exists():
                self._own(self.data_dir / parent, 0o755)

    def make_dir(self, remote_path: str, writable: bool = True) -> Path:
        """Create a directory the server can write in, or (writable=False) only read."""
        path = self.local_path(remote_path)
        self._make_parents(path)
        if writable:
            self._own(path, 0o755)
        else:
            path.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(path, 0, 0)
            path.chmod(0o555)
        return path

    def put_file(self, remote_path: str, data: bytes) -> Path:
        """Write a file directly into the data directory, owned as if the server wrote it."""
        path = self.local_path(remote_path)
        self._make_parents(path)
        path.write_bytes(data)
        os.chown(path, self._uid, self._gid)
        path.chmod(0o644)
        return path

    def server_adler32(self, remote_path: str) -> str:
        """The adler32 the server reports (8 hex digits); it caches it in an xattr."""
        xrdfs = shutil.which("xrdfs") or "xrdfs"
        out = subprocess.run(
            [xrdfs, self.root_url, "query", "checksum", remote_path],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        fields = out.stdout.split()
        if out.returncode != 0 or len(fields) != 2 or fields[0] != "adler32":
            raise RuntimeError(f"{self.name}: checksum query failed: {out.stdout}{out.stderr}")
        return fields[1]

    def corrupt_silently(self, remote_path: str) -> str:
        """Flip the first byte of a file behind the server's back, keeping its mtime, so that
        the server keeps reporting the cached, now wrong, adler32. Returns that stale value."""
        stale = self.server_adler32(remote_path)  # make sure it is cached first
        path = self.local_path(remote_path)
        before = path.stat()
        if before.st_size == 0:
            raise ValueError(f"cannot corrupt an empty file: {remote_path}")
        with path.open("r+b") as handle:
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0xFF]))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        return stale

    def truncate_silently(self, remote_path: str, size: int) -> None:
        """Cut a file to `size` bytes behind the server's back, keeping its mtime (a dying
        disk, an interrupted copy): a checksum the server cached stays, now stale."""
        path = self.local_path(remote_path)
        before = path.stat()
        if size >= before.st_size:
            raise ValueError(f"{remote_path}: {before.st_size} bytes, cannot truncate to {size}")
        os.truncate(path, size)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    def delete_behind(self, remote_path: str) -> None:
        """Remove a file from the data directory behind the server's back (a lost file)."""
        self.local_path(remote_path).unlink()
