"""Hostile config files: whatever a file holds, loading it ends fast with ConfigError (one line
per problem, naming the YAML path or the position), never another exception or a hang."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lakeprobe.config import ConfigError, load_config, parse_config
from lakeprobe.config.plan import build_plan
from lakeprobe.config.reader import MAX_BYTES, MAX_DEPTH, MAX_VALUES

VALID = """
sites:
  - name: CERN
    endpoints:
      - {name: eos, url: "roots://eos.example.org:1094"}
probes:
  - {name: xrootd, type: xrootd%s}
"""


def _messages(tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert time.monotonic() - started < 1.0
    assert all("\n" not in message for message in caught.value.messages)
    return caught.value.messages


def _laughs(levels: int) -> bytes:
    """A billion-laughs file: 10**levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "a binary file (NUL byte at offset 8), not YAML text",
        ),
        ("sites: café\n".encode("latin-1"), "not UTF-8 text: invalid byte 0xe9 at offset 10"),
        (b"a: " + b"[" * 100_000, f"line 1, column {MAX_DEPTH + 3}: nested deeper than 64 levels"),
        (
            _laughs(9),
            "line 6, column 45: the document has more than 1000000 values "
            "(alias *a4 expands past that)",
        ),
        (b"a: &a [*a]", "line 1, column 8: alias *a refers to a node that contains it (a cycle)"),
        (
            (VALID % ", interval: 9999999999h").encode(),
            "probes[0].interval: a duration must be at most 365 days (31536000 s), "
            "got 35999999996400 s",
        ),
        (
            (VALID % ", interval: .inf").encode(),
            "probes[0].interval: a duration must be at most 365 days (31536000 s), got infinity",
        ),
        (
            (VALID % ", timeout: .nan").encode(),
            "probes[0].timeout: expected a duration like 30, '30s', '5m', got nan",
        ),
        (
            (VALID % ", interval: -1").encode(),
            "probes[0].interval: a duration must be greater than zero",
        ),
        (
            (VALID % (", interval: " + "9" * 400)).encode(),
            "probes[0].interval: a duration must be at most 365 days (31536000 s), "
            "got a number beyond float range",
        ),
        (
            (VALID % (", params: {file_size_bytes: " + "1" * 5000 + "}")).encode(),
            "line 7, column 60: invalid YAML: an integer of more than 4300 digits",
        ),
        (
            (VALID % ", params: {slow_step_seconds: .inf}").encode(),
            "probes[0].params.slow_step_seconds: Input should be a finite number",
        ),
        (
            (VALID % ", params: {file_size_bytes: .nan}").encode(),
            "probes[0].params.file_size_bytes: Input should be a finite number",
        ),
    ],
    ids=[
        "binary",
        "latin-1",
        "deep",
        "billion-laughs",
        "cycle",
        "9999999999h",
        "inf",
        "nan",
        "negative",
        "400-digit-int",
        "5000-digit-int",
        "param-inf",
        "param-int-nan",
    ],
)
def test_hostile_file_is_one_config_error(tmp_path: Path, data: bytes, message: str) -> None:
    """Each file fails within a second with exactly the message naming what is wrong."""
    assert _messages(tmp_path, data) == [message]


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    """A file over the limit is refused after reading just past the limit."""
    data = b"# " + b"x" * MAX_BYTES + b"\n"
    assert _messages(tmp_path, data) == ["larger than the 8 MiB a config file may have"]


def test_too_many_values_without_aliases(tmp_path: Path) -> None:
    """The value budget holds without aliases too (a flat list of a million numbers): the
    mapping, its key and the list are 3 values, so the 999998th number is one too many."""
    data = b"a: [" + b"1," * MAX_VALUES + b"1]"
    column = len("a: [") + 2 * (MAX_VALUES - 3) + 1
    assert _messages(tmp_path, data) == [
        f"line 1, column {column}: the document has more than 1000000 values"
    ]


def test_directory_is_a_config_error(tmp_path: Path) -> None:
    """A path that is not a readable file is reported, not raised as OSError."""
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        load_config(tmp_path)


def test_ordinary_anchors_and_aliases_still_work() -> None:
    """Anchors, aliases and merge keys for shared settings load as before."""
    config = parse_config("""
sites:
  - name: A
    endpoints:
      - &ep {name: x, url: "roots://a:1094", auth: &token {token_file: /run/token}}
      - {<<: *ep, name: y, url: "davs://a:443"}
  - name: B
    endpoints:
      - {name: x, url: "davs://b:443", auth: *token}
probes:
  - {name: xr, type: xrootd}
  - {name: dav, type: webdav}
""")
    assert [e.name for e in config.sites[0].endpoints] == ["x", "y"]
    assert config.sites[0].endpoints[1].auth == config.sites[1].endpoints[0].auth
    assert len(build_plan(config)) == 3


def test_alias_within_budget_loads() -> None:
    """An alias reused often, expanding to many values within the budget, is not refused."""
    names = ", ".join(["CERN"] * 1000)
    probes = "".join(
        f"  - {{name: p{i}, type: xrootd, targets: {{sites: *names}}}}\n" for i in range(100)
    )
    config = parse_config(VALID % f", targets: {{sites: &names [{names}]}}" + probes)
    assert len(config.probes) == 101


def _sites(count: int, per_site: int, scheme: str = "roots") -> str:
    return "sites:\n" + "".join(
        f"  - name: S{i}\n    endpoints:\n"
        + "".join(
            f'      - {{name: e{j}, url: "{scheme}://h{i}-{j}:1"}}\n' for j in range(per_site)
        )
        for i in range(count)
    )


def _probes(count: int, kind: str = "xrootd") -> str:
    return "probes:\n" + "".join(f"  - {{name: p{i}, type: {kind}}}\n" for i in range(count))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _sites(1, 101) + _probes(1),
            "sites[0].endpoints: List should have at most 100 items after validation, not 101",
        ),
        (
            _sites(101, 100) + _probes(1),
            "sites: 10100 endpoints, more than the 10000 a config may have",
        ),
        (
            _sites(100, 100) + _probes(11),
            "probes: 11 probes and 10000 endpoints make more than the 100000 (probe, endpoint) "
            "combinations a config may have",
        ),
        (
            _sites(301, 1, "davs") + _probes(1, "http-tpc"),
            "probes[0].targets: selects 301 sites, more than the 300 a pair probe may pair up: "
            "narrow it with targets.sites",
        ),
        (
            _sites(100, 1, "davs") + _probes(13, "http-tpc"),
            "probes: 257400 targets, more than the 250000 a config may schedule",
        ),
    ],
    ids=["site-endpoints", "endpoints", "combinations", "pair-sites", "targets"],
)
def test_config_asking_too_much_work_is_refused(text: str, message: str) -> None:
    """Validating and planning stay fast: a config asking for a huge plan is an error."""
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.messages == [message]
    assert time.monotonic() - started < 2.0
