"""An aiohttp client for one HTTP/WebDAV storage endpoint, shared by the HTTP-based probes.

Expected failures (refused connection, TLS, 403, timeout, ...) surface as `RequestFailed`,
carrying the step outcome with a Reason; `guarded()` turns it into the step's result.
TLS verification is always on. The bearer token is revealed only into the request header.

Paths are sent literally: percent-encoded as a path (endpoint_url), so nothing in them is
read as a query, a fragment or a dot-segment. Redirects are followed here, not by aiohttp,
and only where storage systems use them (docs/safety.md): at most MAX_REDIRECTS hops;
307/308 for any method (same method and body), 301/302/303 for GET and HEAD; to the same
scheme or http -> https; to the endpoint's own host or one matching `Target.redirect_hosts`.
Every request of a chain goes to an allowed host, so the token never reaches another.

A full disk: 507, or a refusal whose text says so, is NO_SPACE. XrdHttp answers nothing at
all: it closes the connection when a write fails, so the upload is reset. A PUT broken off
twice (see `_send`) is followed by a 1-byte PUT to the same path: its answer, if any, is the
server's real one; if the server takes it, or drops it too while it still answers an
OPTIONS, the server is up and drops uploads: NO_SPACE, not CONNECT (docs/reasons.md).
"""

from __future__ import annotations

import fnmatch
import socket
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote

import aiohttp
import aiohttp.payload
from multidict import CIMultiDictProxy
from yarl import URL

from lakeprobe.probes.clients.httpparse import DigestError, parse_decimal, response_adler32
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason, StepOutcome, failed
from lakeprobe.probes.core.paths import literal_problem
from lakeprobe.probes.core.payloads import Payload
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret, redact
from lakeprobe.probes.credentials.tls import client_ssl_context, resolve_ca_dir

HTTP_SCHEMES = {"davs": "https", "https": "https", "dav": "http", "http": "http"}
USER_AGENT = "lakeprobe/0.1"
# Safe to send again when a reused connection was found closed before any answer.
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "PUT", "DELETE"})
MAX_DETAIL = 300
ANY_STATUS = range(100, 600)  # `expect=` for requests whose every answer the caller judges
MAX_REDIRECTS = 5
REDIRECT_ANY_METHOD = frozenset({307, 308})  # same method and body (RFC 9110 15.4.8, 15.4.9)
REDIRECT_GET_HEAD = frozenset({301, 302, 303})  # clients may turn a PUT into a GET: not followed
_REDIRECTS = REDIRECT_ANY_METHOD | REDIRECT_GET_HEAD
# Path characters sent as they are (RFC 3986 pchar); everything else is percent-encoded, `;`
# too: servlet containers read it as the start of path parameters.
_PATH_SAFE = "/:@!$&'()*+,=~"
# The data path (benchmarks/data_path.py): aiohttp hands a bytes body to the transport in one
# write, which TLS then copies whole (1 GiB uploads ran at a sixth of curl's rate), and its
# 64 KiB read buffer pauses the socket between small reads. Bodies go out in UPLOAD_CHUNK
# slices of one buffer, no copies; answers are read with a READ_BUFFER-sized buffer.
UPLOAD_CHUNK = 1024 * 1024
READ_BUFFER = 4 * 1024 * 1024


def http_url(url: str) -> str:
    """`davs://h:p` -> `https://h:p`, `dav://` -> `http://`; https/http unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in HTTP_SCHEMES:
        raise ValueError(f"not an HTTP/WebDAV URL: {redact(url)!r}")
    return f"{HTTP_SCHEMES[scheme.lower()]}://{rest}"


def endpoint_url(endpoint: str, path: str) -> URL:
    """The URL of the absolute `path` at an HTTP/WebDAV endpoint (`davs://h:p`, ...), the path
    percent-encoded as a path. ValueError for a path with no literal form: relative, or with
    a '.', '..' or empty segment (servers resolve those, encoded or not)."""
    problem = literal_problem(path)
    if problem is not None:
        raise ValueError(f"path {problem}: {path!r}")
    base = URL(http_url(endpoint))
    encoded = quote(path, safe=_PATH_SAFE)
    return URL.build(scheme=base.scheme, authority=base.raw_authority, path=encoded, encoded=True)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per request, both also bounded by what is left of the run's deadline."""

    connect: float = 60.0  # TCP + TLS handshake (HTTP-TPC smoke test: 60 s)
    stall: float = 60.0  # longest wait for the next bytes of an answer


@dataclass(frozen=True, slots=True)
class Reply:
    method: str
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes  # empty when the body went to a sink
    length: int  # bytes of body received
    seconds: float  # request sent to body read

    @property
    def content_length(self) -> int | None:
        return parse_decimal(self.headers.get("Content-Length", ""))

    def adler32(self) -> str | None:
        """The adler32 the answer reports (Content-Digest or Digest); None when it reports
        none; a malformed one is a protocol error."""
        try:
            return response_adler32(
                self.headers.getall("Content-Digest", []), self.headers.getall("Digest", [])
            )
        except DigestError as error:
            raise RequestFailed(failed(Reason.PROTOCOL_ERROR, f"{self.method}: {error}")) from None


class RequestFailed(Exception):
    """An expected failure of one request; its message is the (redacted) detail."""

    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def guarded(action: Callable[[], Awaitable[StepOutcome]]) -> Callable[[], Awaitable[StepOutcome]]:
    """A step action in which a RequestFailed becomes the step's outcome."""

    async def run() -> StepOutcome:
        try:
            return await action()
        except RequestFailed as failure:
            return failure.outcome

    return run


def status_reason(status: int) -> Reason:
    if status in (401, 403):
        return Reason.AUTH
    if status == 404:
        return Reason.NOT_FOUND
    if status == 507:  # Insufficient Storage (RFC 4918)
        return Reason.NO_SPACE
    if 500 <= status <= 599:
        return Reason.SERVER_ERROR
    return Reason.UNEXPECTED_STATUS


def status_failure(reply: Reply, reason: Reason | None = None) -> StepOutcome:
    """`PUT: 403 Forbidden (first line of the body)`, with the Reason of the status code."""
    detail = f"{reply.method}: {reply.status} {reply.reason or _phrase(reply.status)}"
    first_line = reply.body[:200].decode("utf-8", "replace").strip().split("\n", 1)[0]
    if first_line and reply.status >= 300:
        detail += f" ({first_line})"
    if reason is None and reply.status >= 400 and NO_SPACE_TEXT.search(first_line):
        reason = Reason.NO_SPACE  # e.g. 500 "Unable to write ...; no space left on device"
    return failed(reason or status_reason(reply.status), _clip(detail))


def exception_reason(error: BaseException) -> Reason:
    """The Reason of a transport-level failure raised by aiohttp or the OS."""
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError | aiohttp.ServerFingerprintMismatch):
        return Reason.TLS
    if isinstance(error, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return Reason.DNS
    if isinstance(error, TimeoutError):  # aiohttp's connect/read timeouts subclass it
        return Reason.TIMEOUT
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return Reason.PROTOCOL_ERROR  # the answer broke off mid-way
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        return Reason.CONNECT  # refused, reset, unreachable
    return Reason.PROTOCOL_ERROR  # other aiohttp errors: malformed answers, bad redirects


def broken_off(error: BaseException) -> bool:
    """The connection was up and broke during the exchange (reset, closed): not refused."""
    return isinstance(
        error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
    ) and not isinstance(error, aiohttp.ClientConnectorError)


def exception_failure(method: str, error: BaseException) -> StepOutcome:
    text = str(error).strip() or type(error).__name__
    return failed(exception_reason(error), _clip(f"{method}: {text}"))


def verifying_session(
    ca_dir: Path | None, limit: int, *, force_close: bool = False
) -> aiohttp.ClientSession:
    """A session for one run: TLS verified against `ca_dir` (or the default trust), at most
    `limit` connections, no cookies, lakeprobe's User-Agent, deadlines set per request."""
    tls = client_ssl_context(resolve_ca_dir(ca_dir))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=tls, limit=limit, force_close=force_close),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        timeout=aiohttp.ClientTimeout(total=None),
    )


class HttpClient:
    """One aiohttp session (connection reuse) for one run against one endpoint.
    Use as `async with HttpClient(target, ctx) as http:`; the session closes on exit."""

    def __init__(
        self,
        target: Target,
        ctx: ProbeContext,
        timeouts: Timeouts | None = None,
        keep_alive: bool = True,
    ) -> None:
        self._endpoint = target.url
        self._host = target.host.lower()
        self._redirect_hosts = tuple(pattern.lower() for pattern in target.redirect_hosts)
        self._keep_alive = keep_alive
        self.token: Secret | None = None  # set once the credential step has loaded it
        self._ca_dir = target.ca_dir
        self._ctx = ctx
        self._timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        # Verifying even for http:// endpoints, in case they redirect to https.
        self._session = verifying_session(self._ca_dir, 8, force_close=not self._keep_alive)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        expect: Collection[int],
        headers: Mapping[str, str] | None = None,
        data: Payload | None = None,
        max_body: int = 1024 * 1024,
        sink: Callable[[bytes], object] | None = None,
        token: Secret | None = None,
    ) -> Reply:
        """Send one request to an absolute path; the body is collected, or streamed to `sink`.
        Raises RequestFailed on transport errors, a status outside `expect`, or a body longer
        than `max_body` bytes. A redirect that is not followed fails with UNEXPECTED_STATUS."""
        url = self.url_of(path)  # ValueError for a path that cannot be sent literally
        all_headers = dict(headers or {})
        bearer = token or self.token
        if bearer is not None:
            all_headers["Authorization"] = f"Bearer {bearer.reveal()}"
        try:
            reply = await self._follow(method, url, all_headers, data, max_body, sink)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self._ctx.log.debug("%s %s failed: %s", method, path, redact(repr(error)))
            outcome = exception_failure(method, error)
            if method == "PUT" and data is not None and len(data) > 1 and broken_off(error):
                outcome = await self._broken_upload(url, all_headers, outcome)
            raise RequestFailed(outcome) from None
        self._ctx.log.debug("%s %s -> %d in %.3f s", method, path, reply.status, reply.seconds)
        if reply.status not in expect:
            raise RequestFailed(status_failure(reply))
        return reply

    async def _broken_upload(
        self, url: URL, headers: dict[str, str], broken: StepOutcome
    ) -> StepOutcome:
        """What a PUT broken off twice means (module docstring): a 1-byte PUT to the same
        path (the caller deletes it with the test file) asks the server for its answer."""
        try:
            reply = await self._follow("PUT", url, headers, b"\0", 64 * 1024, None)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            if not broken_off(error) or not await self._answers(url, headers):
                return broken  # the server is gone: the transport reason stands
            why = "a 1-byte PUT was broken off too, while OPTIONS is answered"
            return failed(Reason.NO_SPACE, _clip(f"{broken.detail}; {why}: storage full?"))
        except RequestFailed:  # a redirect not followed: no verdict on the upload
            return broken
        if 200 <= reply.status < 300:
            why = "a 1-byte PUT was accepted: less space left than the upload needs?"
            return failed(Reason.NO_SPACE, _clip(f"{broken.detail}; {why}"))
        refused = status_failure(reply)
        return failed(refused.reason, _clip(f"{broken.detail}; a 1-byte PUT: {refused.detail}"))

    async def _answers(self, url: URL, headers: dict[str, str]) -> bool:
        """Whether the server answers an OPTIONS for `url` with any status at all."""
        try:
            await self._follow("OPTIONS", url, headers, None, 64 * 1024, None)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        except RequestFailed:  # answered, with a redirect not followed or an oversized body
            return True
        return True

    def url_of(self, path: str) -> URL:
        """The endpoint URL of an absolute path, encoded as HttpClient sends it."""
        return endpoint_url(self._endpoint, path)

    async def _follow(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        data: Payload | None,
        max_body: int,
        sink: Callable[[bytes], object] | None,
    ) -> Reply:
        """Send, following the redirects storage systems use (module docstring)."""
        for _ in range(MAX_REDIRECTS + 1):
            answer = await self._send(method, url, headers, data, max_body, sink)
            if isinstance(answer, Reply):
                return answer
            url = self._redirect_target(method, url, answer)
            self._ctx.log.debug("%s: %d redirect to %s", method, answer.status, _display(url))
        detail = f"{method}: more than {MAX_REDIRECTS} redirects"
        raise RequestFailed(failed(Reason.UNEXPECTED_STATUS, detail))

    def _redirect_target(self, method: str, current: URL, redirect: _Redirect) -> URL:
        """Where a redirect leads; RequestFailed when it may not be followed."""
        try:
            target = current.join(URL(redirect.location))
            problem = self._redirect_problem(method, redirect.status, current, target)
        except ValueError:  # yarl: a Location that is no URL
            detail = f"{method}: {redirect.status} with a malformed Location"
            raise RequestFailed(failed(Reason.PROTOCOL_ERROR, detail)) from None
        if problem is not None:
            detail = f"{method}: redirect to {_display(target)} not followed: {problem}"
            raise RequestFailed(failed(Reason.UNEXPECTED_STATUS, _clip(detail)))
        return target

    def _redirect_problem(self, method: str, status: int, current: URL, target: URL) -> str | None:
        if status in REDIRECT_GET_HEAD and method not in ("GET", "HEAD"):
            return f"{status} is followed only for GET and HEAD"
        upgrade = (current.scheme, target.scheme) == ("http", "https")
        if target.scheme != current.scheme and not upgrade:
            return f"scheme {current.scheme} -> {target.scheme}"
        host = (target.host or "").lower().rstrip(".")
        if host != self._host and not any(
            fnmatch.fnmatchcase(host, pattern) for pattern in self._redirect_hosts
        ):
            return "host not in redirect_hosts"
        return None

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        data: Payload | None,
        max_body: int,
        sink: Callable[[bytes], object] | None,
    ) -> Reply | _Redirect:
        """One request; retried once, on a new connection, when a reused keep-alive connection
        turns out closed before any answer arrived (RFC 9112 9.3.1; aiohttp itself does this
        only for the RFC 9110 idempotent methods, not PROPFIND)."""
        if self._session is None:
            raise RuntimeError("HttpClient used outside 'async with'")
        for attempt in (1, 2):
            started = time.monotonic()
            try:
                response = await self._session.request(
                    method, url, headers=headers, data=_body(data), allow_redirects=False,
                    timeout=self._request_timeout(), read_bufsize=READ_BUFFER,
                )  # fmt: skip
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                stale = not isinstance(error, aiohttp.ClientConnectorError)
                if attempt == 2 or not stale or method not in RETRY_METHODS:
                    raise
                self._ctx.log.debug(
                    "%s %s: %s; retrying on a new connection", method, url.path, redact(repr(error))
                )
                continue
            async with response:  # a redirect's body is never read: it is no answer
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location is not None:
                    return _Redirect(response.status, location)
                body, length = await _read_body(method, response, max_body, sink)
                seconds = time.monotonic() - started
                reason = response.reason or ""
                return Reply(
                    method, response.status, reason, response.headers, body, length, seconds
                )
        raise AssertionError("unreachable")

    def _request_timeout(self) -> aiohttp.ClientTimeout:
        left = max(self._ctx.remaining(), 0.001)  # 0 would mean "no timeout" to aiohttp
        return aiohttp.ClientTimeout(
            total=None,
            connect=min(self._timeouts.connect, left),
            sock_read=min(self._timeouts.stall, left),
        )


class _SlicedBytes(aiohttp.payload.BytesPayload):
    """A bytes body written in UPLOAD_CHUNK memoryview slices (no copy), each awaited for
    the transport to drain, so no layer below holds more than a slice or two of it."""

    def __init__(self, value: Payload) -> None:
        # BytesPayload warns (ResourceWarning) that a body over 1 MiB written at once may
        # block the loop; this one never is, so that warning does not apply here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sending a large body", ResourceWarning)
            super().__init__(value)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), UPLOAD_CHUNK):
            await writer.write(view[start : start + UPLOAD_CHUNK])

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)


def _body(data: Payload | None) -> Payload | _SlicedBytes | None:
    """A fresh payload for each send (redirects and retries send the body again)."""
    return _SlicedBytes(data) if data is not None and len(data) > UPLOAD_CHUNK else data


@dataclass(frozen=True, slots=True)
class _Redirect:
    status: int
    location: str


def _display(url: URL) -> str:
    """scheme://host:port/path of a redirect target: no query (it may carry credentials)."""
    host = url.raw_host or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


async def _read_body(
    method: str,
    response: aiohttp.ClientResponse,
    limit: int,
    sink: Callable[[bytes], object] | None,
) -> tuple[bytes, int]:
    chunks, total = [], 0
    async for chunk in response.content.iter_any():  # as received: no re-slicing
        total += len(chunk)
        if total > limit:
            raise RequestFailed(failed(Reason.PROTOCOL_ERROR, f"{method}: body over {limit} bytes"))
        if sink is None:
            chunks.append(chunk)
        else:
            sink(chunk)
    return b"".join(chunks), total


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _clip(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
