"""The HTTP client of one HTTP/WebDAV storage endpoint, shared by the HTTP-based probes:
libcurl (pycurl) on the asyncio loop (curlmulti.py, curlexchange.py).

libcurl rather than aiohttp: a webdav run costs 0.67-0.86x the CPU, a 1 GiB run 2.2 s instead
of 3.2, TLS sessions are resumed across the run's connections (XrdHttp closes the connection
after every 404), and it loads in ~10 ms where aiohttp took ~110 (benchmarks/RESULTS.md).

Expected failures (refused connection, TLS, 403, timeout, ...) surface as `RequestFailed`,
carrying the step outcome with a Reason; `guarded()` turns it into the step's result.
TLS verification is always on. The bearer token is revealed only into the request header.

Paths are sent literally: percent-encoded as a path (endpoint_url), so nothing in them is
read as a query, a fragment or a dot-segment. Redirects are followed here, not by libcurl,
and only where storage systems use them (docs/safety.md): at most MAX_REDIRECTS hops;
307/308 for any method (same method and body), 301/302/303 for GET and HEAD; to the same
scheme or http -> https; to the endpoint's own host or one matching `Target.redirect_hosts`.
Every request of a chain goes to an allowed host, so the token never reaches another.

A full disk: 507, or a refusal whose text says so, is NO_SPACE. XrdHttp answers nothing at
all: it closes the connection when a write fails, so the upload is reset. A PUT broken off
(libcurl has already resent it once when a reused connection was found closed) is followed by
a 1-byte PUT to the same path: its answer, if any, is the server's real one; if the server
takes it, or drops it too while it still answers an OPTIONS, the server is up and drops
uploads: NO_SPACE, not CONNECT (docs/reasons.md).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

import pycurl

from lakeprobe.probes.clients.curlexchange import Answer, BodyRejected, Limits, build
from lakeprobe.probes.clients.curlmulti import CurlFailure, CurlMulti
from lakeprobe.probes.clients.httpheaders import Headers
from lakeprobe.probes.clients.httpparse import DigestError, parse_decimal, response_adler32
from lakeprobe.probes.clients.httpurl import HttpUrl, parse_url
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import NO_SPACE_TEXT, Reason, StepOutcome, failed
from lakeprobe.probes.core.paths import literal_problem
from lakeprobe.probes.core.payloads import Payload
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret, redact
from lakeprobe.probes.credentials.tls import resolve_ca_dir

HTTP_SCHEMES = {"davs": "https", "https": "https", "dav": "http", "http": "http"}
USER_AGENT = "lakeprobe/0.1"
MAX_CONNECTIONS = 8  # per client, i.e. per run and endpoint
MAX_DETAIL = 300
ANY_STATUS = range(100, 600)  # `expect=` for requests whose every answer the caller judges
MAX_REDIRECTS = 5
REDIRECT_ANY_METHOD = frozenset({307, 308})  # same method and body (RFC 9110 15.4.8, 15.4.9)
REDIRECT_GET_HEAD = frozenset({301, 302, 303})  # clients may turn a PUT into a GET: not followed
_REDIRECTS = REDIRECT_ANY_METHOD | REDIRECT_GET_HEAD


def http_url(url: str) -> str:
    """`davs://h:p` -> `https://h:p`, `dav://` -> `http://`; https/http unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in HTTP_SCHEMES:
        raise ValueError(f"not an HTTP/WebDAV URL: {redact(url)!r}")
    return f"{HTTP_SCHEMES[scheme.lower()]}://{rest}"


def endpoint_url(endpoint: str, path: str) -> HttpUrl:
    """The URL of the absolute `path` at an HTTP/WebDAV endpoint (`davs://h:p`, ...), the path
    percent-encoded as a path. ValueError for a path with no literal form: relative, or with
    a '.', '..' or empty segment (servers resolve those, encoded or not)."""
    problem = literal_problem(path)
    if problem is not None:
        raise ValueError(f"path {problem}: {path!r}")
    return parse_url(http_url(endpoint)).with_literal_path(path)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per request, both also bounded by what is left of the run's deadline."""

    connect: float = 60.0  # TCP + TLS handshake (HTTP-TPC smoke test: 60 s)
    stall: float = 60.0  # longest wait for the next bytes of an answer


@dataclass(frozen=True, slots=True)
class Reply:
    """A final (not redirected) answer to one request."""

    method: str
    status: int
    reason: str
    headers: Headers
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


# CURLcodes (curl/curl.h) by what they mean for the endpoint.
_TLS_CODES = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_DNS_CODES = frozenset({5, 6})  # couldn't resolve proxy / host
_CONNECT_CODES = frozenset({7, 55, 56})  # couldn't connect; send / receive failed (reset)
_BROKEN_OFF_CODES = frozenset({52, 55, 56})  # the connection was up and broke, no answer
CURLE_OPERATION_TIMEDOUT = 28


def exception_reason(error: BaseException) -> Reason:
    """The Reason of a transport-level failure: a CurlFailure (or an OSError)."""
    if isinstance(error, TimeoutError):
        return Reason.TIMEOUT
    if not isinstance(error, CurlFailure):
        return Reason.CONNECT if isinstance(error, OSError) else Reason.PROTOCOL_ERROR
    if error.code in _TLS_CODES:
        return Reason.TLS
    if error.code in _DNS_CODES:
        return Reason.DNS
    if error.code == CURLE_OPERATION_TIMEDOUT:  # the connect, stall or total deadline
        return Reason.TIMEOUT
    if error.code in _CONNECT_CODES:
        return Reason.CONNECT  # refused, reset, unreachable
    return Reason.PROTOCOL_ERROR  # closed with no answer, an answer broken off, malformed


def broken_off(error: BaseException) -> bool:
    """The connection was up and broke during the exchange (reset, closed): not refused."""
    return isinstance(error, CurlFailure) and error.code in _BROKEN_OFF_CODES


def exception_failure(method: str, error: BaseException) -> StepOutcome:
    text = str(error).strip() or type(error).__name__
    return failed(exception_reason(error), _clip(f"{method}: {text}"))


class HttpClient:
    """One libcurl multi handle (connection reuse, TLS session reuse) for one run against one
    endpoint.
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
        self._multi: CurlMulti | None = None
        self._share: pycurl.CurlShare | None = None

    async def __aenter__(self) -> HttpClient:
        # One connection cache and one TLS session cache for the run: a connection that the
        # server closed is replaced with a resumed session, not a full handshake.
        self._ca_dir = resolve_ca_dir(self._ca_dir)
        self._share = pycurl.CurlShare()
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
        self._multi = CurlMulti(MAX_CONNECTIONS)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._multi is not None:
            self._multi.close()
            self._multi = None
        if self._share is not None:
            self._share.close()
            self._share = None

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
        except (CurlFailure, OSError, TimeoutError) as error:
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
        self, url: HttpUrl, headers: dict[str, str], broken: StepOutcome
    ) -> StepOutcome:
        """What a PUT broken off twice means (module docstring): a 1-byte PUT to the same
        path (the caller deletes it with the test file) asks the server for its answer."""
        try:
            reply = await self._follow("PUT", url, headers, b"\0", 64 * 1024, None)
        except (CurlFailure, OSError, TimeoutError) as error:
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

    async def _answers(self, url: HttpUrl, headers: dict[str, str]) -> bool:
        """Whether the server answers an OPTIONS for `url` with any status at all."""
        try:
            await self._follow("OPTIONS", url, headers, None, 64 * 1024, None)
        except (CurlFailure, OSError, TimeoutError):
            return False
        except RequestFailed:  # answered, with a redirect not followed or an oversized body
            return True
        return True

    def url_of(self, path: str) -> HttpUrl:
        """The endpoint URL of an absolute path, encoded as HttpClient sends it."""
        return endpoint_url(self._endpoint, path)

    async def _follow(
        self,
        method: str,
        url: HttpUrl,
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
            self._ctx.log.debug("%s: %d redirect to %s", method, answer.status, url.display())
        detail = f"{method}: more than {MAX_REDIRECTS} redirects"
        raise RequestFailed(failed(Reason.UNEXPECTED_STATUS, detail))

    def _redirect_target(self, method: str, current: HttpUrl, redirect: _Redirect) -> HttpUrl:
        """Where a redirect leads; RequestFailed when it may not be followed."""
        try:
            target = current.join(redirect.location)
            problem = self._redirect_problem(method, redirect.status, current, target)
        except ValueError:  # a Location that is no URL
            detail = f"{method}: {redirect.status} with a malformed Location"
            raise RequestFailed(failed(Reason.PROTOCOL_ERROR, detail)) from None
        if problem is not None:
            detail = f"{method}: redirect to {target.display()} not followed: {problem}"
            raise RequestFailed(failed(Reason.UNEXPECTED_STATUS, _clip(detail)))
        return target

    def _redirect_problem(
        self, method: str, status: int, current: HttpUrl, target: HttpUrl
    ) -> str | None:
        if status in REDIRECT_GET_HEAD and method not in ("GET", "HEAD"):
            return f"{status} is followed only for GET and HEAD"
        upgrade = (current.scheme, target.scheme) == ("http", "https")
        if target.scheme != current.scheme and not upgrade:
            return f"scheme {current.scheme} -> {target.scheme}"
        host = target.host.rstrip(".")
        if host != self._host and not any(
            fnmatch.fnmatchcase(host, pattern) for pattern in self._redirect_hosts
        ):
            return "host not in redirect_hosts"
        return None

    async def _send(
        self,
        method: str,
        url: HttpUrl,
        headers: dict[str, str],
        data: Payload | None,
        max_body: int,
        sink: Callable[[bytes], object] | None,
    ) -> Reply | _Redirect:
        """One request. libcurl sends it again, on a new connection, when a reused keep-alive
        connection turns out closed before any answer arrived (RFC 9112 9.3.1)."""
        if self._multi is None or self._share is None:
            raise RuntimeError("HttpClient used outside 'async with'")
        answer = Answer()

        def accept(chunk: bytes) -> None:
            answer.length += len(chunk)
            if answer.status in _REDIRECTS and answer.location() is not None:
                return  # a redirect's body is never kept: it is no answer
            if answer.length > max_body:
                raise BodyRejected(f"{method}: body over {max_body} bytes")
            if sink is None:
                answer.body.append(chunk)
            else:
                sink(chunk)

        curl = build(
            self._share, method, str(url), {"User-Agent": USER_AGENT, **headers}, data,
            self._limits(), self._ca_dir, answer, accept, fresh_connection=not self._keep_alive,
        )  # fmt: skip
        started = time.monotonic()
        try:
            await self._multi.perform(curl)
        except CurlFailure:
            if answer.refused is not None:  # our reader stopped it: that is the failure
                raise _refusal(answer.refused) from None
            raise
        finally:
            curl.close()
        seconds = time.monotonic() - started
        location = answer.location() if answer.status in _REDIRECTS else None
        if location is not None:
            return _Redirect(answer.status, location)
        body = b"".join(answer.body)
        return Reply(
            method, answer.status, answer.reason, Headers(answer.headers), body, answer.length,
            seconds,
        )  # fmt: skip

    def _limits(self) -> Limits:
        left = max(self._ctx.remaining(), 0.001)
        return Limits(
            connect=min(self._timeouts.connect, left),
            stall=min(self._timeouts.stall, left),
            total=left,
        )


def _refusal(error: BaseException) -> BaseException:
    """What a body cut off by us becomes: over the limit is a protocol error."""
    if isinstance(error, BodyRejected):
        return RequestFailed(failed(Reason.PROTOCOL_ERROR, str(error)))
    return error


@dataclass(frozen=True, slots=True)
class _Redirect:
    """A redirect to follow, if it may be followed."""

    status: int
    location: str


def _phrase(status: int) -> str:
    """The standard reason phrase, for a status line that came without one. http's enums
    cost every run ~0.5 ms to create: loaded only here."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _clip(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
