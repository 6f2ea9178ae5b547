"""The `lakeprobe` command: exit codes and output, against the real local lake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeprobe.lake import LocalLake

CONFIGS = Path(__file__).parent / "configs" / "invalid"
EXAMPLE = Path(__file__).parent.parent / "config" / "escape-lake.yaml"


def lakeprobe(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeprobe.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_check_config_accepts_the_example() -> None:
    """A valid config exits 0 and summarises what it schedules."""
    done = lakeprobe("check-config", EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert "OK: 6 sites, 12 endpoints, 8 probes, 61 targets" in done.stdout


def test_check_config_rejects_with_the_path() -> None:
    """An invalid config exits 2 and prints the message with the file and YAML path."""
    path = CONFIGS / "bad_scheme.yaml"
    done = lakeprobe("check-config", path)
    assert done.returncode == 2
    assert f"{path}: sites[0].endpoints[0].url: unsupported scheme 'ftp'" in done.stderr


def test_list_shows_probe_types_and_params() -> None:
    done = lakeprobe("list")
    assert done.returncode == 0
    assert "xrootd" in done.stdout
    assert "webdav" in done.stdout
    assert "file_size_bytes" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "gridftp", "gsiftp://h/"], "unknown probe type 'gridftp'"),
        (["run", "xrootd", "davs://127.0.0.1:1/"], "probe 'xrootd' tests root, roots"),
        (["run", "xrootd"], "no URL given"),
        (
            ["run", "xrootd", "root://127.0.0.1:1", "--param", "file_size_bytes=-5"],
            "--param file_size_bytes: Input should be greater than 0",
        ),
        (
            ["run", "xrootd", "root://127.0.0.1:1", "--test-dir", "rel"],
            "test_dir must be an absolute path",
        ),
        (  # a URL after the options is still the URL
            ["run", "xrootd", "--test-dir", "rel", "root://127.0.0.1:1"],
            "test_dir must be an absolute path",
        ),
        (["run", "xrootd", "root://127.0.0.1:1", "--bogus"], "unrecognized arguments: --bogus"),
        (
            ["run", "xrootd", "root://127.0.0.1:1", "--bearer-discovery"],
            "a token over root:// travels in cleartext: use roots:// (or https://), "
            "or pass --insecure-token-transport",
        ),
        (
            ["run", "xrootd", "root://127.0.0.1:1", "--timeout", "inf"],
            "--timeout: expected a duration like 30, '30s', '5m', got 'inf'",
        ),
    ],
)
def test_usage_errors_are_unknown(args: list[str], message: str) -> None:
    """Bad usage exits 3 (UNKNOWN), as Nagios plugins do, with a message naming the problem."""
    done = lakeprobe(*args)
    assert done.returncode == 3
    assert message in done.stderr


@pytest.mark.lake
def test_run_against_stopped_site_exits_critical_with_reason(lake: LocalLake) -> None:
    """`lakeprobe run xrootd` against a stopped site exits 2 and names the reason and a hint."""
    site = lake.sites[1]
    site.stop()
    done = lakeprobe("run", "xrootd", site.root_url, "--test-dir", lake.test_dir, "--timeout", "10")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CRITICAL (connect)" in done.stdout
    assert "hint: nothing answered on that port" in done.stdout
    assert "SKIPPED" in done.stdout


@pytest.mark.lake
def test_run_json_against_healthy_sites(lake: LocalLake) -> None:
    """Both probes pass on healthy sites; --json lists every step; exit code 0."""
    urls = [s.davs_url for s in lake.sites]
    done = lakeprobe(
        "run",
        "webdav",
        *urls,
        "--test-dir",
        lake.test_dir,
        "--ca-dir",
        lake.pki.ca_dir,
        "--json",
        "--param",
        "file_size_bytes=4096",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(done.stdout)
    assert [r["status"] for r in records] == ["OK", "OK"]
    assert {s["name"] for s in records[0]["steps"]} >= {"put", "get", "delete"}
    assert records[0]["measurements"]["write_bytes"] == 4096


@pytest.mark.lake
def test_run_from_config_selects_site(lake: LocalLake, tmp_path: Path) -> None:
    """-c with --site runs exactly the matching targets of the config."""
    config = lake.write_config(tmp_path / "lake.yaml")
    done = lakeprobe("run", "-c", config, "xrootd", "--site", "SITE-A", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(done.stdout)
    assert [(r["site"], r["probe"]) for r in records] == [("SITE-A", "xrootd")]


def test_a_run_ends_with_its_code_and_its_whole_report() -> None:
    """The console script ends a `run` with os._exit (no interpreter teardown): the exit
    code is still the run's Nagios code, the report and the logs are out in full first."""
    done = lakeprobe(
        "--log-level", "debug", "run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5", "--json"
    )
    assert done.returncode == 2  # CRITICAL: nothing listens on the discard port
    (record,) = json.loads(done.stdout)
    assert (record["status"], record["reason"]) == ("CRITICAL", "connect")
    assert "DEBUG lakeprobe.run: OPTIONS /t/ failed" in done.stderr  # its log, flushed


def test_other_commands_exit_normally_with_their_code(tmp_path: Path) -> None:
    """Only `run` skips the teardown; check-config's invalid config is exit 2 as before."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {colour: red}\n")
    done = lakeprobe("check-config", bad)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"{bad}: server.colour: unknown key"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        # The run's verdict stands (CRITICAL: nothing listens on the discard port).
        (("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5", "--json"), 2),
        (("list",), 1),
    ],
)
def test_a_reader_that_leaves_is_no_traceback(args: tuple[str, ...], code: int) -> None:
    """`lakeprobe ... | head -1`: stdout's reader has gone before the output is written. No
    traceback and no 'Exception ignored' at exit; a run keeps its Nagios code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to write_end now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lakeprobe.cli.main", *args],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (code, "")


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "webdav", "davs://h:1/d", "--param", "file_size_bytes=4", "--json"],
        ["run", "xrootd-tpc", "root://a//d", "root://b//d", "--timeout", "30s"],
        ["serve", "-c", "x.yaml", "--site", "S"],
        ["list", "-c", "x.yaml"],
        ["check-config", "x.yaml"],
        ["demo", "--sites", "3", "--monitoring"],
        ["lake", "--config-out", "c.yaml"],
    ],
)
def test_one_command_parser_reads_as_the_whole_one(argv: list[str]) -> None:
    """The parser built for the command alone (what a command line gets) reads its arguments
    exactly as the parser of every command does."""
    from lakeprobe.cli import main as cli

    assert cli._parser(argv[0]).parse_args(argv) == cli._parser().parse_args(argv)
