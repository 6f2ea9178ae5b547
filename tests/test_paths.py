"""Path safety by construction (probes/core/paths.py): what validation accepts, every client sends
literally; what it rejects names the offending character or segment. Checked against the
parsers the other side uses: yarl (aiohttp, as in the test servers) for HTTP and XrdCl's own URL
parser for root://."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from path_strategies import RICH, dangerous_paths, plain_paths
from yarl import URL

from lakeprobe.config.model import EndpointConfig
from lakeprobe.probes.authz.cases import FIXTURE_DIRS, fixture_file, fixture_root
from lakeprobe.probes.clients.httpclient import endpoint_url
from lakeprobe.probes.clients.xrdasync import client_module
from lakeprobe.probes.core import paths
from lakeprobe.probes.core.paths import path_problem, storage_path
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import is_own_file, is_own_source, new_test_file, source_file

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)


@SETTINGS
@given(plain_paths())
def test_plain_paths_are_accepted_and_normalised(path: str) -> None:
    """Ordinary absolute paths pass, without their trailing slash, unchanged otherwise."""
    assert storage_path(path, "test_dir") == path.removesuffix("/")
    assert EndpointConfig(name="e", url="root://h:1094", test_dir=path).test_dir == path.rstrip("/")


@SETTINGS
@given(dangerous_paths())
def test_dangerous_forms_are_rejected(path: str) -> None:
    """A query, fragment, percent-encoding, backslash, path parameter, control, invisible or
    look-alike character, or a '.', '..' or empty segment anywhere: rejected, by the config
    too, with the field named."""
    with pytest.raises(ValueError, match=r"^test_dir must "):
        storage_path(path, "test_dir")
    with pytest.raises(ValueError, match="test_dir must"):
        EndpointConfig(name="e", url="root://h:1094", test_dir=path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/d?x", "test_dir must not contain '?' (clients read it as the start of a query, "
                 "XRootD as CGI), got '/d?x'"),
        ("/d/%2e%2e", "test_dir must not contain '%' (servers decode percent-encoding: "
                      "'%2e%2e' is '..'), got '/d/%2e%2e'"),
        ("/d/./x", "test_dir must not contain a '.' segment, got '/d/./x'"),
        ("/d\u2025", "test_dir must not contain '\u2025' (U+2025, normalised to '..'), "
                     "got '/d\u2025'"),
        ("/d\u202e", "test_dir must not contain invisible format character U+202E, "
                     "got '/d\\u202e'"),
        ("/", "test_dir must not be the root directory '/'"),
        ("d", "test_dir must be an absolute path (starting with '/'), got 'd'"),
    ],
)  # fmt: skip
def test_messages_name_the_offender(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="test_dir must") as caught:
        storage_path(value, "test_dir")
    assert str(caught.value) == message


@SETTINGS
@given(RICH)
def test_http_urls_carry_exactly_the_path(text: str) -> None:
    """For any string: endpoint_url refuses it (dot-segments and empty segments have no
    literal form) or builds a URL with no query and no fragment whose path, decoded as a
    server decodes it, is the string itself."""
    path = "/" + text
    try:
        url = endpoint_url("davs://[::1]:8443", path)
    except ValueError:
        segments = path[1:].split("/")
        if len(segments) > 1 and segments[-1] == "":
            segments.pop()  # a directory's trailing slash is fine
        assert any(s in ("", ".", "..") for s in segments) or "\ud800" in path
        return
    assert url.scheme == "https"
    assert url.host == "::1"
    assert url.port == 8443
    assert "?" not in str(url)
    assert "#" not in str(url)
    assert unquote(url.path) == path
    assert unquote(URL(str(url)).raw_path) == path  # a COPY header, parsed by the remote


@SETTINGS
@given(RICH)
def test_xrootd_urls_of_any_string(text: str) -> None:
    """url_for refuses every unsafe path; what it accepts, XrdCl's own URL parser reads back
    as exactly that path, without CGI."""
    path = "/" + text
    target = Target(site="S", endpoint="x", url="root://127.0.0.1:1094", test_dir="/t")
    if path_problem(path) is not None:
        with pytest.raises(ValueError, match="unsafe path"):
            target.url_for(path)
        return
    url = client_module().URL(target.url_for(path))
    assert url.is_valid()
    assert (url.path, url.path_with_params) == (path, path)


@SETTINGS
@given(plain_paths(), st.sampled_from(["probe.example.org", "lakeprobe-7f9c4-x2", "h ost/.."]))
def test_xrootd_probe_paths_stay_in_the_test_dir(raw: str, host: str) -> None:
    """For a valid test directory, every path the xrootd probes build (test file, TPC source
    file, token-authz fixtures) is inside it, passes url_for unchanged through XrdCl's parser,
    and only the test file and the own source file pass the delete guards."""
    test_dir = storage_path(raw, "test_dir")
    test_file = new_test_file(raw, host)
    source = source_file(raw, host, 1024)
    fixtures = [fixture_file(fixture_root(raw, host), where) for where in FIXTURE_DIRS]
    target = Target(site="S", endpoint="x", url="root://127.0.0.1:1094", test_dir=raw)
    for path in (test_file, source, *fixtures):
        assert path.startswith(test_dir + "/")
        assert posixpath.normpath(path) == path
        assert client_module().URL(target.url_for(path)).path_with_params == path
    assert is_own_file(test_file, raw)
    assert is_own_file(test_file, test_dir)
    assert is_own_source(source, raw, host, 1024)
    assert not is_own_file(source, raw)
    assert not is_own_source(source, raw, host, 2048)
    assert not any(is_own_file(path, raw) for path in fixtures)
    assert not is_own_file(posixpath.dirname(test_dir) + "/" + posixpath.basename(test_file), raw)


@SETTINGS
@given(dangerous_paths())
def test_nothing_is_owned_in_an_unsafe_test_dir(test_dir: str) -> None:
    """With a test directory that validation rejects (a Target built without the config),
    neither delete guard accepts anything in it, and url_for refuses its files."""
    target = Target(site="S", endpoint="x", url="root://127.0.0.1:1094", test_dir=test_dir)
    test_file = new_test_file(test_dir, "h")
    assert not is_own_file(test_file, test_dir)
    assert not is_own_source(source_file(test_dir, "h", 1), test_dir, "h", 1)
    if path_problem(test_file) is not None:
        with pytest.raises(ValueError, match="unsafe path"):
            target.url_for(test_file)


@SETTINGS
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_the_plain_ascii_shortcut_agrees_with_the_character_checks(text: str) -> None:
    """path_problem skips the per-character checks for paths of `_PLAIN` characters: for every
    printable ASCII path, each of its characters must then pass them."""
    path = "/" + text
    if paths._PLAIN.fullmatch(path):
        assert all(paths._character_problem(char, path) is None for char in path)
