"""Network endpoints in the config and the network jobs of a plan: the `perfsonar:` block of
an archive endpoint (lakeprobe/config/network.py), iperf3:// servers, and per (site pair, IP
version) jobs keyed by NetworkKey, owned by the source site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lakeprobe.config import ConfigError, parse_config
from lakeprobe.config.pairs import NetworkKey
from lakeprobe.config.plan import ProbeJob, Scope, build_plan
from lakeprobe.probes.core.archivetarget import PerfsonarArchive
from lakeprobe.probes.core.context import NETWORK
from lakeprobe.probes.registry import PAIR_PROBE_TYPES

SITES = ("A", "B", "C")
AT = "sites[0].endpoints[1].perfsonar"


def archive(**block: Any) -> dict[str, Any]:
    return {"name": "ps", "url": "https://ps-archive.a.example", "perfsonar": block}


def config(
    probe_type: str, first: list[dict[str, Any]] | None = None, **probe: Any
) -> dict[str, Any]:
    """Three sites, each with a storage endpoint, a perfSONAR archive and an iperf3 server;
    `first` replaces site A's endpoints."""
    sites = [
        {
            "name": name,
            "endpoints": [
                {"name": "dav", "url": f"davs://dav.{name.lower()}.example"},
                {
                    "name": "ps",
                    "url": f"https://ps-archive.{name.lower()}.example",
                    "perfsonar": {"bandwidth_hosts": [f"ps-bw.{name.lower()}.example"]},
                },
                {"name": "iperf", "url": f"iperf3://iperf.{name.lower()}.example"},
            ],
        }
        for name in SITES
    ]
    if first is not None:
        sites[0]["endpoints"] = first
    return {"sites": sites, "probes": [{"name": "net", "type": probe_type, **probe}]}


def network_keys(jobs: list[ProbeJob[Any]]) -> list[NetworkKey]:
    """The jobs' keys, each a NetworkKey."""
    keys = [job.key for job in jobs if isinstance(job.key, NetworkKey)]
    assert len(keys) == len(jobs)
    return keys


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(yaml.safe_dump(data))
    return error.value.messages


def test_network_types_are_registered_as_the_network_family() -> None:
    """Both types are pair types of the network family, whose modes are the IP versions."""
    for name in ("perfsonar", "iperf3"):
        probe_type = PAIR_PROBE_TYPES[name]
        assert probe_type.family == NETWORK
        assert probe_type.modes == ("ipv4", "ipv6")
    assert PAIR_PROBE_TYPES["perfsonar"].needs == "perfsonar"


def test_a_perfsonar_block_becomes_the_targets_archive() -> None:
    """Host names are lowercased and IP addresses normalised; Basic credentials name the
    password's file, never the password; the probe runs against archive endpoints only."""
    block = {
        "bandwidth_hosts": ["PS-BW.A.example", "2001:DB8::1"],
        "latency_hosts": ["192.0.2.7"],
        "api": "esmond",
        "basic_auth": {"username": "reader", "password_file": "/etc/lakeprobe/ps.pw"},
    }
    data = config("perfsonar", [{"name": "dav", "url": "davs://dav.a"}, archive(**block)])
    jobs = build_plan(parse_config(yaml.safe_dump(data)))
    source = next(job.target.source for job in jobs if job.target.source.site == "A")
    assert source.endpoint == "ps"
    assert source.perfsonar == PerfsonarArchive(
        bandwidth_hosts=("ps-bw.a.example", "2001:db8::1"),
        latency_hosts=("192.0.2.7",),
        api="esmond",
        username="reader",
        password_file=Path("/etc/lakeprobe/ps.pw"),
    )
    assert {t.endpoint for job in jobs for t in job.target.endpoints} == {"ps"}


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (archive(), f"{AT}: give the site's nodes: bandwidth_hosts, "
         "latency_hosts or both"),
        (archive(bandwidth_hosts=["ps_bw.a"]), f"{AT}.bandwidth_hosts: 'ps_bw.a' is not a DNS "
         "name or IP address"),
        (archive(latency_hosts=["-ps.a"]), f"{AT}.latency_hosts: '-ps.a' is not a DNS name or "
         "IP address"),
        (archive(latency_hosts=["ps.a", "PS.a"]), f"{AT}.latency_hosts: a host is listed twice"),
        (archive(latency_hosts=["ps.a"], api="ps4"), f"{AT}.api: Input should be 'auto', "
         "'opensearch' or 'esmond'"),
        (archive(latency_hosts=["ps.a"], basic_auth={"username": "u"}),
         f"{AT}.basic_auth.password_file: required key is missing"),
        (archive(latency_hosts=["ps.a"], hosts=["ps.a"]), f"{AT}.hosts: unknown key"),
        ({**archive(latency_hosts=["ps.a"]), "url": "root://ps.a"},
         f"{AT}: a perfSONAR archive is read over https:// or http://, not root"),
        ({**archive(latency_hosts=["ps.a"]), "url": "iperf3://ps.a"},
         f"{AT}: a perfSONAR archive is read over https:// or http://, not iperf3"),
    ],
)  # fmt: skip
def test_a_bad_perfsonar_block_names_its_key_path(endpoint: dict[str, Any], message: str) -> None:
    """Each mistake in a perfsonar block is reported at its YAML path."""
    data = config("perfsonar", [{"name": "dav", "url": "davs://dav.a"}, endpoint])
    assert problems(data) == [message]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("iperf3://iperf.a:5201/", None),
        ("iperf3://[::1]", None),
        ("iperf3://iperf.a/x", "the URL must not carry a path ('/x'): use test_dir"),
        ("iperf3://iperf.a:99999", "Port out of range 0-65535"),
        ("iperf://iperf.a", "unsupported scheme 'iperf'"),
    ],
)
def test_iperf3_server_urls(url: str, message: str | None) -> None:
    """An iperf3 server is iperf3://host[:port] (no port: iperf3's 5201), without a path."""
    data = config("iperf3", [{"name": "iperf", "url": url}])
    if message is None:
        jobs = build_plan(parse_config(yaml.safe_dump(data)))
        assert {job.target.source.url for job in jobs if job.target.source.site == "A"} == {
            url.rstrip("/")
        }
        return
    [found] = problems(data)
    assert found.startswith("sites[0].endpoints[0].url: ")
    assert message in found


@pytest.mark.parametrize("probe_type", ["perfsonar", "iperf3"])
def test_two_jobs_per_pair_one_per_ip_version(probe_type: str) -> None:
    """Every ordered pair of the three sites, once per IP version, keyed by NetworkKey whose
    ip_version label is the bare number; one IP version when params.modes says so."""
    jobs = build_plan(parse_config(yaml.safe_dump(config(probe_type))))
    pairs = [(s, d) for s in SITES for d in SITES if s != d]
    assert sorted(network_keys(jobs)) == sorted(
        NetworkKey("net", s, d, v) for s, d in pairs for v in ("4", "6")
    )
    assert {job.target.mode for job in jobs} == {"ipv4", "ipv6"}
    only_six = build_plan(
        parse_config(yaml.safe_dump(config(probe_type, params={"modes": ["ipv6"]})))
    )
    assert {key.ip_version for key in network_keys(only_six)} == {"6"}


def test_a_site_install_runs_the_pairs_its_site_sends_from() -> None:
    """Scope(site=B) owns B->A and B->C (both IP versions), not the pairs B receives."""
    jobs = build_plan(parse_config(yaml.safe_dump(config("iperf3"))), Scope(site="B"))
    assert {(k.src_site, k.dst_site) for k in network_keys(jobs)} == {("B", "A"), ("B", "C")}
    assert len(jobs) == 4


def test_shards_cover_each_network_job_once() -> None:
    """The three shards of 3 split the plan with no job twice and none left out."""
    parsed = parse_config(yaml.safe_dump(config("perfsonar")))
    everything = {job.key for job in build_plan(parsed)}
    shards = [{job.key for job in build_plan(parsed, Scope(shard=f"{i}/3"))} for i in range(3)]
    assert sum(len(shard) for shard in shards) == len(everything) == 12
    assert set().union(*shards) == everything


def test_perfsonar_pairs_need_archive_endpoints() -> None:
    """A site without a perfsonar block takes no part: its pairs are not planned (and two
    https endpoints, only one an archive, are no choice to make)."""
    plain = [{"name": "web", "url": "https://web.a"}, {"name": "dav", "url": "https://dav.a"}]
    jobs = build_plan(parse_config(yaml.safe_dump(config("perfsonar", plain))))
    assert {(k.src_site, k.dst_site) for k in network_keys(jobs)} == {("B", "C"), ("C", "B")}


def test_a_perfsonar_probe_without_archives_is_an_error() -> None:
    """No site with a perfsonar block: the probe selects nothing, and says what it needs."""
    data = config("perfsonar")
    for site in data["sites"]:
        site["endpoints"] = [e for e in site["endpoints"] if "perfsonar" not in e]
    assert problems(data) == [
        "probes[0].targets: selects no endpoint with a 'perfsonar:' block "
        "(type 'perfsonar' tests http, https)"
    ]


@pytest.mark.parametrize("probe_type", ["webdav", "http-tpc", "token-authz", "fixity"])
def test_storage_probes_never_select_a_perfsonar_archive(probe_type: str) -> None:
    """An archive is https:// like a WebDAV door, but it holds measurements, not files: the
    storage, transfer and integrity probes leave it out, even selected by site."""
    data = config(probe_type, targets={"sites": list(SITES)})
    if probe_type == "token-authz":
        issuer = {"token_endpoint": "https://i.example/t", "client_id_file": "/x",
                  "client_secret_file": "/y"}  # fmt: skip
        data["probes"][0]["params"] = {"issuer": issuer}
    jobs = build_plan(parse_config(yaml.safe_dump(data)))
    urls = {endpoint.url for job in jobs for endpoint in job.target.endpoints}
    assert urls
    assert not any("ps-archive" in url for url in urls)
