"""`lakeprobe run` with grid-native URLs: parsing, usage errors, and runs against the lake."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lakeprobe.cli import run
from lakeprobe.cli.targets import GridUrl, cli_params, cli_target, pair_jobs, parse_grid_url
from lakeprobe.config.pairs import NetworkKey
from lakeprobe.lake import LocalLake
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.registry import ENDPOINT_PROBE_TYPES, PAIR_PROBE_TYPES, PROBE_TYPES

LAKEPROBE = Path(sys.executable).with_name("lakeprobe")  # the installed console script


def lakeprobe(*args: str | Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEPROBE, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def target(*argv: str, probe: str = "webdav") -> Target:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    args = parser.parse_args([probe, *argv])
    return cli_target(args, PROBE_TYPES[probe], args.urls[0], "cli")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("root://host:1094//eos/test/dir", GridUrl("root://host:1094", "/eos/test/dir")),
        ("root://host:1094/eos/test/dir", GridUrl("root://host:1094", "/eos/test/dir")),
        ("xroot://host:1094//eos/x", GridUrl("root://host:1094", "/eos/x")),
        ("xroots://host//eos/x", GridUrl("roots://host", "/eos/x")),
        ("davs://host:443/dpm/test/dir/", GridUrl("davs://host:443", "/dpm/test/dir/")),
        ("https://[::1]:8443/dir", GridUrl("https://[::1]:8443", "/dir")),
        ("root://host:1094//", GridUrl("root://host:1094", None)),
        ("davs://host/", GridUrl("davs://host", None)),
        ("davs://host", GridUrl("davs://host", None)),
    ],
)
def test_grid_urls_split_into_endpoint_and_path(url: str, expected: GridUrl) -> None:
    """As gfal-ls, xrdfs and davix read them: XRootD's `//` starts an absolute path, xroot(s)
    are root(s), and a bare `/` is no path."""
    assert parse_grid_url(url) == expected


def test_url_path_is_the_test_dir_or_the_reference_file() -> None:
    """The path becomes test_dir (normalised as config does); in read-only mode the reference
    file. Without a path, --test-dir or its default applies."""
    webdav = target("https://[::1]:8443/dir/")
    assert (webdav.url, webdav.test_dir, webdav.endpoint) == (
        "https://[::1]:8443",
        "/dir",
        "ipv6___1",
    )
    assert target("root://h:1094//eos/x", probe="xrootd").test_dir == "/eos/x"
    assert target("davs://h", "--test-dir", "/t").test_dir == "/t"
    assert target("davs://h").test_dir == "/lakeprobe"
    assert target("davs://h/t", "--test-dir", "/t/").test_dir == "/t"  # the same path agrees
    read_only = target("davs://h/ref/file", "--read-only")
    assert (read_only.read_only, read_only.reference_file) == (True, "/ref/file")


def test_checksums_option_sets_the_policy() -> None:
    """--checksums sets the URL's checksum policy; without it, `optional` (the default)."""
    assert target("davs://h").checksums == "optional"
    assert target("davs://h", "--checksums", "none").checksums == "none"
    assert target("root://h//t", "--checksums", "required", probe="xrootd").checksums == "required"


def test_registries_split_by_target_kind() -> None:
    """Every probe type is in exactly one registry; only pair types have modes."""
    assert not ENDPOINT_PROBE_TYPES.keys() & PAIR_PROBE_TYPES.keys()
    assert set(PAIR_PROBE_TYPES) == {"http-tpc", "xrootd-tpc", "perfsonar", "iperf3"}
    assert set(PROBE_TYPES) == ENDPOINT_PROBE_TYPES.keys() | PAIR_PROBE_TYPES.keys()
    assert all(t.modes for t in PAIR_PROBE_TYPES.values())
    assert not any(t.modes for t in ENDPOINT_PROBE_TYPES.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http-tpc", "davs://127.0.0.1:1/a"], "probe 'http-tpc' takes two URLs, SOURCE and "
         "DESTINATION (got 1)"),
        (["xrootd-tpc"], "probe 'xrootd-tpc' takes two URLs, SOURCE and DESTINATION (got 0)"),
        (["xrootd-tpc", "root://a:1//x", "root://b:1//y", "root://c:1//z"], "(got 3)"),
        (["xrootd"], "no URL given"),
        (["xrootd", "root://127.0.0.1:1//eos/x", "--test-dir", "/other"],
         "root://127.0.0.1:1//eos/x: the URL's path '/eos/x' and --test-dir '/other' differ"),
        (["webdav", "davs://h/a", "--read-only", "--reference-file", "/b"],
         "davs://h/a: the URL's path '/a' and --reference-file '/b' differ"),
        (["webdav", "gsiftp://h/x"], "gsiftp://h/x: probe 'webdav' tests davs, http, https, "
         "not 'gsiftp'"),
        (["http-tpc", "davs://a:1/x", "root://b:1//y"], "root://b:1//y: probe 'http-tpc' tests"),
        (["xrootd", "root://h:1//a/../b"], "test_dir must not contain a '..' segment"),
        (["xrootd-tpc", "root://a:1//x", "root://b:1//y", "--param", "modes=pull,push"],
         "--param modes:"),
        (["webdav", "https://[::1/x"], "https://[::1/x: Invalid IPv6 URL"),
        (["perfsonar", "https://a", "https://b"], "probe 'perfsonar' needs a 'perfsonar:' "
         "block on its endpoints: run a configured probe with --config"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    """Wrong URL counts, path conflicts and unknown schemes exit 3 (UNKNOWN) with one line on
    stderr naming the problem, and no traceback (the installed console script)."""
    done = lakeprobe("run", *args, "--timeout", "2")
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("UNKNOWN: ")
    assert message in done.stderr
    assert done.stdout == ""


def test_network_pairs_from_urls_are_keyed_by_ip_version() -> None:
    """`lakeprobe run iperf3 SRC DST`: one job per IP version, keyed as the daemon keys
    network series (src/dst sites `src`, `dst`; ip_version the bare number)."""
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    args = parser.parse_args(["iperf3", "iperf3://127.0.0.1:5201", "iperf3://[::1]:5202"])
    iperf3 = PAIR_PROBE_TYPES["iperf3"]
    jobs = pair_jobs(args, iperf3, cli_params(iperf3.params_model, []))
    assert [job.key for job in jobs] == [
        NetworkKey("iperf3", "src", "dst", "4"),
        NetworkKey("iperf3", "src", "dst", "6"),
    ]
    assert jobs[1].target.destination.url == "iperf3://[::1]:5202"


def test_config_selects_by_probe_name_not_type(tmp_path: Path) -> None:
    """-c CFG NAME takes a configured probe name; a type name is a usage error that lists the
    probes of that type."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "sites:\n"
        "  - name: SITE-A\n"
        "    endpoints: [{name: xrd, url: 'root://127.0.0.1:1'}]\n"
        "probes:\n"
        "  - {name: eos-rw, type: xrootd}\n"
        "  - {name: eos-ro, type: xrootd}\n"
    )
    done = lakeprobe("run", "-c", config, "xrootd")
    assert done.returncode == 3
    assert done.stderr.strip() == (
        f"UNKNOWN: {config}: 'xrootd' is a probe type, not a probe name: select a probe by "
        "its configured name (eos-rw, eos-ro)"
    )
    done = lakeprobe("run", "-c", config, "nope")
    assert done.stderr.strip() == (
        f"UNKNOWN: {config}: no probe named 'nope' (configured: eos-rw, eos-ro)"
    )
    done = lakeprobe("run", "-c", config, "eos-ro", "--json", "--timeout", "2")
    assert done.returncode == 2  # nothing listens: one target, of eos-ro only
    assert '"probe": "eos-ro"' in done.stdout
    assert "eos-rw" not in done.stdout


@pytest.mark.lake
def test_grid_urls_against_the_lake(lake: LocalLake) -> None:
    """The four grid-URL forms of the issue all pass on a healthy two-site lake: storage
    probes on one URL, both TPC probes on a SOURCE DESTINATION pair (http-tpc in both
    modes: one run per mode)."""
    a, b = lake.sites
    ca = str(lake.pki.ca_dir)
    runs = [
        ["xrootd", f"{a.root_url}//lakeprobe"],
        ["webdav", f"{a.davs_url}/lakeprobe/", "--ca-dir", ca],
        ["http-tpc", f"{a.davs_url}/lakeprobe", f"{b.davs_url}/lakeprobe", "--ca-dir", ca,
         "--param", "modes=pull,push"],
        ["xrootd-tpc", f"{a.root_url}//lakeprobe", f"{b.root_url}//lakeprobe"],
    ]  # fmt: skip
    outputs = []
    for args in runs:
        done = lakeprobe("run", *args, "--timeout", "30")
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert "http-tpc src->dst (pull)" in outputs[2]
    assert "http-tpc src->dst (push)" in outputs[2]
    assert "xrootd-tpc src->dst (pull)" in outputs[3]
