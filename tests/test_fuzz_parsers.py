"""Property tests of every parser that reads data a server, an issuer or a token file chose:
whatever the input, the result is a value or the parser's documented error (DigestError,
MultistatusError, CredentialError, IssuerError), never another exception, and the values
are sane. A stray exception would turn an endpoint's bad answer into UNKNOWN `internal`
(a lakeprobe bug, excluded from endpoint alerts) instead of a verdict."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar
from unittest import mock
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeprobe.probes.clients.httpclient import Reply
from lakeprobe.probes.clients.httpheaders import Headers
from lakeprobe.probes.clients.httpparse import (
    DigestError,
    MultistatusError,
    MultistatusParser,
    parse_decimal,
    response_adler32,
)
from lakeprobe.probes.clients.tpcmarkers import (
    MAX_LINE,
    MAX_STRIPES,
    MarkerParser,
    failure_reason,
    parse_verdict,
)
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.credentials import oidc
from lakeprobe.probes.credentials.jwtinfo import jwt_expiry
from lakeprobe.probes.credentials.oidc import IssuedToken
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.credentials.tokens import (
    CredentialError,
    DiscoveredToken,
    IssuerError,
    SecretFile,
    bearer_problem,
    control_problem,
)

FUZZ = settings(max_examples=250, deadline=None, derandomize=True)
LIMIT = 10**20  # parse_decimal: at most 20 ASCII digits
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
T = TypeVar("T")


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (taken modulo its length)."""
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def attempt(call: Callable[[], T], error: type[Exception]) -> T | Exception:
    """The result of `call`, or the `error` it raised (any other exception fails the test)."""
    try:
        return call()
    except error as caught:
        return caught


# Numbers as a hostile server may send them: other Unicode digits, signs, thousands of digits.
numbers = st.one_of(
    st.integers(0, 2**64).map(str),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.sampled_from(["²", "١٢٣", "٣" * 30, "-5", "+5", "1_000", "0x10", " 7 ", "", "1e3"]),
    st.text(max_size=12),
)
marker_content = st.one_of(
    numbers.map(lambda n: f"Stripe Index: {n}"),
    numbers.map(lambda n: f"Stripe Bytes Transferred: {n}"),
    numbers.map(lambda n: f"Timestamp: {n}"),
    st.text(max_size=40),
)
marker_lines = st.one_of(
    st.lists(marker_content, max_size=4).map(lambda lines: ["Perf Marker", *lines, "End"]),
    st.sampled_from(["Perf Marker", "End"]).map(lambda line: [line]),
    st.text(max_size=30).map(lambda t: [f"success: {t}"]),
    st.text(max_size=30).map(lambda t: [f"failure: {t}"]),
    marker_content.map(lambda line: [line]),
)
marker_bodies = st.one_of(
    st.binary(max_size=2000),
    st.lists(marker_lines, max_size=12).map(
        lambda blocks: "\n".join(line for block in blocks for line in block).encode(
            "utf-8", "replace"
        )
    ),
)


def run_markers(chunks: list[bytes]) -> tuple[object, ...]:
    parser = MarkerParser(started=0.0)
    for i, chunk in enumerate(chunks):
        parser.feed(chunk, now=float(i))
    verdict = parser.finish(now=float(len(chunks)))
    assert parser.garbage >= 0
    assert parser.markers >= 0
    assert len(parser.stripes) <= MAX_STRIPES
    assert all(0 <= k < LIMIT and 0 <= v < LIMIT for k, v in parser.stripes.items())
    assert parser.server_timestamp is None or 0 <= parser.server_timestamp < LIMIT
    return verdict, parser.stripes, parser.markers, parser.garbage


@FUZZ
@given(marker_bodies, st.lists(st.integers(0, 10**6), max_size=20))
def test_marker_parser_any_body_any_chunking(body: bytes, cuts: list[int]) -> None:
    """Any body, cut anywhere: feed and finish never raise; byte counts are 0..10^20-1 per
    stripe, at most MAX_STRIPES stripes; lines below MAX_LINE give the same result however
    the body is cut."""
    result = run_markers(chunked(body, cuts))
    if len(body) <= MAX_LINE:
        assert result == run_markers([body])


@FUZZ
@given(st.text(max_size=200), st.sampled_from(["pull", "push"]))
def test_verdict_and_failure_reason(line: str, mode: str) -> None:
    """parse_verdict and failure_reason take any text: a Verdict or None, and a Reason."""
    verdict = parse_verdict(line)
    assert verdict is None or verdict.text == verdict.text.strip()
    assert isinstance(failure_reason(line, mode), Reason)


@FUZZ
@given(st.text(max_size=30))
def test_parse_decimal(text: str) -> None:
    """Only 1-20 ASCII digits (whitespace around them allowed) give a number."""
    value = parse_decimal(text)
    stripped = text.strip()
    plain = stripped.isascii() and stripped.isdigit() and len(stripped) <= 20
    assert (value is not None) is plain
    assert value == (int(stripped) if plain else None)


@FUZZ
@given(st.one_of(st.text(max_size=30), numbers))
def test_content_length_never_raises(value: str) -> None:
    """Reply.content_length: a number of at most 20 ASCII digits, else None."""
    headers = Headers({"Content-Length": value})
    reply = Reply("HEAD", 200, "OK", headers, b"", 0, 0.0)
    assert reply.content_length == parse_decimal(value)


DAV_LISTING = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:l="DAV:">'
    b"<D:response><D:href>/lakeprobe/</D:href><D:propstat><D:prop><l:resourcetype>"
    b"<D:collection/></l:resourcetype></D:prop></D:propstat></D:response>"
    b"<D:response><D:href>/lakeprobe/a%20b</D:href><D:propstat><D:prop>"
    b"<l:getcontentlength>6</l:getcontentlength></D:prop></D:propstat></D:response>"
    b"<D:response><D:href>https://h:8443/lakeprobe/f2</D:href></D:response>"
    b"</D:multistatus>"
)
mutations = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace"]),
        st.integers(0, len(DAV_LISTING)),
        st.integers(0, 40),
        st.binary(min_size=1, max_size=20)
        | st.sampled_from([b"<", b">", b"/", b"&", b"%", b"[", b"\x00", b"<!DOCTYPE x>", b"]"]),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, int, bytes]]) -> bytes:
    for kind, at, length, insert in edits:
        if kind == "delete":
            data = data[:at] + data[at + length :]
        elif kind == "insert":
            data = data[:at] + insert + data[at:]
        else:
            data = data[:at] + insert + data[at + len(insert) :]
    return data


def listing_result(chunks: list[bytes]) -> list[tuple[str, bool]] | str:
    parser = MultistatusParser()
    for chunk in chunks:
        parser.feed(chunk)  # never raises, even after an error
    try:
        entries = parser.close()
    except MultistatusError:
        return "error"
    for entry in entries:
        assert "\0" not in entry.name
        assert "/" not in entry.name
    return [(entry.name, entry.is_collection) for entry in entries]


def check_listing(body: bytes, cuts: list[int]) -> None:
    """Whole or in chunks cut anywhere: the same entries, or MultistatusError both ways."""
    assert listing_result(chunked(body, cuts)) == listing_result([body])


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(0, 10**6), max_size=10))
def test_multistatus_any_bytes(body: bytes, cuts: list[int]) -> None:
    check_listing(body, cuts)


@FUZZ
@given(mutations, st.lists(st.integers(0, 10**6), max_size=10))
def test_multistatus_mutated_listing(
    edits: list[tuple[str, int, int, bytes]], cuts: list[int]
) -> None:
    check_listing(mutate(DAV_LISTING, edits), cuts)


hostile_hrefs = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["http://[::1", "https://[x]/a", "http://a\uff03b@c/x", "/a%00b", "/%ff%fe",
                     "/a%2Fb", "//", "http://", "/" + "a" * 20000, "\ud800"]),
)  # fmt: skip


@FUZZ
@given(st.lists(hostile_hrefs, min_size=1, max_size=5), st.lists(st.integers(0, 10**6)))
def test_multistatus_hostile_hrefs(hrefs: list[str], cuts: list[int]) -> None:
    """Well-formed documents with any href text: entries, or MultistatusError."""
    responses = "".join(f"<d:response><d:href>{escape(h)}</d:href></d:response>" for h in hrefs)
    text = f'<d:multistatus xmlns:d="DAV:">{responses}</d:multistatus>'
    check_listing(text.encode("utf-8", "surrogatepass"), cuts)


digest_values = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.text(max_size=12).map(lambda t: f"adler32={t}"),
        st.text(max_size=12).map(lambda t: f"adler=:{t}:"),
        st.binary(max_size=8).map(lambda b: f"adler=:{base64.b64encode(b).decode()}:"),
    ),
    max_size=3,
)


@FUZZ
@given(digest_values, digest_values)
def test_response_adler32(content_digest: list[str], digest: list[str]) -> None:
    """Any Digest/Content-Digest headers: 8 lower-case hex digits, None, or DigestError."""
    try:
        value = response_adler32(content_digest, digest)
    except DigestError:
        return
    assert value is None or re.fullmatch(r"[0-9a-f]{8}", value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
claims = st.one_of(json_values, st.dictionaries(st.just("exp"), json_values, min_size=1))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.binary(max_size=40).map(lambda b: f"h.{b64url(b)}.s"),
        claims.map(lambda c: f"h.{b64url(json.dumps(c).encode())}.s"),
    )
)
def test_jwt_expiry_never_raises(token: str) -> None:
    """Any token value: a finite number of seconds, or None."""
    expiry = jwt_expiry(Secret(token, scrub=False))
    assert expiry is None or math.isfinite(expiry)


@FUZZ
@given(st.text(max_size=40))
def test_token_checks(value: str) -> None:
    """A bearer token passes only as an RFC 6750 b64token; client credentials only need to be
    free of control characters. The answers never contain the value."""
    problem = bearer_problem(value)
    assert (problem is None) is bool(B64TOKEN.fullmatch(value))
    assert problem in (None, "contains control characters",
                       "has characters not allowed in a token (RFC 6750)")  # fmt: skip
    control = control_problem(value)
    assert control in (None, "contains control characters")
    assert (control is None) is (problem != "contains control characters")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("tok-0123456789\r\nX-Injected: 1", "contains control characters"),
        ("tok-0123456789\x7f", "contains control characters"),
        ("tok 0123456789", "has characters not allowed in a token (RFC 6750)"),
    ],
)
def test_bearer_token_variable(value: str, problem: str) -> None:
    """$BEARER_TOKEN is checked like a token file; the error names the variable, not the value.
    Surrounding whitespace is stripped first."""
    with pytest.raises(CredentialError) as caught:
        DiscoveredToken(environ={"BEARER_TOKEN": value}).load()
    assert str(caught.value) == f"BEARER_TOKEN {problem}"
    token = DiscoveredToken(environ={"BEARER_TOKEN": " tok-0123456789==\r\n"}).load()
    assert token.reveal() == "tok-0123456789=="


@FUZZ
@given(st.binary(max_size=60))
def test_secret_file_any_content(content: bytes) -> None:
    """Any token file content: a Secret (a stripped b64token), or CredentialError whose message
    is one of the fixed forms naming the file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "token"
        path.write_bytes(content)
        loaded = attempt(SecretFile(path, scrub=False).load, CredentialError)
    if isinstance(loaded, Exception):
        problems = ("is empty", "is not UTF-8 text", "contains control characters",
                    "has characters not allowed in a token (RFC 6750)")  # fmt: skip
        assert str(loaded) in [f"token file {path} {problem}" for problem in problems]
    else:
        assert B64TOKEN.fullmatch(loaded.reveal())


@FUZZ
@given(
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.sampled_from([b"[" * 5000, b'{"a":' * 5000, b"9" * 5000, b"1e999", b"NaN"]),
    st.integers(100, 599),
)
def test_issuer_answer(body: bytes, status: int) -> None:
    """Any issuer answer: a JSON object for 2xx, or IssuerError (naming the endpoint)."""
    document = attempt(lambda: oidc._answer("token endpoint", "https://i/t", status, body),
                       IssuerError)  # fmt: skip
    if isinstance(document, Exception):
        assert str(document).startswith("token endpoint https://i/t: HTTP ")
    else:
        assert isinstance(document, dict)
        assert status < 300


token_answers = st.dictionaries(
    st.sampled_from(["access_token", "token_type", "expires_in", "other"]),
    st.one_of(
        json_values,
        st.sampled_from(["tok-0123456789", "a\r\nb", "Bearer", "bearer", "MAC", " x "]),
        st.sampled_from([math.inf, -math.inf, math.nan, -1, 0, 10**400, 1e308, "3600", True]),
    ),
)


@FUZZ
@given(token_answers)
def test_issued_token(answer: dict[str, object]) -> None:
    """Any token answer: an IssuedToken (a b64token, a finite expiry or None), or IssuerError."""
    with mock.patch.object(oidc, "Secret", partial(Secret, scrub=False)):  # keep the scrubber clean
        token = attempt(lambda: oidc._issued(answer, "https://i/t", 1000.0), IssuerError)
    if isinstance(token, Exception):
        assert str(token).startswith("token endpoint https://i/t: ")
    else:
        assert isinstance(token, IssuedToken)
        assert B64TOKEN.fullmatch(token.secret.reveal())
        assert token.expires_at is None or math.isfinite(token.expires_at)


@FUZZ
@given(st.text(max_size=60) | st.sampled_from(["https://[::1", "https://h:99999/", "https://h/t"]))
def test_discovered_endpoint_check(url: str) -> None:
    """A token endpoint from a discovery document is checked without raising."""
    assert isinstance(oidc._https_url(url), bool)
