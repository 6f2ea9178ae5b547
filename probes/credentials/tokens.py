"""Bearer tokens: from a configured file, or the WLCG bearer-token discovery order."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from lakeprobe.probes.credentials.errors import CredentialError as CredentialError
from lakeprobe.probes.credentials.errors import IssuerError as IssuerError
from lakeprobe.probes.credentials.jwtinfo import jwt_expiry
from lakeprobe.probes.credentials.secrets import Secret

# Where a token comes from: the `source` label of lakeprobe_token_expiry_seconds. A closed set:
# "oidc" tokens are renewed by lakeprobe itself, the others by something outside it.
TokenKind = Literal["file", "discovery", "oidc"]

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 2.1, the credentials of `Bearer`
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def bearer_problem(value: str) -> str | None:
    """What makes `value` unusable as a bearer token (RFC 6750 b64token: JWTs, macaroons),
    or None. Says what is wrong, never the value: the answer goes into error messages. A
    CR/LF would otherwise end the Authorization header early and start another one."""
    if _CONTROL.search(value):
        return "contains control characters"
    if not _B64TOKEN.fullmatch(value):
        return "has characters not allowed in a token (RFC 6750)"
    return None


def control_problem(value: str) -> str | None:
    """For credentials sent encoded (OAuth client id and secret, form- and base64-encoded):
    any printable character is fine, control characters mean a broken file."""
    return "contains control characters" if _CONTROL.search(value) else None


class TokenSource(Protocol):
    kind: ClassVar[TokenKind]

    def describe(self) -> str: ...

    async def token(self) -> Secret: ...

    @property
    def expires_at(self) -> float | None:
        """Epoch expiry of the most recently loaded token; None if unknown or none loaded."""
        ...


@dataclass(slots=True, eq=False)
class SecretFile:
    """A credential file, re-read whenever its modification time or size changes. Its
    content, stripped of surrounding whitespace, must pass `check` (a bearer token by default)."""

    path: Path
    what: str = "token file"
    scrub: bool = True  # False: not confidential (see Secret)
    check: Callable[[str], str | None] = bearer_problem
    _cached: tuple[tuple[int, int], Secret] | None = field(default=None, repr=False)

    def load(self) -> Secret:
        """Costs one stat() while the file is unchanged."""
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            value = self.path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CredentialError(
                f"cannot read {self.what} {self.path}: {error.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise CredentialError(f"{self.what} {self.path} is not UTF-8 text") from None
        if not value:
            raise CredentialError(f"{self.what} {self.path} is empty")
        problem = self.check(value)
        if problem is not None:
            raise CredentialError(f"{self.what} {self.path} {problem}")
        secret = Secret(value, scrub=self.scrub)
        self._cached = (stamp, secret)
        return secret


@dataclass(slots=True, eq=False)
class FileToken:
    """A token file, re-read whenever its modification time or size changes."""

    kind: ClassVar[TokenKind] = "file"
    path: Path
    expires_at: float | None = field(default=None, init=False)
    _file: SecretFile = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._file = SecretFile(self.path)

    def describe(self) -> str:
        return f"token file {self.path}"

    def load(self) -> Secret:
        """Synchronous and cheap (a stat while unchanged): also called on each scrape."""
        secret = self._file.load()
        self.expires_at = jwt_expiry(secret)
        return secret

    async def token(self) -> Secret:
        return self.load()


@dataclass(slots=True, eq=False)
class DiscoveredToken:
    """WLCG Bearer Token Discovery: $BEARER_TOKEN, $BEARER_TOKEN_FILE,
    $XDG_RUNTIME_DIR/bt_u<uid>, then /tmp/bt_u<uid>."""

    kind: ClassVar[TokenKind] = "discovery"
    environ: dict[str, str] | None = None  # for tests; defaults to the process environment
    expires_at: float | None = field(default=None, init=False)
    _files: dict[Path, FileToken] = field(default_factory=dict, init=False, repr=False)
    # The $BEARER_TOKEN value as a Secret, held while the variable is unchanged: the scrubber
    # knows a value only while some Secret holds it (probes/credentials/secrets.py).
    _from_env: Secret | None = field(default=None, init=False, repr=False)

    def describe(self) -> str:
        return "WLCG bearer-token discovery"

    def load(self) -> Secret:
        """Synchronous and cheap (environment lookups and stats)."""
        secret = self._discover()
        self.expires_at = jwt_expiry(secret)
        return secret

    async def token(self) -> Secret:
        return self.load()

    def _discover(self) -> Secret:
        env = os.environ if self.environ is None else self.environ
        value = env.get("BEARER_TOKEN", "").strip()
        if value:
            problem = bearer_problem(value)
            if problem is not None:
                raise CredentialError(f"BEARER_TOKEN {problem}")
            if self._from_env is None or self._from_env.reveal() != value:
                self._from_env = Secret(value)
            return self._from_env
        for path in _discovery_files(env):
            if path.is_file():
                return self._files.setdefault(path, FileToken(path)).load()
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
