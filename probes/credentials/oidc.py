"""OAuth2 client credentials (RFC 6749 4.4) against IAM-style issuers: tokens issued on
demand, cached until shortly before they expire, shared by every probe using the same client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import quote_plus, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakeprobe.probes.credentials.jwtinfo import jwt_expiry
from lakeprobe.probes.credentials.secrets import Secret, redact
from lakeprobe.probes.credentials.tls import client_ssl_context, resolve_ca_dir
from lakeprobe.probes.credentials.tokens import (
    IssuerError,
    SecretFile,
    TokenKind,
    bearer_problem,
    control_problem,
)

if TYPE_CHECKING:  # aiohttp loads when a token is first requested (see _request)
    import aiohttp

log = logging.getLogger("lakeprobe.oidc")
DISCOVERY_PATH = "/.well-known/openid-configuration"
UNKNOWN_LIFETIME = 300.0  # reuse a token whose expiry the issuer does not tell this long
MAX_DETAIL = 200
MAX_LIFETIME = 10 * 365 * 86400.0  # a larger expires_in is nonsense: use the JWT's exp
MAX_ANSWER = 1024 * 1024  # bytes: a token answer is a few KiB, a discovery document less
MAX_URL = 2048


class OidcSettings(BaseModel):
    """Where and as whom to ask for tokens. Exactly one of `token_endpoint` and `issuer`
    (whose discovery document names the token endpoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    token_endpoint: str | None = None
    issuer: str | None = None
    client_id_file: Path
    client_secret_file: Path
    ca_dir: Path | None = None
    timeout: float = Field(10.0, gt=0, description="seconds per request to the issuer")

    @field_validator("token_endpoint", "issuer")
    @classmethod
    def _https(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValueError("credentials are not allowed in the URL: use the client files")
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"expected an https:// URL, got {url!r}")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_endpoint(self) -> Self:
        if (self.token_endpoint is None) == (self.issuer is None):
            raise ValueError("set exactly one of token_endpoint or issuer")
        return self


@dataclass(frozen=True, slots=True)
class IssuedToken:
    secret: Secret
    expires_at: float | None  # epoch: from expires_in, else the JWT's exp claim


@dataclass(frozen=True, slots=True)
class _Cached:
    token: IssuedToken
    refresh_at: float


class OidcClient:
    """One OAuth2 client at one issuer. Not bound to an event loop: each request opens a
    short-lived session, and concurrent requests for one (scope, audience) share a task."""

    def __init__(
        self,
        settings: OidcSettings,
        default_ca_dir: Path | None = None,
        refresh_before: float = 60.0,
    ) -> None:
        self.settings = settings
        self._ca_dir = settings.ca_dir or default_ca_dir
        self._refresh_before = refresh_before
        self._client_id = SecretFile(
            settings.client_id_file, "client id file", scrub=False, check=control_problem
        )
        self._basic: Secret | None = None  # the Basic credentials, once built
        self._client_secret = SecretFile(
            settings.client_secret_file, "client secret file", check=control_problem
        )
        self._token_endpoint = settings.token_endpoint  # else discovered, then cached
        self._cache: dict[tuple[str, str | None], _Cached] = {}
        self._pending: dict[tuple[str, str | None], asyncio.Task[IssuedToken]] = {}

    def describe(self) -> str:
        where = self.settings.token_endpoint or self.settings.issuer
        return f"OIDC client {self.settings.client_id_file} at {where}"

    def cached(self, scope: str, audience: str | None) -> IssuedToken | None:
        """The token last issued for (scope, audience), without asking the issuer."""
        entry = self._cache.get((scope, audience))
        return None if entry is None else entry.token

    async def issue(self, scope: str, audience: str | None, *, fresh: bool = False) -> IssuedToken:
        """A token for `scope` (space-separated) and `audience`; `fresh` asks the issuer for
        a new one and leaves the cache alone."""
        if fresh:
            return await self._request(scope, audience)
        key = (scope, audience)
        entry = self._cache.get(key)
        if entry is not None and time.time() < entry.refresh_at:
            return entry.token
        loop = asyncio.get_running_loop()
        task = self._pending.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._refresh(key))
            task.add_done_callback(_consume)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _refresh(self, key: tuple[str, str | None]) -> IssuedToken:
        try:
            token = await self._request(*key)
        except IssuerError as error:
            old = self._cache.get(key)
            expires = old.token.expires_at if old is not None else None
            if old is None or expires is None or expires <= time.time() + 1:
                raise
            log.warning("%s; keeping the current token for %.0f s", error, expires - time.time())
            return old.token
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]
        self._cache[key] = _Cached(token, self._refresh_time(token))
        return token

    def _refresh_time(self, token: IssuedToken) -> float:
        now = time.time()
        if token.expires_at is None:
            return now + UNKNOWN_LIFETIME
        lifetime = token.expires_at - now
        if lifetime < 2 * self._refresh_before:
            return now + lifetime / 2
        return token.expires_at - self._refresh_before

    async def _request(self, scope: str, audience: str | None) -> IssuedToken:
        form = {"grant_type": "client_credentials", "scope": scope}
        if audience is not None:
            form["audience"] = audience
        headers = {"Authorization": self._basic_auth(), "Accept": "application/json"}
        import aiohttp  # here: config models and `lakeprobe run` import this module

        context = client_ssl_context(resolve_ca_dir(self._ca_dir))
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            endpoint = await self._endpoint(session)
            try:
                started = time.time()
                answer = await _exchange(session, "POST", endpoint, data=form, headers=headers)
            except IssuerError:
                self._token_endpoint = self.settings.token_endpoint  # discover again next time
                raise
        token = _issued(answer, endpoint, started)
        lifetime = "unknown" if token.expires_at is None else f"{token.expires_at - started:.0f} s"
        log.debug("token issued by %s for scope %r, lifetime %s", endpoint, scope, lifetime)
        return token

    def _basic_auth(self) -> str:
        """client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1)."""
        client_id = quote_plus(self._client_id.load().reveal(), safe="")
        secret = quote_plus(self._client_secret.load().reveal(), safe="")
        encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")
        if self._basic is None or self._basic.reveal() != encoded:
            # Held by the client, so the scrubber keeps knowing it (in case a library ever
            # echoes the header) for as long as the client may send it.
            self._basic = Secret(encoded)
        return f"Basic {encoded}"

    async def _endpoint(self, session: aiohttp.ClientSession) -> str:
        if self._token_endpoint is not None:
            return self._token_endpoint
        url = f"{self.settings.issuer}{DISCOVERY_PATH}"
        endpoint = (await _exchange(session, "GET", url)).get("token_endpoint")
        if not isinstance(endpoint, str) or not _https_url(endpoint):
            raise IssuerError(f"discovery {url}: no https token_endpoint in the document")
        self._token_endpoint = endpoint
        return endpoint


async def _exchange(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    """The JSON object answered by `url`; IssuerError for anything else."""
    import aiohttp  # loaded already: the session is aiohttp's

    what = "discovery" if url.endswith(DISCOVERY_PATH) else "token endpoint"
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = await _read(response, f"{what} {url}")
            status = response.status
    except TimeoutError:
        raise IssuerError(f"{what} {url}: no answer within {session.timeout.total:g} s") from None
    except aiohttp.ClientSSLError as error:
        raise IssuerError(f"{what} {url}: TLS failed: {_short(error)}") from None
    except aiohttp.ClientConnectorError as error:
        raise IssuerError(f"{what} {url}: cannot connect: {_short(error)}") from None
    except aiohttp.ClientError as error:
        raise IssuerError(f"{what} {url}: {type(error).__name__}: {_short(error)}") from None
    return _answer(what, url, status, body)


async def _read(response: aiohttp.ClientResponse, source: str) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER:
            raise IssuerError(f"{source}: answer larger than {MAX_ANSWER} bytes")
    return bytes(body)


def _answer(what: str, url: str, status: int, body: bytes) -> dict[str, Any]:
    """The JSON object of an answer; IssuerError for an error status or anything else."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8 or JSON, 5000-digit numbers, deep nesting
        document = None
    if status >= 300:
        raise IssuerError(f"{what} {url}: HTTP {status}{_oauth_error(document)}")
    if not isinstance(document, dict):
        raise IssuerError(f"{what} {url}: HTTP {status} but the answer is not a JSON object")
    return document


def _issued(answer: dict[str, Any], endpoint: str, started: float) -> IssuedToken:
    value = answer.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise IssuerError(f"token endpoint {endpoint}: the answer has no access_token")
    problem = bearer_problem(value.strip())
    if problem is not None:
        raise IssuerError(f"token endpoint {endpoint}: the access_token {problem}")
    token_type = answer.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = redact(repr(token_type)[:40])
        raise IssuerError(f"token endpoint {endpoint}: token_type {shown}, not Bearer")
    secret = Secret(value.strip())
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        lifetime = None
    if lifetime is not None and 0 < lifetime < MAX_LIFETIME:  # also false for NaN
        return IssuedToken(secret, started + float(lifetime))
    return IssuedToken(secret, jwt_expiry(secret))


def _https_url(url: str) -> bool:
    """A token endpoint from a discovery document that aiohttp can use."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. 'https://[::1' (an unclosed IPv6 address)
        return False
    printable = url.isascii() and url.isprintable() and len(url) <= MAX_URL
    return printable and parts.scheme == "https" and bool(parts.hostname)


def _oauth_error(document: object) -> str:
    """' invalid_client (description)' from an RFC 6749 5.2 error answer, or ''."""
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    text = f" {document['error']}"
    if isinstance(document.get("error_description"), str):
        text += f" ({document['error_description']})"
    return redact(text[:MAX_DETAIL])


def _short(error: Exception) -> str:
    return redact(str(error).splitlines()[0][:MAX_DETAIL]) if str(error) else type(error).__name__


def _consume(task: asyncio.Task[IssuedToken]) -> None:
    """A shared request whose every waiter gave up must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


@dataclass(slots=True, eq=False)
class OidcToken:
    """A TokenSource: tokens for one (scope, audience) from a (shared) OidcClient."""

    kind: ClassVar[TokenKind] = "oidc"
    client: OidcClient
    scope: str
    audience: str | None = None

    def describe(self) -> str:
        audience = f", audience {self.audience}" if self.audience else ""
        return f"{self.client.describe()} (scope {self.scope!r}{audience})"

    async def token(self) -> Secret:
        return (await self.client.issue(self.scope, self.audience)).secret

    @property
    def expires_at(self) -> float | None:
        """What the client has already issued: never asks the issuer."""
        issued = self.client.cached(self.scope, self.audience)
        return None if issued is None else issued.expires_at
