"""`lakeprobe check-config` on arbitrary input: whatever the file holds (random bytes, random
YAML-ish text, YAML dumps of random data, mutations of the shipped example), it exits 0, or 2
with messages on stderr, never with a traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeprobe.cli import main as cli

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
EXAMPLE = (Path(__file__).parent.parent / "config" / "escape-lake.yaml").read_text()
# Characters that mean something to YAML, or to the schema's parsers.
YAMLISH = st.sampled_from([*"&*!|>'\"%@`{}[],:-?#\n \t.0123456789aefinsx~/<=\\", "é", "\x85"])
KEYS = st.sampled_from(
    ["sites", "probes", "name", "url", "endpoints", "type", "params", "interval", "timeout",
     "auth", "token_file", "targets", "defaults", "server", "redirect_hosts", "<<"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["root://h:1", "http://h:1", "davs://h:1", "9999999999h", "5m", "xrootd"])
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    """The example with a few slices replaced by YAML-ish text."""
    text = EXAMPLE
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + draw(st.text(YAMLISH, max_size=20)) + text[end:]
    return text


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


def check_config(path: Path, data: bytes) -> None:
    """Run `lakeprobe check-config` in-process on `data`: exit 0, or 2 with a message."""
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    # setup_logging would replace pytest's log handlers with one on the redirected stderr.
    with (
        mock.patch.object(cli, "setup_logging"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = cli.main(["check-config", str(path)])
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert f"{path}: OK:" in out.getvalue()
    else:
        assert err.getvalue().startswith(f"{path}: ")


@FUZZ
@given(data=st.binary(max_size=2000))
def test_check_config_on_random_bytes(config_path: Path, data: bytes) -> None:
    """Binary, Latin-1 and NUL bytes: exit 2 with a message naming the offset, or a valid
    (if unlikely) config."""
    check_config(config_path, data)


@FUZZ
@given(text=st.text(YAMLISH, max_size=300))
def test_check_config_on_yamlish_text(config_path: Path, text: str) -> None:
    """Text dense in YAML syntax (anchors, aliases, tags, flow collections): exit 0 or 2."""
    check_config(config_path, text.encode())


@FUZZ
@given(data=DATA)
def test_check_config_on_yaml_dumps(config_path: Path, data: object) -> None:
    """Well-formed YAML of random shape, keys from the schema, any numbers: exit 0 or 2."""
    check_config(config_path, yaml.safe_dump(data).encode())


@FUZZ
@given(text=mutated_example())
def test_check_config_on_mutated_example(config_path: Path, text: str) -> None:
    """The shipped example with a few slices replaced: exit 0 or 2, deep in validation."""
    check_config(config_path, text.encode())
