"""Is the peer an XRootD server? A bounded handshake before XrdCl is let near it.

XrdCl 5.5 trusts the length fields of whatever answers: it reads an 8-byte response header
and allocates the body length the header claims. A hostile or misconfigured endpoint thus
decides how much memory the daemon takes: a peer claiming a 2 GiB frame and streaming data
grew a run by 2 GiB; an HTTP server behind a root:// URL makes XrdCl read "HTTP/1.1" as a
header (a 791 MB claim). So before XrdCl talks to a host:port in a run, this module does,
with asyncio streams and no XrdCl:

- connect (plain TCP: roots:// too, whose TLS only starts after this plain exchange);
- send the client handshake (five big-endian int32: 0, 0, 0, 4, 2012; XProtocol.hh
  ClientInitHandShake) together with a kXR_protocol request (ClientProtocolRequest), as
  XrdCl itself does: for root:// without flags, for roots:// with kXR_ableTLS|kXR_wantTLS
  (XrdCl adds kXR_secreqs|kXR_bifreqs, whose answers are not needed here);
- read the handshake answer, exactly 16 bytes (ServerResponseHeader: streamid 0, status
  kXR_ok, dlen 8; then protocol version and server type), and the kXR_protocol answer:
  its 8-byte header (our streamid; kXR_ok, or kXR_error: still an XRootD server) and a
  body of at most 4 KiB;
- roots:// only: the answer's flags must carry kXR_gotoTLS (the server switched to TLS, as
  XRootD does when asked), then xrdtls.verify_tls makes the TLS handshake on the same socket
  and checks the certificate's chain and names against the URL's host, for every host
  (XrdCl 5.5 skips the name for localhost, 127.0.0.1 and [::1]: see xrdtls.py);
- close. Nothing else is sent: no login, never a token.

Anything else fails the check with a `StepOutcome`: `protocol_error` ("not an XRootD server:
the first answer looks like HTTP (HTTP/1.1 400)"), `timeout` (silent peer, bounded by the
caller's deadline), `connect` (refused, or closed before answering), `dns`, or for
roots:// `tls` (no TLS offered, an untrusted chain, a certificate for another host).

What it bounds: what lakeprobe reads from a peer that is not an XRootD server, or that lies
in its first answers: at most the 16 + 8 + 4096 bytes above plus a 64-byte excerpt for the
detail; asyncio's stream buffer is capped too (`limit`). XrdCl never connects to a peer that
fails the check.

What it does not bound: XrdCl opens its own connection after the check. A server that
speaks XRootD correctly here and lies later (to that next connection, in a login or any
later response), or a redirect to a host that was never checked, is beyond what a client
can bound with XrdCl 5.5, which offers no limit on response sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lakeprobe.probes.clients.xrdtls import verify_tls
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed, passed
from lakeprobe.probes.credentials.secrets import redact
from lakeprobe.probes.credentials.tls import resolve_ca_dir

DEFAULT_PORT = 1094
# XProtocol.hh
CLIENT_HANDSHAKE = struct.pack(">5i", 0, 0, 0, 4, 2012)
KXR_PROTOCOL = 3006  # request code
KXR_PROTOCOL_VERSION = 0x511  # kXR_PROTOCOLVERSION, as XrdCl 5.5 announces it
KXR_OK, KXR_ERROR = 0, 4003
KXR_DATA_SERVER, KXR_LBAL_SERVER = 1, 0
STREAM_ID = b"lp"
KXR_ABLE_TLS, KXR_WANT_TLS = 0x02, 0x04  # ClientProtocolRequest flags
KXR_HAVE_TLS, KXR_GOTO_TLS = 0x80000000, 0x40000000  # kXR_protocol answer flags


def _protocol_request(flags: int) -> bytes:
    """ClientProtocolRequest: streamid[2] requestid clientpv flags expect reserved[10] dlen."""
    return struct.pack(
        ">2sHiBB10si", STREAM_ID, KXR_PROTOCOL, KXR_PROTOCOL_VERSION, flags, 0, bytes(10), 0
    )


PROTOCOL_REQUEST = _protocol_request(0)
TLS_PROTOCOL_REQUEST = _protocol_request(KXR_ABLE_TLS | KXR_WANT_TLS)
HEADER = struct.Struct(">2sHI")  # ServerResponseHeader: streamid[2] status dlen (as unsigned)
HANDSHAKE_BODY = struct.Struct(">ii")  # protocol version, server type
MAX_PROTOCOL_BODY = 4096
_EXCERPT_BYTES = 64  # read after a wrong first answer, to say what it was
_EXCERPT_SECONDS = 0.2
_STREAM_LIMIT = 8192  # asyncio's read buffer pauses the transport at twice this
_CLOSE_SECONDS = 0.5  # for a TLS close_notify exchange; then the connection is cut


class NotXrootd(Exception):
    """The answer so far cannot come from an XRootD server; str() says why."""


class _Unanswered(ConnectionError):
    """Connected, then closed or reset before the handshake was answered."""


def _strerror(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


async def check_xrootd(url: str, deadline: float, ca_dir: Path | None = None) -> StepOutcome:
    """Handshake with the XRootD endpoint of `url` (root:// or roots://, any path) before
    `deadline` (event-loop time): passed, or failed with the reason and a detail. roots://
    also checks the server's certificate against `resolve_ca_dir(ca_dir)` (a target's
    ca_dir; None: X509_CERT_DIR, the directory XrdCl trusts) and the URL's host."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or DEFAULT_PORT
    tls = _TlsCheck(host, resolve_ca_dir(ca_dir)) if parts.scheme == "roots" else None
    try:
        async with asyncio.timeout_at(deadline):
            return await _handshake(host, port, tls, deadline)
    except TimeoutError:
        return failed(Reason.TIMEOUT, f"{host}:{port}: no complete XRootD handshake answer")
    except socket.gaierror as error:
        return failed(Reason.DNS, f"{host}:{port}: {error.strerror or error}")
    except NotXrootd as error:
        return failed(Reason.PROTOCOL_ERROR, f"not an XRootD server: {error}")
    except _Unanswered as error:
        return failed(Reason.CONNECT, f"{host}:{port}: no answer to the XRootD handshake ({error})")
    except OSError as error:  # refused, unreachable
        return failed(Reason.CONNECT, f"{host}:{port}: {_strerror(error)}")


@dataclass(frozen=True, slots=True)
class _TlsCheck:
    """roots://: the host the certificate must name, and the CA directory to trust."""

    host: str
    ca_dir: Path | None


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


async def _handshake(host: str, port: int, tls: _TlsCheck | None, deadline: float
                     ) -> StepOutcome:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port, limit=_STREAM_LIMIT)
    try:
        writer.write(CLIENT_HANDSHAKE + (PROTOCOL_REQUEST if tls is None else TLS_PROTOCOL_REQUEST))
        await writer.drain()
        version, server_type = await _read_handshake(reader)
        note, flags = await _read_protocol_answer(reader)
        if tls is not None and flags is not None:  # kXR_error: XrdCl gives up on roots:// too
            refused = _no_tls(flags) or await verify_tls(reader, writer, tls.host, tls.ca_dir)
            if refused is not None:
                return refused
            note += ", TLS"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as error:
        raise _Unanswered(_strerror(error)) from None
    finally:
        await _close(writer, deadline)
    kind = "data server" if server_type == KXR_DATA_SERVER else "redirector"
    dotted = f"{version >> 8:x}.{version >> 4 & 0xF:x}.{version & 0xF:x}"
    return passed(f"XRootD {kind}, protocol {dotted}{note}")


def _no_tls(flags: int) -> StepOutcome | None:
    """roots:// asked for TLS: a server that did not switch fails (XrdCl refuses one without
    TLS as well; one claiming TLS but not switching would leave the session in clear)."""
    if flags & KXR_GOTO_TLS:
        return None
    offered = "claims TLS but did not switch to it" if flags & KXR_HAVE_TLS else "offers no TLS"
    return failed(Reason.TLS, f"roots:// asked for TLS: the server {offered} (flags 0x{flags:08x})")


async def _close(writer: asyncio.StreamWriter, deadline: float) -> None:
    """Close, waiting briefly and never past `deadline` for a TLS close (close_notify)."""
    writer.close()
    try:
        async with asyncio.timeout_at(min(deadline, _loop_time() + _CLOSE_SECONDS)):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()  # a peer that never answers close_notify
    except OSError:
        pass  # reset by the peer: closed either way


async def _read_handshake(reader: asyncio.StreamReader) -> tuple[int, int]:
    """The 16-byte handshake answer: (protocol version, server type)."""
    head = await _read(reader, HEADER.size, "")
    stream_id, status, dlen = HEADER.unpack(head)
    if stream_id != b"\0\0" or status != KXR_OK:
        raise NotXrootd(await _describe(reader, head))
    if dlen != HANDSHAKE_BODY.size:
        raise NotXrootd(f"its handshake answer claims {dlen} bytes (XRootD sends 8)")
    version, server_type = HANDSHAKE_BODY.unpack(await _read(reader, dlen, "handshake "))
    if not 0 < version <= 0xFFFF or server_type not in (KXR_DATA_SERVER, KXR_LBAL_SERVER):
        raise NotXrootd(f"handshake answer with version {version}, server type {server_type}")
    return version, server_type


async def _read_protocol_answer(reader: asyncio.StreamReader) -> tuple[str, int | None]:
    """The kXR_protocol answer, checked and read within bounds: a note for the detail, and
    the server's flags (None when it answered kXR_error)."""
    head = await _read(reader, HEADER.size, "kXR_protocol ")
    stream_id, status, dlen = HEADER.unpack(head)
    if stream_id != STREAM_ID or status not in (KXR_OK, KXR_ERROR):
        raise NotXrootd(f"kXR_protocol answered by {_excerpt(head)}")
    if dlen > MAX_PROTOCOL_BODY:
        raise NotXrootd(f"its kXR_protocol answer claims {dlen} bytes (at most 4096)")
    minimum = 8 if status == KXR_OK else 4
    if dlen < minimum:
        raise NotXrootd(f"its kXR_protocol answer has {dlen} bytes (at least {minimum})")
    body = await _read(reader, dlen, "kXR_protocol ")
    if status == KXR_OK:
        _pval, flags = struct.unpack_from(">iI", body)
        return "", flags
    (code,) = struct.unpack_from(">i", body)
    message = body[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return f" (kXR_protocol refused: [{code}] {redact(message[:200])})", None


async def _read(reader: asyncio.StreamReader, size: int, answer: str) -> bytes:
    """Exactly `size` bytes of the `answer` being read ("" for the very first one)."""
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as short:
        if not short.partial and not answer:
            raise _Unanswered("connection closed") from None
        got = f"{len(short.partial)} bytes, {_excerpt(short.partial)}" if short.partial else "0"
        raise NotXrootd(f"its {answer or 'first '}answer ended early ({got})") from None


async def _describe(reader: asyncio.StreamReader, head: bytes) -> str:
    """What a wrong first answer looks like, from it and what follows (briefly, bounded)."""
    more = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(_EXCERPT_SECONDS):
            more = await reader.read(_EXCERPT_BYTES)
    seen = head + more
    if seen.startswith(b"HTTP/"):
        status_line = seen.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("ascii", "replace")
        return f"the first answer looks like HTTP ({' '.join(status_line.split()[:2])})"
    if seen[:1] in (b"\x15", b"\x16") and seen[1:2] == b"\x03":
        return "the first answer looks like TLS (a TLS-only port?)"
    return f"the first answer is {_excerpt(seen)}"


def _excerpt(data: bytes) -> str:
    """Printable text quoted (redacted), anything else as hex; at most 32 bytes either way."""
    data = data[:32]
    text = data.decode("ascii", "replace")
    return repr(redact(text)) if text.isprintable() else f"0x{data.hex()}"
