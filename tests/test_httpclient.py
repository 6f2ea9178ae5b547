"""HTTP client helpers shared by the HTTP probes: URL mapping, status and exception reasons,
adler32 digests and PROPFIND parsing."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest

from lakeprobe.probes.clients import aiohttpsession
from lakeprobe.probes.clients.curlmulti import CurlFailure
from lakeprobe.probes.clients.httpclient import (
    Reply,
    broken_off,
    exception_reason,
    http_url,
    status_reason,
)
from lakeprobe.probes.clients.httpheaders import Headers
from lakeprobe.probes.clients.httpparse import (
    MAX_HREF,
    DigestError,
    MultistatusError,
    MultistatusParser,
    adler32_from_content_digest,
    adler32_from_digest,
    file_names,
    parse_multistatus,
    response_adler32,
)
from lakeprobe.probes.core.outcome import Reason


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("davs://h:1094", "https://h:1094"),
        ("dav://h", "http://h"),
        ("https://h:8443", "https://h:8443"),
        ("http://h", "http://h"),
        ("DAVS://h", "https://h"),
    ],
)
def test_http_url(url: str, expected: str) -> None:
    """WebDAV schemes map onto the HTTP ones; hosts and ports are kept."""
    assert http_url(url) == expected


@pytest.mark.parametrize("url", ["root://h", "ftp://h", "h:1094"])
def test_http_url_rejects_other_schemes(url: str) -> None:
    """Non-HTTP URLs are a configuration bug, reported loudly."""
    with pytest.raises(ValueError, match="not an HTTP"):
        http_url(url)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, Reason.AUTH), (403, Reason.AUTH), (404, Reason.NOT_FOUND),
        (500, Reason.SERVER_ERROR), (503, Reason.SERVER_ERROR), (599, Reason.SERVER_ERROR),
        (200, Reason.UNEXPECTED_STATUS), (301, Reason.UNEXPECTED_STATUS),
        (405, Reason.UNEXPECTED_STATUS), (409, Reason.UNEXPECTED_STATUS),
    ],
)  # fmt: skip
def test_status_reason(status: int, reason: Reason) -> None:
    """HTTP status codes that a step did not expect map onto the closed Reason set."""
    assert status_reason(status) is reason


@pytest.mark.parametrize(
    ("code", "reason", "broken"),
    [
        (60, Reason.TLS, False),  # SSL certificate problem: unable to get local issuer
        (35, Reason.TLS, False),  # TLS handshake failed
        (6, Reason.DNS, False),  # could not resolve host
        (7, Reason.CONNECT, False),  # refused, unreachable
        (28, Reason.TIMEOUT, False),  # connect, stall or total deadline
        (55, Reason.CONNECT, True),  # send failed: reset while uploading
        (56, Reason.CONNECT, True),  # receive failed: reset
        (52, Reason.PROTOCOL_ERROR, True),  # closed with no answer
        (18, Reason.PROTOCOL_ERROR, False),  # the answer's body broke off
        (8, Reason.PROTOCOL_ERROR, False),  # a malformed answer
    ],
)
def test_curl_failure_reason(code: int, reason: Reason, broken: bool) -> None:
    """libcurl's error codes map onto the closed Reason set; the ones where a connection was
    up and broke count as broken off (real servers cover refused, certificate, timeout)."""
    failure = CurlFailure(code, "text")
    assert exception_reason(failure) is reason
    assert broken_off(failure) is broken


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ssl.SSLCertVerificationError("verify failed"), Reason.TLS),
        (ssl.SSLError("bad record"), Reason.TLS),
        (socket.gaierror(-2, "Name or service not known"), Reason.DNS),
        (aiohttp.ServerTimeoutError("read"), Reason.TIMEOUT),
        (TimeoutError(), Reason.TIMEOUT),
        (ConnectionRefusedError(111, "refused"), Reason.CONNECT),
        (ConnectionResetError(104, "reset"), Reason.CONNECT),
        (aiohttp.ClientOSError(104, "reset"), Reason.CONNECT),
        (aiohttp.ServerDisconnectedError(), Reason.PROTOCOL_ERROR),
        (aiohttp.ClientPayloadError("truncated"), Reason.PROTOCOL_ERROR),
        (aiohttp.ClientConnectionError("closed"), Reason.CONNECT),
        (aiohttp.ClientError("anything else"), Reason.PROTOCOL_ERROR),
    ],
)
def test_aiohttp_exception_reason(error: BaseException, reason: Reason) -> None:
    """The archive clients' aiohttp failures map onto the same closed Reason set."""
    assert aiohttpsession.exception_reason(error) is reason


@pytest.mark.parametrize(
    ("content_digest", "digest", "expected"),
    [
        ([], ["adler32=084b021f"], "084b021f"),
        ([], ["ADLER32=84B021F"], "084b021f"),  # case and leading zero dropped
        ([], ["md5=HUXZLQLMuI/KZ5KDcJPcOA==, adler32=0a1b2c3d"], "0a1b2c3d"),
        ([], ["md5=HUXZLQLMuI/KZ5KDcJPcOA==", "adler32=0a1b2c3d"], "0a1b2c3d"),
        ([], [], None),
        ([], ["md5=HUXZLQLMuI/KZ5KDcJPcOA=="], None),
        (["adler=:CEsCHw==:"], [], "084b021f"),
        (["sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, adler=:CEsCHw==:"], [],
         "084b021f"),
        (["adler=:CEsCHw==:;param=1"], [], "084b021f"),
        (["adler=:CEsCHw==:"], ["adler32=ffffffff"], "084b021f"),  # RFC 9530 preferred
    ],
)  # fmt: skip
def test_response_adler32(content_digest: list[str], digest: list[str], expected: str) -> None:
    """adler32 from RFC 9530 Content-Digest or RFC 3230 Digest, as 8 lower-case hex digits."""
    assert response_adler32(content_digest, digest) == expected


@pytest.mark.parametrize(
    "value", ["adler32=", "adler32=xyz", "adler32=123456789", "adler32=:CEsCHw==:"]
)
def test_malformed_digest(value: str) -> None:
    """An adler32 instance that is not 1-8 hex digits is a protocol error, not 'absent'."""
    with pytest.raises(DigestError):
        adler32_from_digest([value])


@pytest.mark.parametrize(
    "value",
    ["adler=CEsCHw==", "adler=:CEsCHw==", "adler=:!!!!:", "adler=:CEsCHwA=:", "adler=::",
     "adler=:\u00e9\u00e9\u00e9\u00e9:"],
)  # fmt: skip
def test_malformed_content_digest(value: str) -> None:
    """Content-Digest adler must be a 4-byte base64 byte sequence between colons."""
    with pytest.raises(DigestError):
        adler32_from_content_digest([value])


MULTISTATUS = b"""<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:lp1="DAV:">
<D:response><D:href>/lakeprobe/</D:href><D:propstat><D:prop>
  <lp1:resourcetype><D:collection/></lp1:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/lakeprobe/a%20b</D:href><D:propstat><D:prop>
  <lp1:getcontentlength>6</lp1:getcontentlength></D:prop></D:propstat></D:response>
<D:response><D:href>https://h:8443/lakeprobe/sub/</D:href></D:response>
<D:response><D:href>https://h:8443/lakeprobe/f2</D:href></D:response>
</D:multistatus>"""


def test_parse_multistatus() -> None:
    """Hrefs may be paths or URLs and are percent-decoded; collections (by resourcetype or
    trailing slash) are not files."""
    entries = parse_multistatus(MULTISTATUS)
    assert [(e.name, e.is_collection) for e in entries] == [
        ("lakeprobe", True), ("a b", False), ("sub", True), ("f2", False)
    ]  # fmt: skip
    assert file_names(entries) == ["a b", "f2"]


def listing(*hrefs: str) -> bytes:
    responses = "".join(f"<D:response><D:href>{href}</D:href></D:response>" for href in hrefs)
    return f"<D:multistatus xmlns:D='DAV:'>{responses}</D:multistatus>".encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "malformed XML"),
        (b"<D:multistatus xmlns:D='DAV:'>", "malformed XML"),
        (b"<html><body>Forbidden</body></html>", "not DAV:multistatus"),
        (b"<multistatus/>", "not DAV:multistatus"),  # no DAV: namespace
        (b"<D:multistatus xmlns:D='DAV:'><D:response/></D:multistatus>", "no DAV:href"),
        (listing("http://[::1"), "malformed DAV:href 'http://\\[::1'"),
        (listing("/a%00b"), "decodes to a NUL character"),
        (listing("/" + "a" * MAX_HREF), f"longer than {MAX_HREF} characters"),
        (b'<?xml version="1.0" encoding="rot13"?><D:multistatus xmlns:D="DAV:"/>', "malformed XML"),
        (b'<?xml version="1.0" encoding="idna"?><D:multistatus xmlns:D="DAV:"/>', "malformed XML"),
        (b'<!DOCTYPE m [<!ENTITY a "aaaa">]><m>&a;</m>', "DOCTYPE"),
        (b'<!DOCTYPE m SYSTEM "http://127.0.0.1:1/x.dtd"><m/>', "DOCTYPE"),
        ('<?xml version="1.0" encoding="utf-16"?><!DOCTYPE m><m/>'.encode("utf-16"), "DOCTYPE"),
    ],
)
def test_parse_multistatus_rejects(body: bytes, message: str) -> None:
    """Malformed, non-DAV, and DTD-carrying documents (entity expansion, external fetches)
    are rejected with MultistatusError before anything is expanded or fetched."""
    with pytest.raises(MultistatusError, match=message):
        parse_multistatus(body)


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"max_entries": 3}, "listing has more than 3 entries"),
        ({"max_bytes": 100}, "listing larger than 100 bytes"),
    ],
)
def test_multistatus_caps(caps: dict[str, int], message: str) -> None:
    """A listing over the entry or byte cap is an error naming the cap; `feed` never raises
    (the caller learns the status code only after the body), `close` does."""
    parser = MultistatusParser(**caps)
    body = listing(*(f"/d/f{i}" for i in range(4)))
    for start in range(0, len(body), 40):
        parser.feed(body[start : start + 40])
    with pytest.raises(MultistatusError, match=message):
        parser.close()


def test_multistatus_in_chunks() -> None:
    """Fed byte by byte, the listing gives the same entries as in one piece."""
    parser = MultistatusParser()
    for i in range(len(MULTISTATUS)):
        parser.feed(MULTISTATUS[i : i + 1])
    assert parser.close() == parse_multistatus(MULTISTATUS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4096", 4096), (" 0 ", 0), ("9" * 20, 10**20 - 1), ("1" + "0" * 20, None), ("9" * 5000, None),
     ("\u00b2", None), ("\u0661\u0662", None), ("-1", None), ("+1", None), ("", None)],
)  # fmt: skip
def test_content_length(value: str, expected: int | None) -> None:
    """Content-Length is 1-20 ASCII digits; anything else (5000 digits, '²', which
    str.isdigit() accepts) is unknown, never an exception."""
    reply = Reply("HEAD", 200, "OK", Headers({"Content-Length": value}),
                  b"", 0, 0.0)  # fmt: skip
    assert reply.content_length == expected
