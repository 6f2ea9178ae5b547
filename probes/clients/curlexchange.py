"""One HTTP/1.1 request and its answer over libcurl (pycurl): the handle's options, the
status line and headers, the body (collected, or streamed to a sink), the upload.

libcurl is told to be a plain, literal client: no redirects followed (HttpClient decides),
no proxy from the environment, no .netrc, no cookies, the path sent as it is, HTTP/1.1,
http and https only, no `Expect: 100-continue`. TLS verification is always on.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pycurl

from lakeprobe.probes.core.payloads import Payload

# A reused bytearray (probes/core/payloads.py) goes out through the read callback: libcurl's
# largest upload buffer means fewer callbacks (64 KiB cost 1.4x the CPU per GiB).
UPLOAD_BUFFER = 2 * 1024 * 1024
READ_BUFFER = 512 * 1024  # receive buffer: a sink sees chunks of up to this size
INLINE_BODY = 64 * 1024  # bodies up to this size go out with the headers


class BodyRejected(Exception):
    """The answer's body is longer than the caller accepts."""


@dataclass(slots=True)
class Answer:
    """The answer as libcurl delivers it, filled in by the header and body callbacks."""

    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # of the final answer
    body: list[bytes] = field(default_factory=list)
    length: int = 0
    refused: BaseException | None = None  # why the body was cut off by us

    def location(self) -> str | None:
        """The first Location field, if any."""
        return next((value for name, value in self.headers if name.lower() == "location"), None)


@dataclass(frozen=True, slots=True)
class Limits:
    """The time limits of one exchange."""

    connect: float  # seconds for TCP + TLS
    stall: float  # seconds without a byte in either direction
    total: float  # seconds for the whole exchange


def build(
    share: pycurl.CurlShare,
    method: str,
    url: str,
    headers: Mapping[str, str],
    data: Payload | None,
    limits: Limits,
    ca_dir: Path | None,
    answer: Answer,
    accept_chunk: Callable[[bytes], None],
    *,
    fresh_connection: bool,
) -> pycurl.Curl:
    """An easy handle for one request; the answer lands in `answer`, each body chunk goes to
    `accept_chunk` (which raises BodyRejected to stop the transfer)."""
    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.SHARE, share)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.PROXY, "")  # never a proxy from http_proxy/https_proxy
    curl.setopt(pycurl.PATH_AS_IS, 1)  # no dot-segment squashing: the path is sent literally
    curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    curl.setopt(pycurl.FOLLOWLOCATION, 0)
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.TCP_NODELAY, 1)
    curl.setopt(pycurl.SSL_VERIFYPEER, 1)
    curl.setopt(pycurl.SSL_VERIFYHOST, 2)
    capath, cafile = trust_store(ca_dir)
    if capath is not None:  # looked up by subject hash when needed: no load per connection
        curl.setopt(pycurl.CAPATH, capath)
    if cafile is None:
        curl.unsetopt(pycurl.CAINFO)
    else:
        curl.setopt(pycurl.CAINFO, cafile)
    curl.setopt(pycurl.CONNECTTIMEOUT_MS, _milliseconds(limits.connect))
    curl.setopt(pycurl.TIMEOUT_MS, _milliseconds(limits.total))
    curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)  # a stall: under 1 byte/s for `stall` seconds
    curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(limits.stall)))
    curl.setopt(pycurl.BUFFERSIZE, READ_BUFFER)
    if fresh_connection:
        curl.setopt(pycurl.FORBID_REUSE, 1)
    lines = [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Expect:")  # no 100-continue round trip (libcurl's default for large bodies)
    if not any(name.lower() == "content-type" for name in headers):
        lines.append("Content-Type:")  # libcurl's default for a body is a form's type
    curl.setopt(pycurl.HTTPHEADER, lines)
    curl.setopt(pycurl.HEADERFUNCTION, _header_reader(answer))
    curl.setopt(pycurl.WRITEFUNCTION, _body_reader(answer, accept_chunk))
    _set_method(curl, method, data)
    return curl


@functools.cache
def _system_store() -> tuple[str | None, str | None]:
    paths = ssl.get_default_verify_paths()  # Debian: /usr/lib/ssl/certs, /usr/lib/ssl/cert.pem
    if paths.capath is not None and Path(paths.capath).is_dir():
        return paths.capath, None
    return None, paths.cafile


def trust_store(ca_dir: Path | None) -> tuple[str | None, str | None]:
    """(CA directory, CA file) for libcurl: the grid CA directory when there is one (as grid
    tools trust only X509_CERT_DIR), else the system's hashed directory, else its bundle."""
    if ca_dir is not None:
        return str(ca_dir), None
    return _system_store()


def _set_method(curl: pycurl.Curl, method: str, data: Payload | None) -> None:
    if method == "HEAD":
        curl.setopt(pycurl.NOBODY, 1)
    elif method == "GET" and data is None:
        curl.setopt(pycurl.HTTPGET, 1)
    else:
        curl.setopt(pycurl.CUSTOMREQUEST, method)
    if data is None:
        return
    if isinstance(data, bytes) or len(data) <= INLINE_BODY:
        # libcurl sends it from this object (kept referenced by pycurl), no copy for bytes; a
        # small body goes in the same write as the headers, as a browser's would: a server
        # that answers before reading the body (a refusal) still has the whole request.
        curl.setopt(pycurl.POSTFIELDS, data if isinstance(data, bytes) else bytes(data))
        curl.setopt(pycurl.POSTFIELDSIZE_LARGE, len(data))
        return
    curl.setopt(pycurl.UPLOAD, 1)  # with CUSTOMREQUEST: `method` with this body
    curl.setopt(pycurl.INFILESIZE_LARGE, len(data))
    curl.setopt(pycurl.UPLOAD_BUFFERSIZE, UPLOAD_BUFFER)
    upload = _Upload(memoryview(data))
    curl.setopt(pycurl.READFUNCTION, upload.read)
    curl.setopt(pycurl.SEEKFUNCTION, upload.seek)  # a resend starts over


class _Upload:
    """The body handed to libcurl slice by slice (each slice copied once, into its buffer)."""

    __slots__ = ("_offset", "_view")

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._offset = 0

    def read(self, size: int) -> bytes:
        start = self._offset
        self._offset = min(start + size, len(self._view))
        return self._view[start : self._offset].tobytes()

    def seek(self, offset: int, origin: int) -> int:
        if origin != 0 or not 0 <= offset <= len(self._view):
            return 2  # CURL_SEEKFUNC_CANTSEEK
        self._offset = offset
        return 0  # CURL_SEEKFUNC_OK


def _header_reader(answer: Answer) -> Callable[[bytes], None]:
    def read(line: bytes) -> None:
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text.startswith("HTTP/"):  # a new answer: an interim 1xx, or the final one
            parts = text.split(" ", 2)
            answer.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            answer.reason = parts[2] if len(parts) > 2 else ""
            answer.headers = []
            return
        name, sep, value = text.partition(":")
        if sep and name and not name[0].isspace():
            answer.headers.append((name.strip(), value.strip()))

    return read


def _body_reader(answer: Answer, accept_chunk: Callable[[bytes], None]) -> Callable[[bytes], int]:
    def read(chunk: bytes) -> int:
        try:
            accept_chunk(chunk)
        except BaseException as error:  # kept, and raised by the caller after the transfer
            answer.refused = error
            return 0  # libcurl stops the transfer: CURLE_WRITE_ERROR
        return len(chunk)

    return read


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
