"""LocalIssuer: the lake's token issuer (lakeprobe.lake.issuer) as a child process."""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lakeprobe.lake.issuer_keys import IssuerState, jwks, mint, write_private
from lakeprobe.lake.pki import TestPki
from lakeprobe.lake.process import PORT_ATTEMPTS, ChildProcess, ServerStartError, free_port

log = logging.getLogger(__name__)

_STOP_BOUND_SECONDS = 5.0
_POLL_SECONDS = 0.05


class IssuerStartError(ServerStartError):
    """The issuer did not come up; the message carries the tail of its log."""


class LocalIssuer:
    """An OIDC client_credentials issuer on https://127.0.0.1:`port`, state in `base_dir`
    (created here: signing key, clients). Runs as the current user."""

    def __init__(
        self, base_dir: Path, pki: TestPki, port: int, default_lifetime: int = 1200
    ) -> None:
        self.base_dir = base_dir
        self.pki = pki
        self.port = port
        self.default_lifetime = default_lifetime
        self.log_path = base_dir / "issuer.log"
        self._state = IssuerState(base_dir)
        self._proc: ChildProcess | None = None
        base_dir.mkdir(parents=True, exist_ok=True)
        base_dir.chmod(0o700)
        self._state.create_key()
        self._write_config()

    def __repr__(self) -> str:
        return f"LocalIssuer({self.url!r}, running={self.running})"

    @property
    def url(self) -> str:
        """The issuer URL: the tokens' `iss` claim (no trailing slash)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def running(self) -> bool:
        return self._proc is not None and not self._proc.exited()

    def _write_config(self) -> None:
        config = {
            "port": self.port,
            "issuer": self.url,
            "default_lifetime": self.default_lifetime,
            "host_cert": str(self.pki.host_cert),
            "host_key": str(self.pki.host_key),
        }
        self._state.config_path.write_text(json.dumps(config, indent=1) + "\n")

    def jwks(self) -> dict[str, Any]:
        """The public signing key as a JWKS (from the state directory, no network)."""
        return jwks(self._state.private_key())

    def add_client(self, client_id: str, lifetime: int | None = None) -> tuple[Path, Path]:
        """Register `client_id` with a new random secret (tokens live `lifetime` s, default
        default_lifetime); returns the paths of its client_id and client_secret files (0600)."""
        if not client_id or "/" in client_id or client_id.startswith("."):
            raise ValueError(f"unusable client id: {client_id!r}")
        secret = secrets.token_urlsafe(32)
        id_path, secret_path = self._client_files(client_id)
        id_path.parent.mkdir(parents=True, exist_ok=True)
        write_private(id_path, client_id.encode())
        write_private(secret_path, secret.encode())
        clients = self._state.clients()
        clients[client_id] = {"secret": secret, "lifetime": lifetime}
        self._state.write_clients(clients)
        return id_path, secret_path

    def client(self, client_id: str) -> tuple[Path, Path]:
        """The files of `client_id`, registered (as by add_client) on first use only."""
        if client_id in self._state.clients():
            return self._client_files(client_id)
        return self.add_client(client_id)

    def _client_files(self, client_id: str) -> tuple[Path, Path]:
        directory = self.base_dir / "clients" / client_id
        return directory / "client_id", directory / "client_secret"

    def mint(self, scope: str, audience: str | list[str], lifetime: int) -> str:
        """A token signed here as the issuer would (sub "lakeprobe-test"); negative
        `lifetime` gives one that has already expired."""
        return mint(self._state.private_key(), self.url, "lakeprobe-test", scope, audience,
                    lifetime)  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the server and wait until it serves its discovery document over verified
        HTTPS; new ports on "address in use"; IssuerStartError otherwise."""
        if self.running:
            return
        self.stop()  # reap a process that died on its own
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._write_config()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            command = [sys.executable, "-m", "lakeprobe.lake.issuer", str(self.base_dir)]
            self._proc = ChildProcess(command, os.environ, self.base_dir, self.log_path)
            try:
                self._wait_ready(offset, timeout)
                log.info("issuer up (pid %d): %s", self._proc.pid, self.url)
                return
            except IssuerStartError as exc:
                self.stop()
                if not exc.address_in_use or attempt == PORT_ATTEMPTS:
                    raise
                log.info("issuer: port taken (attempt %d), picking a new one", attempt)
                self.port = free_port()
            except BaseException:
                self.stop()
                raise

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def _wait_ready(self, offset: int, timeout: float) -> None:
        assert self._proc is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        url = f"{self.url}/.well-known/openid-configuration"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1.0, context=context) as answer:
                    if json.load(answer).get("issuer") == self.url:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            exited = self._proc.exited()  # before reading the log: its last words count
            if exited or time.monotonic() > deadline:
                tail = "\n".join(self._log_since(offset).splitlines()[-20:])
                what = "exited during start-up" if exited else f"not ready after {timeout} s"
                raise IssuerStartError(f"issuer {what}", tail)
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound."""
        proc, self._proc = self._proc, None
        if proc is not None:
            status = proc.stop(_STOP_BOUND_SECONDS)
            log.info("issuer stopped (pid %d, status %d)", proc.pid, status)

    def pause(self) -> None:
        """Freeze the issuer (SIGSTOP): it keeps its port but answers nothing."""
        if self._proc is None:
            raise RuntimeError("issuer is not running")
        self._proc.pause()

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.resume()
