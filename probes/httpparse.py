"""Parsing what HTTP storage answers: adler32 digests and WebDAV PROPFIND listings."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from xml.parsers import expat

from lakeprobe.probes.testfiles import normalize_adler32

_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")
DAV = "{DAV:}"
MAX_LISTING_BYTES = 16 * 1024 * 1024


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
        except binascii.Error:
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
    path: str  # decoded path of the href
    name: str  # its last segment
    is_collection: bool


def parse_multistatus(body: bytes) -> list[DavEntry]:
    """The entries of a PROPFIND 207 answer. Documents with a DOCTYPE (hence any entity
    declaration: billion laughs, external entities) are rejected before expansion; expat
    never fetches anything. Hrefs may be paths or absolute URLs."""
    if len(body) > MAX_LISTING_BYTES:
        raise MultistatusError(f"listing larger than {MAX_LISTING_BYTES} bytes")
    root = _parse_xml(body)
    if root.tag != f"{DAV}multistatus":
        raise MultistatusError(f"root element is {root.tag!r}, not DAV:multistatus")
    entries = []
    for response in root.iterfind(f"{DAV}response"):
        href = (response.findtext(f"{DAV}href") or "").strip()
        if not href:
            raise MultistatusError("a DAV:response has no DAV:href")
        path = unquote(urlsplit(href).path)
        collection = response.find(f"{DAV}propstat/{DAV}prop/{DAV}resourcetype/{DAV}collection")
        name = posixpath.basename(path.rstrip("/"))
        entries.append(DavEntry(path, name, collection is not None or path.endswith("/")))
    return entries


def file_names(entries: Iterable[DavEntry]) -> list[str]:
    """Names of the non-collection entries: the files of a Depth: 1 listing."""
    return [entry.name for entry in entries if not entry.is_collection and entry.name]


def _parse_xml(body: bytes) -> ET.Element:
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def forbid(*_: object) -> None:
        raise MultistatusError("DOCTYPE and entity declarations are not accepted")

    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.StartElementHandler = lambda tag, attrs: builder.start(_clark(tag), attrs)
    parser.EndElementHandler = lambda tag: builder.end(_clark(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        return builder.close()
    except expat.ExpatError as error:
        raise MultistatusError(f"malformed XML: {error}") from None


def _clark(tag: str) -> str:
    """expat's 'uri}local' as ElementTree's '{uri}local'."""
    return "{" + tag if "}" in tag else tag
