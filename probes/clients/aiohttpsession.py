"""The aiohttp session of the JSON API clients (perfSONAR archives), and what its errors mean.

The storage probes speak HTTP through libcurl (httpclient.py); an archive's API is a few small
JSON requests, for which aiohttp's request/response objects are the simpler fit.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import aiohttp

from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.credentials.tls import client_ssl_context, resolve_ca_dir

USER_AGENT = "lakeprobe/0.1"


def verifying_session(ca_dir: Path | None, limit: int) -> aiohttp.ClientSession:
    """A session for one run: TLS verified against `ca_dir` (or the default trust), at most
    `limit` connections, no cookies, lakeprobe's User-Agent, deadlines set per request."""
    tls = client_ssl_context(resolve_ca_dir(ca_dir))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=tls, limit=limit),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        timeout=aiohttp.ClientTimeout(total=None),
    )


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
