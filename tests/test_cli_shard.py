"""`lakeprobe serve --shard hostname/N`: a StatefulSet replica takes its shard from its pod
name's ordinal, so the chart passes one argument for every replica."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from lakeprobe.cli import main as cli
from lakeprobe.config.types import shard_of_host

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("value", "hostname", "shard"),
    [
        ("hostname/4", "lakeprobe-3", "3/4"),
        ("hostname/4", "lakeprobe-0", "0/4"),
        ("hostname/1", "lakeprobe-0", "0/1"),
        ("hostname/12", "lp-central-11.lp-central.monitoring.svc.cluster.local", "11/12"),
        ("hostname/3", "site-2-lakeprobe-2", "2/3"),
    ],
)
def test_shard_from_the_pod_ordinal(value: str, hostname: str, shard: str) -> None:
    """The trailing '-<digits>' of the host name's first label is the shard index."""
    assert shard_of_host(value, hostname) == shard


@pytest.mark.parametrize(
    ("value", "hostname", "message"),
    [
        (
            "hostname/4",
            "lakeprobe",
            "hostname/4: host name 'lakeprobe' ends in no ordinal '-<digits>' (a StatefulSet "
            "pod's, like 'lakeprobe-3'); give the shard as 'i/N'",
        ),
        (
            "hostname/4",
            "lakeprobe-3x",
            "hostname/4: host name 'lakeprobe-3x' ends in no ordinal '-<digits>' (a "
            "StatefulSet pod's, like 'lakeprobe-3'); give the shard as 'i/N'",
        ),
        (
            "hostname/3",
            "lakeprobe-3",
            "hostname/3: ordinal 3 of host 'lakeprobe-3' is not below 3: N must be the "
            "StatefulSet's replica count",
        ),
        ("hostname/0", "lakeprobe-0", "expected 'hostname/N' with N > 0, got 'hostname/0'"),
        ("hostname/", "lakeprobe-0", "expected 'hostname/N' with N > 0, got 'hostname/'"),
        ("hostname/x", "lakeprobe-0", "expected 'hostname/N' with N > 0, got 'hostname/x'"),
    ],
)
def test_shard_from_a_bad_hostname_or_count(value: str, hostname: str, message: str) -> None:
    """No ordinal, an ordinal not below N, or a bad N: one message saying which."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        shard_of_host(value, hostname)


def test_serve_parses_hostname_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --shard hostname/N` reaches the daemon as 'i/N' of this host's name."""
    monkeypatch.setattr(socket, "gethostname", lambda: "lakeprobe-2")
    args = cli._parser().parse_args(["serve", "-c", "x.yaml", "--shard", "hostname/5"])
    assert args.shard == "2/5"


def test_serve_without_ordinal_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a host whose name has no ordinal, `serve --shard hostname/N` exits 3 (usage) before
    loading the config, with the reason on one line of stderr."""
    monkeypatch.setattr(socket, "gethostname", lambda: "lakeprobe")
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "-c", str(ROOT / "config" / "local-lake.yaml"), "--shard",
                  "hostname/3"])  # fmt: skip
    assert exited.value.code == cli.EXIT_USAGE
    said = capsys.readouterr().err
    assert "argument --shard: hostname/3: host name " in said
    assert "ends in no ordinal '-<digits>'" in said
    assert "Traceback" not in said
