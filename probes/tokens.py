"""Bearer tokens: from a configured file, or the WLCG bearer-token discovery order."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lakeprobe.probes.secrets import Secret


class CredentialError(Exception):
    """A configured credential cannot be loaded. The message names the source, never a value."""


class TokenSource(Protocol):
    def describe(self) -> str: ...

    async def token(self) -> Secret: ...


@dataclass(slots=True, eq=False)
class FileToken:
    """A token file, re-read whenever its modification time or size changes."""

    path: Path
    _cached: tuple[tuple[int, int], Secret] | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"token file {self.path}"

    async def token(self) -> Secret:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            value = self.path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CredentialError(f"cannot read {self.describe()}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise CredentialError(f"{self.describe()} is not UTF-8 text") from None
        if not value:
            raise CredentialError(f"{self.describe()} is empty")
        secret = Secret(value)
        self._cached = (stamp, secret)
        return secret


@dataclass(slots=True, eq=False)
class DiscoveredToken:
    """WLCG Bearer Token Discovery: $BEARER_TOKEN, $BEARER_TOKEN_FILE,
    $XDG_RUNTIME_DIR/bt_u<uid>, then /tmp/bt_u<uid>."""

    environ: dict[str, str] | None = None  # for tests; defaults to the process environment

    def describe(self) -> str:
        return "WLCG bearer-token discovery"

    async def token(self) -> Secret:
        env = os.environ if self.environ is None else self.environ
        value = env.get("BEARER_TOKEN", "").strip()
        if value:
            return Secret(value)
        for path in _discovery_files(env):
            if path.is_file():
                return await FileToken(path).token()
        raise CredentialError(
            "no bearer token found (BEARER_TOKEN, BEARER_TOKEN_FILE, "
            "$XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>)"
        )


def _discovery_files(env: os._Environ[str] | dict[str, str]) -> list[Path]:
    files = []
    if env.get("BEARER_TOKEN_FILE"):
        files.append(Path(env["BEARER_TOKEN_FILE"]))
    name = f"bt_u{os.geteuid()}"
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / name)
    files.append(Path("/tmp") / name)
    return files
