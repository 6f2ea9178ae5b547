"""Parsing what HTTP storage answers: numbers, adler32 digests, WebDAV PROPFIND listings.

Everything here reads data a server chose: malformed input is a DigestError or a
MultistatusError (a protocol error of the endpoint), never another exception."""

from __future__ import annotations

import base64
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from xml.parsers import expat

from lakeprobe.probes.core.testfiles import normalize_adler32

_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")
_DECIMAL = re.compile(r"[0-9]{1,20}")  # ASCII: isdigit() is true for '²' too
MAX_LISTING_BYTES = 16 * 1024 * 1024
MAX_LISTING_ENTRIES = 100_000
MAX_HREF = 16 * 1024  # characters: a path of 4096 bytes, percent-encoded, fits
# Element paths from the root, as expat names them with namespace_separator="}".
_DAV = "DAV:}"
_MULTISTATUS = (f"{_DAV}multistatus",)
_RESPONSE = (*_MULTISTATUS, f"{_DAV}response")
_HREF = (*_RESPONSE, f"{_DAV}href")
_COLLECTION = (*_RESPONSE, *(_DAV + n for n in ("propstat", "prop", "resourcetype", "collection")))
_INTERESTING_DEPTH = len(_COLLECTION)  # deeper elements are only counted


def parse_decimal(text: str) -> int | None:
    """A count or size a server sent: 1-20 ASCII digits (any 64-bit value), surrounding
    whitespace allowed. None for anything else: signs, other digits, 5000 digits (int()
    refuses more than 4300)."""
    text = text.strip()
    return int(text) if _DECIMAL.fullmatch(text) else None


class DigestError(ValueError):
    """The server sent an adler32 digest, but not a well-formed one."""


class MultistatusError(ValueError):
    """A PROPFIND answer that is not a safe, well-formed DAV:multistatus document."""


def adler32_from_digest(values: Iterable[str]) -> str | None:
    """RFC 3230 `Digest: adler32=<hex>` (the form XRootD, dCache and EOS send). Several
    header lines and comma-separated instances are allowed; algorithm names are
    case-insensitive. None when no adler32 instance is present."""
    for item in _members(values):
        algorithm, _, encoded = item.partition("=")
        if algorithm.strip().lower() != "adler32":
            continue
        encoded = encoded.strip()
        if not _HEX.fullmatch(encoded):
            raise DigestError(f"malformed adler32 in Digest: {encoded[:40]!r}")
        return normalize_adler32(encoded)
    return None


def adler32_from_content_digest(values: Iterable[str]) -> str | None:
    """RFC 9530 `Content-Digest: adler=:<base64 of 4 bytes>:` (a structured-field dictionary;
    member parameters after `;` are ignored). None when no `adler` member is present."""
    for item in _members(values):
        key, _, rest = item.partition("=")
        if key.strip().lower() != "adler":
            continue
        value = rest.split(";", 1)[0].strip()
        if len(value) < 2 or value[0] != ":" or value[-1] != ":":
            raise DigestError(f"adler in Content-Digest is not a byte sequence: {value[:40]!r}")
        try:
            raw = base64.b64decode(value[1:-1], validate=True)
        except ValueError:  # binascii.Error, or non-ASCII characters
            raise DigestError(f"adler in Content-Digest is not base64: {value[:40]!r}") from None
        if len(raw) != 4:
            raise DigestError(f"adler in Content-Digest has {len(raw)} bytes, not 4")
        return raw.hex()
    return None


def response_adler32(content_digest: Iterable[str], digest: Iterable[str]) -> str | None:
    """The adler32 a response reports: RFC 9530 Content-Digest first, then RFC 3230 Digest."""
    return adler32_from_content_digest(content_digest) or adler32_from_digest(digest)


def _members(values: Iterable[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@dataclass(frozen=True, slots=True)
class DavEntry:
    """One entry of a PROPFIND listing."""

    name: str  # last segment of the decoded href path
    is_collection: bool


class MultistatusParser:
    """A PROPFIND 207 answer (DAV:multistatus), parsed as it arrives: `feed(chunk)` each
    chunk, then `close()` for the entries. No tree is built; per entry only its name and
    whether it is a collection are kept, and a listing over `max_entries` entries or
    `max_bytes` bytes is an error.

    `feed` never raises: a sink sees the body before the caller knows the status code (a 403
    page is not a malformed listing). The first error is kept, the rest of the body ignored,
    and `close()` raises it as MultistatusError.

    Documents with a DOCTYPE (hence any entity declaration: billion laughs, external
    entities) are rejected before expansion; expat never fetches anything. Hrefs may be
    paths or absolute URLs."""

    def __init__(
        self, max_bytes: int = MAX_LISTING_BYTES, max_entries: int = MAX_LISTING_ENTRIES
    ) -> None:
        self._entries: list[DavEntry] = []
        self._max_bytes, self._max_entries = max_bytes, max_entries
        self._bytes = 0
        self._error: MultistatusError | None = None
        self._depth = 0
        self._stack: tuple[str, ...] = ()  # element path, cut at _INTERESTING_DEPTH
        self._href: list[str] | None = None  # text of the current DAV:href, while inside it
        self._href_length = 0
        self._entry_href: str | None = None  # first DAV:href of the current DAV:response
        self._collection = False
        self._expat = expat.ParserCreate(namespace_separator="}")
        self._expat.buffer_text = True
        self._expat.StartDoctypeDeclHandler = self._forbid
        self._expat.EntityDeclHandler = self._forbid
        self._expat.StartElementHandler = self._start
        self._expat.EndElementHandler = self._end
        self._expat.CharacterDataHandler = self._text

    def feed(self, chunk: bytes) -> None:
        if self._error is not None:
            return
        self._bytes += len(chunk)
        if self._bytes > self._max_bytes:
            self._error = MultistatusError(f"listing larger than {self._max_bytes} bytes")
            return
        self._parse(chunk, final=False)

    def close(self) -> list[DavEntry]:
        if self._error is None:
            self._parse(b"", final=True)
        if self._error is not None:
            raise self._error
        return self._entries

    def _parse(self, data: bytes, final: bool) -> None:
        try:
            self._expat.Parse(data, final)
        except MultistatusError as error:
            self._error = error
        # The XML declaration may name any Python codec: lookup and decode errors too.
        except (expat.ExpatError, LookupError, ValueError) as error:
            self._error = MultistatusError(f"malformed XML: {error}")
        if self._error is not None:
            self._entries = []  # nothing of a rejected listing is used: free it now

    @staticmethod
    def _forbid(*_: object) -> None:
        raise MultistatusError("DOCTYPE and entity declarations are not accepted")

    def _start(self, tag: str, _attrs: object) -> None:
        self._depth += 1
        if self._depth > _INTERESTING_DEPTH:
            return
        self._stack = (*self._stack, tag)
        if self._depth == 1 and tag != _MULTISTATUS[0]:
            raise MultistatusError(f"root element is {_clark(tag)[:100]!r}, not DAV:multistatus")
        if self._stack == _RESPONSE:
            self._entry_href, self._collection = None, False
        elif self._stack == _HREF and self._entry_href is None:
            self._href, self._href_length = [], 0
        elif self._stack == _COLLECTION:
            self._collection = True

    def _end(self, _tag: str) -> None:
        self._depth -= 1
        if self._depth >= _INTERESTING_DEPTH:
            return
        if self._stack == _HREF and self._href is not None:
            self._entry_href, self._href = "".join(self._href).strip(), None
        elif self._stack == _RESPONSE:
            self._add_entry()
        self._stack = self._stack[:-1]

    def _text(self, text: str) -> None:
        if self._href is None:
            return
        self._href_length += len(text)
        if self._href_length > MAX_HREF:
            raise MultistatusError(f"a DAV:href is longer than {MAX_HREF} characters")
        self._href.append(text)

    def _add_entry(self) -> None:
        if not self._entry_href:
            raise MultistatusError("a DAV:response has no DAV:href")
        if len(self._entries) >= self._max_entries:
            raise MultistatusError(f"listing has more than {self._max_entries} entries")
        path = _href_path(self._entry_href)
        name = posixpath.basename(path.rstrip("/"))
        self._entries.append(DavEntry(name, self._collection or path.endswith("/")))


def parse_multistatus(body: bytes) -> list[DavEntry]:
    """The entries of a whole PROPFIND 207 answer (see MultistatusParser)."""
    parser = MultistatusParser()
    parser.feed(body)
    return parser.close()


def file_names(entries: Iterable[DavEntry]) -> list[str]:
    """Names of the non-collection entries: the files of a Depth: 1 listing."""
    return [entry.name for entry in entries if not entry.is_collection and entry.name]


def _href_path(href: str) -> str:
    """The percent-decoded path of an href (a path or an absolute URL)."""
    try:
        path = unquote(urlsplit(href).path)
    except (ValueError, UnicodeError):  # e.g. 'http://[::1' (an unclosed IPv6 address)
        raise MultistatusError(f"malformed DAV:href {href[:100]!r}") from None
    if "\0" in path:
        raise MultistatusError(f"DAV:href {href[:100]!r} decodes to a NUL character")
    return path


def _clark(tag: str) -> str:
    """expat's 'uri}local' as ElementTree's '{uri}local'."""
    return "{" + tag if "}" in tag else tag
