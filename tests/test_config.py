"""Config validation: every invalid file yields exactly the message it documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeprobe.config import ConfigError, load_config, parse_config
from lakeprobe.config.plan import build_plan
from lakeprobe.config.types import parse_duration
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.tokens import DiscoveredToken, FileToken

HERE = Path(__file__).parent
INVALID = sorted((HERE / "configs" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((HERE.parent / "config").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_the_problem(path: Path) -> None:
    """Each invalid file fails with exactly one message naming the YAML path."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.messages == [_expected(path)]
    assert str(caught.value) == f"{path}: {_expected(path)}"


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is reported, naming the file, not raised as OSError."""
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_config(tmp_path / "absent.yaml")


def test_all_errors_are_reported_at_once() -> None:
    """Several problems give several messages, not just the first."""
    text = """
sites:
  - name: A
    endpoints: [{name: e, url: "ftp://x", bogus: 1}]
probes: [{name: p, type: xrootd}]
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(caught.value.messages) == 2


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_shipped_examples_are_valid(path: Path) -> None:
    """The documented examples in config/ load and select targets."""
    assert build_plan(load_config(path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (2.5, 2.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["0s", "-1", "soon", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_plan_selects_by_protocol_site_and_endpoint() -> None:
    """Probes run only on endpoints whose scheme they test and that the selector names."""
    config = parse_config("""
defaults: {interval: 2m, timeout: 30s, ca_dir: /etc/grid-security/certificates}
sites:
  - name: A
    endpoints:
      - {name: x, url: "root://a:1094", auth: {token_file: /run/token},
         insecure_token_transport: true}
      - {name: w, url: "davs://a:443", auth: {bearer_discovery: true}}
  - name: B
    endpoints:
      - {name: x, url: "root://b:1094"}
probes:
  - {name: xr, type: xrootd}
  - {name: dav, type: webdav, interval: 5m}
  - {name: onlyb, type: xrootd, targets: {endpoints: [B/x]}}
""")
    plan = {job.key.job_id: job.target for job in build_plan(config)}
    assert all(isinstance(target, Target) for target in plan.values())
    jobs = {job.key.job_id: job for job in build_plan(config)}
    assert sorted(plan) == ["dav|A|w", "onlyb|B|x", "xr|A|x", "xr|B|x"]
    assert jobs["dav|A|w"].interval == 300.0
    assert jobs["xr|A|x"].timeout == 30.0
    assert isinstance(_target(plan["xr|A|x"]).token, FileToken)
    assert isinstance(_target(plan["dav|A|w"]).token, DiscoveredToken)
    assert _target(plan["xr|B|x"]).token is None
    assert str(_target(plan["xr|B|x"]).ca_dir) == "/etc/grid-security/certificates"
    assert _target(plan["xr|A|x"]).insecure_token_transport
    assert not _target(plan["dav|A|w"]).insecure_token_transport


def test_plan_sets_redirect_hosts() -> None:
    """A target may be redirected to its own patterns (lower-cased) and to the hosts of its
    site's endpoints, never to another site's."""
    config = parse_config("""
sites:
  - name: DESY
    endpoints:
      - {name: door, url: "davs://Door.DESY.de:2880", redirect_hosts: ["*.Pools.DESY.de", "[::1]"]}
      - {name: alt, url: "https://alt.desy.de:443"}
      - {name: xr, url: "roots://xrootd.desy.de:1094"}
  - name: CERN
    endpoints:
      - {name: eos, url: "davs://eos.cern.ch:443"}
probes:
  - {name: dav, type: webdav}
""")
    hosts = {job.key.job_id: _target(job.target).redirect_hosts for job in build_plan(config)}
    desy = {"door.desy.de", "alt.desy.de", "xrootd.desy.de"}
    assert hosts["dav|DESY|door"] == desy | {"*.pools.desy.de", "::1"}
    assert hosts["dav|DESY|alt"] == desy
    assert hosts["dav|CERN|eos"] == {"eos.cern.ch"}


@pytest.mark.parametrize(
    ("url", "auth"),
    [
        ("roots://a:1094", "auth: {token_file: /t}"),
        ("root://a:1094", "auth: {token_file: /t}, insecure_token_transport: true"),
        ("root://a:1094", ""),  # no token: nothing travels in cleartext
    ],
)
def test_tokens_over_tls_or_explicitly_insecure_are_valid(url: str, auth: str) -> None:
    """Only a token that would travel in cleartext unasked is an error."""
    config = parse_config(f"""
sites:
  - name: A
    endpoints: [{{name: x, url: "{url}", {auth}}}]
probes: [{{name: xr, type: xrootd}}]
""")
    assert build_plan(config)


def _target(target: Target | PairTarget) -> Target:
    assert isinstance(target, Target)
    return target


def test_plan_carries_the_checksum_policy() -> None:
    """An endpoint's `checksums` wins; without it, defaults.checksums applies; without that,
    `optional` (a missing checksum warns, never pages). Pair targets carry it too."""
    config = parse_config("""
sites:
  - name: A
    endpoints:
      - {name: strict, url: "davs://a.example.org", checksums: required}
      - {name: plain, url: "https://web.a.example.org", checksums: none}
      - {name: dav, url: "davs://dav.a.example.org"}
  - name: B
    endpoints: [{name: dav, url: "davs://b.example.org"}]
probes:
  - {name: dav, type: webdav}
  - {name: tpc, type: http-tpc, targets: {endpoints: [A/strict, B/dav]}}
""")
    plan = {job.key.job_id: job.target for job in build_plan(config)}
    policies = {key: _target(t).checksums for key, t in plan.items() if key.startswith("dav|")}
    assert policies == {
        "dav|A|strict": "required", "dav|A|plain": "none", "dav|A|dav": "optional",
        "dav|B|dav": "optional",
    }  # fmt: skip
    pairs = [t for t in plan.values() if isinstance(t, PairTarget)]
    assert {(p.source.checksums, p.destination.checksums) for p in pairs} == {
        ("required", "optional"),
        ("optional", "required"),
    }
    defaulted = parse_config("""
defaults: {checksums: none}
sites: [{name: A, endpoints: [{name: dav, url: "davs://a.example.org"}]}]
probes: [{name: dav, type: webdav}]
""")
    assert [_target(job.target).checksums for job in build_plan(defaulted)] == ["none"]
