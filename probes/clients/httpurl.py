"""The URL of one HTTP request as HttpClient sends it: percent-encoded, no fragment, no
userinfo. Built from an endpoint and a literal path, or from a redirect's Location resolved
against the request's URL (RFC 3986 5.2, urllib's urljoin).

Small on purpose: yarl (with multidict, idna and propcache) cost ~7 ms of a ~105 ms
`lakeprobe run webdav` process (benchmarks/RESULTS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin, urlsplit

# Characters a path keeps as they are (RFC 3986 pchar); everything else is percent-encoded,
# `;` too: servlet containers read it as the start of path parameters.
PATH_SAFE = "/:@!$&'()*+,=~"
# A Location is already encoded: its escapes stay, anything a server left raw is encoded.
_LOCATION_PATH_SAFE = PATH_SAFE + "%;"
_LOCATION_QUERY_SAFE = _LOCATION_PATH_SAFE + "?/"


@dataclass(frozen=True, slots=True)
class HttpUrl:
    """An absolute URL, encoded as it is sent."""

    scheme: str  # lower case; any scheme, so that a redirect to another one can be refused
    authority: str  # host[:port] as written ([...] around an IPv6 address), no userinfo
    host: str  # lower case, no brackets; "" when there is none
    port: int | None  # as written; None when the scheme's default applies
    path: str  # percent-encoded
    query: str = ""  # percent-encoded, without the '?'

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.authority}{self.path or '/'}{query}"

    def display(self) -> str:
        """scheme://host:port/path, the path decoded: no query (it may carry credentials)."""
        return f"{self.scheme}://{self.authority}{unquote(self.path)}"

    def with_literal_path(self, path: str) -> HttpUrl:
        """This URL's origin with `path` percent-encoded as a path, nothing in it read as a
        query, a fragment or an escape."""
        return HttpUrl(self.scheme, self.authority, self.host, self.port, quote(path, PATH_SAFE))

    def join(self, reference: str) -> HttpUrl:
        """A Location resolved against this URL. ValueError when it is no URL: a bad port, an
        unclosed IPv6 bracket."""
        return parse_url(urljoin(str(self), reference.strip()))


def parse_url(text: str) -> HttpUrl:
    """An absolute URL; ValueError when it is malformed."""
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        raise ValueError("not an absolute URL")
    port = parts.port  # ValueError when out of range or not a number
    authority = parts.netloc.rpartition("@")[2]  # credentials in a Location are never sent
    return HttpUrl(
        scheme=parts.scheme.lower(),
        authority=authority,
        host=parts.hostname or "",
        port=port,
        path=quote(parts.path, _LOCATION_PATH_SAFE),
        query=quote(parts.query, _LOCATION_QUERY_SAFE),
    )
