"""A WebDAV server that is not XRootD: Debian's nginx (dav built in, dav_ext for PROPFIND and
OPTIONS) serving HTTPS from a test PKI on loopback, for tests and the demo.

As sites run it (create_full_put_path off): MKCOL needs a trailing slash (409 without), a
missing parent is 409, an existing collection 405; PUT into a missing directory is 500; no
digests, no COPY (so it can only be the passive side of an HTTP-TPC push). `delete_noop`
is fault injection: DELETE is answered 204 and deletes nothing (a `return 204` in the
location), so the probes' delete verification can be tested against a real server.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Self

from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.lake.process import (
    ChildProcess,
    ServerStartError,
    free_port,
    make_traversable,
    retry_on_taken_port,
    server_ids,
)

log = logging.getLogger(__name__)

NGINX_USER = "www-data"  # workers drop to it when we are root; Debian's nginx package uses it
DAV_EXT_MODULE = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")
_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # else nginx uses /var/lib/nginx
_STOP_BOUND_SECONDS = 5.0
_POLL_SECONDS = 0.02


def nginx_binary() -> str | None:
    """nginx lives in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def missing_nginx() -> list[str]:
    """What an NginxDav needs and this machine lacks (empty when all is there)."""
    missing = [] if nginx_binary() else ["nginx"]
    if not DAV_EXT_MODULE.exists():
        missing.append(f"{DAV_EXT_MODULE} (libnginx-mod-http-dav-ext)")
    return missing


class NginxStartError(ServerStartError):
    """nginx did not come up; the message carries the tail of its error log."""


class NginxDav:
    """One nginx process with its prefix, temp, log and data directories under `base_dir`,
    serving `data_dir` at https://127.0.0.1:`port`/. `pki` None: a PKI of its own (pass a
    lake's, so that its XRootD sites trust this server as a TPC destination)."""

    def __init__(
        self, base_dir: Path, pki: TestPki | None = None, *, create_full_put_path: bool = False,
        delete_noop: bool = False, plain_http: bool = False,
    ) -> None:  # fmt: skip
        self.base_dir = base_dir
        base_dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki or make_test_pki(base_dir / "pki")
        self.port = free_port()
        # plain_http: the same server on a second port without TLS (benchmarks: http vs https)
        self.http_port = free_port() if plain_http else None
        self.create_full_put_path = create_full_put_path
        self.delete_noop = delete_noop  # fault injection, read at (re)start
        self.data_dir = base_dir / "data"
        self.config_path = base_dir / "nginx.conf"
        self.error_log = base_dir / "log" / "error.log"
        self._uid, self._gid = server_ids(NGINX_USER)
        self._proc: ChildProcess | None = None

    def __repr__(self) -> str:
        return f"NginxDav(port={self.port}, delete_noop={self.delete_noop})"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        if self.http_port is None:
            raise ValueError("NginxDav made without plain_http")
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def davs_url(self) -> str:
        return f"davs://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._proc.exited()

    def local_path(self, path: str) -> Path:
        """The file behind the URL path `path`."""
        return self.data_dir / PurePosixPath("/", path).relative_to("/")

    def make_dir(self, path: str) -> Path:
        """Create the URL path `path` as a directory the workers can write to."""
        local = self.local_path(path)
        local.mkdir(parents=True, exist_ok=True)
        for directory in (local, *local.relative_to(self.data_dir).parents):
            os.chown(self.data_dir / directory, self._uid, self._gid)
        return local

    def config_text(self) -> str:
        base, pki = self.base_dir, self.pki
        user = f"user {NGINX_USER} {NGINX_USER};" if os.geteuid() == 0 else ""
        temps = "\n".join(f"  {kind}_temp_path {base / 'tmp' / kind};" for kind in _TEMP_KINDS)
        fault = "if ($request_method = DELETE) { return 204; }" if self.delete_noop else ""
        put_path = "on" if self.create_full_put_path else "off"
        plain = f"listen 127.0.0.1:{self.http_port};" if self.http_port is not None else ""
        return f"""load_module {DAV_EXT_MODULE};
{user}
worker_processes 1;
pid {base / "run" / "nginx.pid"};
error_log {self.error_log} info;
events {{ worker_connections 128; }}
http {{
  access_log {base / "log" / "access.log"};
{temps}
  client_max_body_size 0;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    {plain}
    ssl_certificate {pki.host_cert};
    ssl_certificate_key {pki.host_key};
    root {self.data_dir};
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw group:rw all:r;
      create_full_put_path {put_path};
      {fault}
    }}
  }}
}}
"""

    def _prepare(self) -> None:
        for sub in ("run", "log", "tmp"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:  # workers write data and request bodies as NGINX_USER
            make_traversable(self.base_dir)
            for directory in (self.data_dir, self.base_dir / "tmp"):
                os.chown(directory, self._uid, self._gid)
        self.config_path.write_text(self.config_text())

    def start(self, timeout: float = 10.0) -> None:
        """Spawn nginx in the foreground and wait until its port accepts; on a taken port,
        retry on another."""
        retry_on_taken_port(lambda: self._start_once(timeout), self._new_ports)

    def _new_ports(self) -> None:
        self.port = free_port()
        if self.http_port is not None:
            self.http_port = free_port()

    def _start_once(self, timeout: float) -> None:
        if self.running:
            return
        self.stop()
        nginx = nginx_binary()
        if nginx is None:
            raise FileNotFoundError("nginx not found")
        self._prepare()
        offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        command = [nginx, "-p", str(self.base_dir), "-c", str(self.config_path),
                   "-e", str(self.error_log), "-g", "daemon off;"]  # fmt: skip
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
        output = self.base_dir / "log" / "stdout.log"
        self._proc = ChildProcess(command, env, self.base_dir, output)
        try:
            self._wait_ready(offset, timeout)
        except BaseException:
            self.stop()
            raise
        log.info("nginx up (pid %d): %s", self._proc.pid, self.https_url)

    def _wait_ready(self, offset: int, timeout: float) -> None:
        """Ready when the port accepts (the master binds before it forks the worker, and the
        kernel queues connections until the worker accepts them)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.exited():
                raise NginxStartError("nginx exited during start-up", self._log_since(offset))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise NginxStartError(f"nginx not ready after {timeout} s", self._log_since(offset))
            time.sleep(_POLL_SECONDS)

    def _log_since(self, offset: int) -> str:
        if not self.error_log.exists():
            return ""
        with self.error_log.open("rb") as handle:
            handle.seek(offset)
            return "\n".join(handle.read().decode(errors="replace").splitlines()[-20:])

    def restart(self, *, delete_noop: bool | None = None) -> None:
        """Stop, change the fault injection when given, start again on the same data."""
        self.stop()
        if delete_noop is not None:
            self.delete_noop = delete_noop
        self.start()

    def stop(self) -> None:
        """Stop exactly our nginx (its process group: master and worker)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            status = proc.stop(_STOP_BOUND_SECONDS)
            log.info("nginx stopped (pid %d, status %d)", proc.pid, status)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
