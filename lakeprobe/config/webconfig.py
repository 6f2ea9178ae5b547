"""The web config (Prometheus exporter-toolkit's format): TLS for the listener, basic-auth users.

    tls_server_config:
      cert_file: server.pem            # relative paths are relative to this file
      key_file: server.key
      client_ca_file: clients-ca.pem   # with client_auth_type: RequireAndVerifyClientCert
      client_auth_type: NoClientCert   # or RequireAndVerifyClientCert
      min_version: TLS12               # or TLS13
    basic_auth_users:
      prometheus: $2b$10$...           # bcrypt hash

Read once at start (a change needs a restart). The file is checked whenever the main config is
loaded, so check-config and a reload report its problems.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import bcrypt
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from cryptography import x509
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from lakeprobe.config.loader import ConfigError, yaml_path
from lakeprobe.config.model import Strict
from lakeprobe.config.reader import MAX_BYTES, UnreadableConfig, decode, read_yaml

_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CHALLENGE = 'Basic realm="lakeprobe", charset="UTF-8"'


class TlsServerConfig(Strict):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: Literal["NoClientCert", "RequireAndVerifyClientCert"] = "NoClientCert"
    min_version: Literal["TLS12", "TLS13"] = "TLS12"

    @model_validator(mode="after")
    def _ca_with_verification(self) -> Self:
        verify = self.client_auth_type == "RequireAndVerifyClientCert"
        if verify and self.client_ca_file is None:
            raise ValueError("client_auth_type RequireAndVerifyClientCert needs client_ca_file")
        if not verify and self.client_ca_file is not None:
            raise ValueError("client_ca_file needs client_auth_type: RequireAndVerifyClientCert")
        return self


def _bcrypt_hash(value: str) -> str:
    if not _BCRYPT.match(value):
        raise ValueError("expected a bcrypt hash like '$2b$10$...' (see the README)")
    return value


class WebConfigFile(Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, Annotated[str, AfterValidator(_bcrypt_hash)]] = Field(
        default_factory=dict
    )

    @field_validator("basic_auth_users")
    @classmethod
    def _user_names(cls, users: dict[str, str]) -> dict[str, str]:
        for name in users:
            if not name or ":" in name:
                raise ValueError(f"user name {name!r} must be non-empty and without ':'")
        return users


@dataclass(frozen=True)
class WebConfig:
    """What serve() needs from the file: the listener's TLS context and the users."""

    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    verifies_clients: bool = False  # TLS client certificates from client_ca_file are required

    @property
    def authenticates_clients(self) -> bool:
        return bool(self.users) or self.verifies_clients


def web_config_problems(path: Path) -> list[str]:
    """Every problem of the file, each prefixed with the file's path; empty when it is valid."""
    try:
        load_web_config(path)
    except ConfigError as error:
        return [f"{error.source}: {message}" for message in error.messages]
    return []


def load_web_config(path: Path) -> WebConfig:
    """Parse and check the file, and build the TLS context (which proves the files usable)."""
    try:
        with path.open("rb") as file:
            data = read_yaml(decode(file.read(MAX_BYTES + 1)))
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read: {error.strerror or error}"]) from None
    except UnreadableConfig as error:
        raise ConfigError(str(path), [str(error)]) from None
    if not isinstance(data, dict | None):
        raise ConfigError(str(path), ["(top level): expected a mapping"])
    try:
        parsed = WebConfigFile.model_validate(data or {})
    except ValidationError as error:
        raise ConfigError(str(path), [_describe(e) for e in error.errors()]) from None
    tls = parsed.tls_server_config
    users = {name: hashed.encode() for name, hashed in parsed.basic_auth_users.items()}
    if tls is None:
        return WebConfig(users=users)
    try:
        context = _ssl_context(tls, path.parent)
    except ValueError as error:
        raise ConfigError(str(path), [str(error)]) from None
    verifies = tls.client_auth_type == "RequireAndVerifyClientCert"
    return WebConfig(ssl_context=context, users=users, verifies_clients=verifies)


def _describe(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{yaml_path(error['loc'])}: {message}"


def _ssl_context(tls: TlsServerConfig, base: Path) -> ssl.SSLContext:
    """Raises ValueError naming the key whose file is unusable."""
    cert, key = base / tls.cert_file, base / tls.key_file
    cert_pem = _read(cert, "cert_file")
    try:
        x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ValueError("tls_server_config.cert_file: not a PEM certificate") from None
    _read(key, "key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    try:
        # A password (never given) stops OpenSSL from prompting for an encrypted key.
        context.load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as error:
        raise ValueError(
            f"tls_server_config.key_file: not an unencrypted private key of cert_file "
            f"({error.reason})"
        ) from None
    if tls.client_ca_file is not None:
        ca = base / tls.client_ca_file
        _read(ca, "client_ca_file")
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as error:
            raise ValueError(
                f"tls_server_config.client_ca_file: no PEM certificate ({error.reason})"
            ) from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"tls_server_config.{key}: cannot read {path}: {error.strerror}") from None


class BasicAuthCheck:
    """Checks `Authorization: Basic` against the bcrypt hashes, as aiohttp middleware.

    bcrypt is slow on purpose (~50 ms a check at cost 10), so checks run in a thread of their
    own, one at a time: a flood of wrong passwords cannot take every core, and probes holding
    the default executor's threads cannot delay a scrape. A success is remembered for
    `remember_seconds` under an HMAC of the credentials with a per-process random key: the
    password itself is never kept. Unknown users are checked against a dummy hash so the
    answer takes as long as for a known one. close() (on app cleanup) stops the thread.
    """

    def __init__(
        self, users: Mapping[str, bytes], remember_seconds: float = 120.0, remember_max: int = 64
    ) -> None:
        self._users = dict(users)
        self._key = os.urandom(32)
        self._remember_seconds = remember_seconds
        self._remember_max = remember_max
        self._remembered: dict[bytes, float] = {}  # HMAC -> until (loop time)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        rounds = min(int(hashed.split(b"$")[2]) for hashed in self._users.values())
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not await self.check(request.headers.get(hdrs.AUTHORIZATION)):
            raise web.HTTPUnauthorized(
                headers={hdrs.WWW_AUTHENTICATE: CHALLENGE}, text="401: Unauthorized\n"
            )
        return await handler(request)

    async def check(self, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        name = user.encode()
        message = len(name).to_bytes(4, "big") + name + password
        key = hmac.new(self._key, message, hashlib.sha256).digest()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._remembered.get(key, 0.0) > now:
            return True
        hashed = self._users.get(user, self._dummy)
        matches = await loop.run_in_executor(self._thread, bcrypt.checkpw, password, hashed)
        if not (matches and user in self._users):
            return False
        self._remember(key, now)
        return True

    async def close(self, app: web.Application | None = None) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _remember(self, key: bytes, now: float) -> None:
        self._remembered = {k: t for k, t in self._remembered.items() if t > now}
        if len(self._remembered) >= self._remember_max:
            del self._remembered[next(iter(self._remembered))]  # the oldest
        self._remembered[key] = now + self._remember_seconds


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) of an `Authorization: Basic` header, None if it is not one."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode(), password) if colon else None
    except (binascii.Error, UnicodeDecodeError):
        return None
