"""`lakeprobe run URL` makes plain URLs' targets without the config models
(lakeprobe/cli/plaintarget.py). Whatever that path accepts must be exactly the Target the
validating path (EndpointConfig, as a configured endpoint) makes; whatever it declines goes
there, errors included."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lakeprobe.cli import run
from lakeprobe.cli.plaintarget import plain_target
from lakeprobe.cli.targets import UsageError, endpoint_fields, validated_target
from lakeprobe.probes.core.checksums import POLICIES
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.registry import PROBE_TYPES

_PLAIN_HOST = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,70}", fullmatch=True)
_HOSTS = st.one_of(
    _PLAIN_HOST,
    _PLAIN_HOST,
    st.sampled_from(["127.0.0.1", "[::1]", "eos.cern.ch", "XRootD.Example.ORG", "host.",
                     "[::ffff:127.0.0.1]", "a..b", "-x", "h_1", "*.desy.de", "user@host",
                     "[zz::1]", "[::1", "héte", "h%41", "h:", "h:x", "[::1]x", "0"]),
    st.text(alphabet="az09.-_:[]@%*? /é", min_size=1, max_size=12),
)  # fmt: skip
_PORTS = st.one_of(
    st.just(""),
    st.integers(0, 99999).map(lambda port: f":{port}"),
    st.sampled_from([":00080", ":", ":x", ":1.5", ": 1"]),
)
_PATHS = st.one_of(
    st.sampled_from(["", "/", "/lakeprobe", "/eos/test/dir/", "//eos/x", "/a b", "/a?b",
                     "/a#b", "/x/../y", "/é", "/a//b", "?q=1", "#f"]),
    st.text(alphabet="ab/.?#% é", max_size=10).map(lambda path: "/" + path),
)  # fmt: skip
_OPTIONAL_PATH = st.one_of(st.none(), _PATHS.filter(bool))


def _args(probe: str, url: str, extra: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    return parser.parse_args([probe, url, *extra])


def _both(probe: str, args: argparse.Namespace) -> tuple[Target | None, Target | str]:
    """(the plain path's Target or None, the validating path's Target or its error)."""
    probe_type = PROBE_TYPES[probe]
    url = args.urls[0]
    try:
        fields = endpoint_fields(args, probe_type, url)
    except UsageError as error:
        return None, str(error)
    try:
        validated: Target | str = validated_target(url, "cli", fields, args.ca_dir)
    except UsageError as error:
        validated = str(error)
    return plain_target("cli", fields), validated


@settings(max_examples=600, deadline=None)
@given(
    probe=st.sampled_from(["webdav", "xrootd", "fixity"]),
    scheme=st.sampled_from(["root", "roots", "xroot", "davs", "https", "http", "ftp", "DAVS"]),
    host=_HOSTS,
    port=_PORTS,
    path=_PATHS,
    read_only=st.booleans(),
    test_dir=_OPTIONAL_PATH,
    reference=_OPTIONAL_PATH,
    checksums=st.sampled_from([None, *POLICIES]),
    ca_dir=st.sampled_from([None, "/etc/grid-security/certificates"]),
    insecure=st.booleans(),
)
def test_the_plain_path_makes_the_validated_target_or_declines(
    probe: str,
    scheme: str,
    host: str,
    port: str,
    path: str,
    read_only: bool,
    test_dir: str | None,
    reference: str | None,
    checksums: str | None,
    ca_dir: str | None,
    insecure: bool,
) -> None:
    extra = ["--read-only"] if read_only else []
    for option, value in (("--test-dir", test_dir), ("--reference-file", reference),
                          ("--checksums", checksums), ("--ca-dir", ca_dir)):  # fmt: skip
        if value is not None:
            extra.append(f"{option}={value}")
    if insecure:
        extra.append("--insecure-token-transport")
    plain, validated = _both(probe, _args(probe, f"{scheme}://{host}{port}{path}", extra))
    event("plain path" if plain is not None else "validating path")
    if plain is not None:
        assert plain == validated


@pytest.mark.parametrize(
    ("probe", "url", "extra"),
    [
        ("webdav", "davs://eos.cern.ch:443/eos/test/dir/", []),
        ("webdav", "https://[::1]:8443/dir", ["--checksums", "required"]),
        ("webdav", "http://127.0.0.1:9/t", ["--ca-dir", "/tmp"]),
        ("xrootd", "root://127.0.0.1:1094//lakeprobe", []),
        ("xrootd", "xroot://Host.Example.org", ["--test-dir", "/t/"]),
        ("xrootd", "root://h//ref/file", ["--read-only"]),
    ],
)
def test_plain_urls_take_the_plain_path(probe: str, url: str, extra: list[str]) -> None:
    """The URLs operators type do not need pydantic, and give the validated Target."""
    plain, validated = _both(probe, _args(probe, url, extra))
    assert plain is not None
    assert plain == validated


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("davs://h:99999/t", []),  # the validating path words the port error
        ("davs://user@h/t", []),
        ("davs://h/t?x=1", []),
        ("davs://h/t", ["--token-file", "/t"]),  # tokens: the configured path's sources
        ("davs://h/a b", []),
        ("davs://h", ["--read-only"]),  # read-only without a reference file
    ],
)
def test_other_urls_are_left_to_the_validating_path(url: str, extra: list[str]) -> None:
    args = _args("webdav", url, extra)
    fields = endpoint_fields(args, PROBE_TYPES["webdav"], url)
    assert plain_target("cli", fields) is None


def test_a_token_run_still_gets_its_token_source(tmp_path: Path) -> None:
    """cli_target sends a token run through the validating path: the Target has its token."""
    from lakeprobe.cli.targets import cli_target

    token = tmp_path / "token"
    token.write_text("x")
    args = _args("webdav", "davs://h/t", ["--token-file", str(token)])
    made = cli_target(args, PROBE_TYPES["webdav"], args.urls[0], "cli")
    assert made.token is not None
