"""The HTTP client's own URL and header types (probes/clients/httpurl.py, httpheaders.py):
what yarl and multidict did for it, checked against them where they agree on the meaning."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from yarl import URL

from lakeprobe.probes.clients.httpclient import endpoint_url
from lakeprobe.probes.clients.httpheaders import Headers
from lakeprobe.probes.clients.httpurl import parse_url

BASE = "https://Storage.Example:8443/dir/sub/file"
LOCATIONS = [
    "../b/f", "/pool/f", "f2", "?x=1", "//other.example:1094/x", "http://h.example/a",
    "https://[::1]:8443/x y", "https://h.example/%7Euser/a%2Fb", "./a/./b/../c",
    "https://H.Example./dot", "ftp://h.example/file",
]  # fmt: skip


@pytest.mark.parametrize("location", LOCATIONS)
def test_join_agrees_with_yarl(location: str) -> None:
    """Scheme, host, port, decoded path and query of a resolved Location are yarl's."""
    ours, theirs = parse_url(BASE).join(location), URL(BASE).join(URL(location))
    assert ours.scheme == theirs.scheme
    assert ours.host == (theirs.raw_host or "").lower()
    assert (ours.port or theirs.port) == theirs.port  # yarl gives the scheme's default
    assert URL(ours.path, encoded=True).path == theirs.path
    assert URL(str(ours)).query == theirs.query


def test_url_text() -> None:
    url = endpoint_url("davs://[::1]:8443", "/a b/%41;c")
    assert str(url) == "https://[::1]:8443/a%20b/%2541%3Bc"
    assert (url.host, url.port) == ("::1", 8443)
    assert url.display() == "https://[::1]:8443/a b/%41;c"
    joined = url.join("https://user:secret@[::1]:8443/x?authz=token")
    assert str(joined) == "https://[::1]:8443/x?authz=token"
    assert joined.display() == "https://[::1]:8443/x"  # no query: it may carry credentials


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("https://h:99999/", "out of range"),
        ("https://[::1/x", "IPv6"),
        ("https://h:p/", "(?i)port"),
    ],
)
def test_malformed_locations(location: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_url(BASE).join(location)


def test_headers_like_multidict() -> None:
    fields = [("Digest", "adler32=1"), ("content-length", "5"), ("DIGEST", "md5=x")]
    ours, theirs = Headers(fields), CIMultiDict(fields)
    for name in ("digest", "Content-Length", "missing"):
        assert ours.get(name) == theirs.get(name)
        assert ours.getall(name, []) == theirs.getall(name, [])
        assert (name in ours) == (name in theirs)
    assert list(ours) == ["Digest", "content-length"]
    assert len(ours) == 2
    not_a_name: object = 5
    assert not_a_name not in ours
    with pytest.raises(KeyError):
        ours.getall("missing")
    with pytest.raises(KeyError):
        ours["missing"]
    assert Headers({"A": "1"}) == {"A": "1"}
