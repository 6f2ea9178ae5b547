"""`lakeprobe_token_expiry_seconds{site,endpoint,probe,source}`: one series per configured
token source of the plan, computed at scrape time, absent while unknown; `source` says what
kind of source it is (file, discovery, oidc). It is one family of the exposition's table."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import jwt
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from daemon_helpers import pick, running_daemon, scrape
from lakeprobe.config import parse_config
from lakeprobe.config.plan import ProbeJob, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import ENDPOINT_FAMILIES, Row
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.exporter.tokenexpiry import NAME
from lakeprobe.lake import free_ports, make_test_pki
from lakeprobe.lake.issuer_process import LocalIssuer
from lakeprobe.probes.credentials.jwtinfo import jwt_expiry
from lakeprobe.probes.credentials.secrets import Secret

Key = tuple[str, str, str]
Series = dict[Key, float]


def exposition(jobs: list[ProbeJob]) -> Exposition:
    """The exposition of the plan with no results yet: only the token families have series."""
    made = Exposition(ResultsStore())
    made.set_plan(jobs)
    return made


def make_jwt(expires_in: float) -> str:
    claims = {"sub": "lakeprobe", "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, "a-test-signing-key-of-32-bytes!!", algorithm="HS256")


def series(text: str) -> Series:
    return {
        (s.labels["site"], s.labels["endpoint"], s.labels["probe"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == NAME
    }


def sources(text: str) -> dict[Key, str]:
    """The `source` label of each series."""
    return {
        (s.labels["site"], s.labels["endpoint"], s.labels["probe"]): s.labels["source"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == NAME
    }


def config_text(tmp_path: Path, probe_auth: Mapping[str, object] | None = None) -> str:
    """Two sites; A's endpoints use a token file, B's none. Two probes use the endpoints'
    auth, a third (on A's https endpoint) its own."""
    token = {"token_file": str(tmp_path / "a.token")}
    config: dict[str, object] = {
        "sites": [
            {
                "name": "A",
                "endpoints": [
                    {"name": "root", "url": "roots://127.0.0.1:1", "auth": token},
                    {"name": "dav", "url": "davs://127.0.0.1:2", "auth": token},
                ],
            },
            {"name": "B", "endpoints": [{"name": "dav", "url": "davs://127.0.0.1:3"}]},
        ],
        "probes": [
            {"name": "xrootd", "type": "xrootd"},
            {"name": "webdav", "type": "webdav"},
            {"name": "tpc", "type": "http-tpc"},
            {
                "name": "webdav-own",
                "type": "webdav",
                "targets": {"endpoints": ["A/dav"]},
                "auth": probe_auth or {"token_file": str(tmp_path / "own.token")},
            },
        ],
    }
    return yaml.safe_dump(config)


def test_jwt_expiry_reads_exp_and_never_raises() -> None:
    """The exp claim of a JWT; None for opaque tokens and broken ones."""
    token = make_jwt(100)
    assert (
        jwt_expiry(Secret(token)) == jwt.decode(token, options={"verify_signature": False})["exp"]
    )
    for value in ("opaque-token", "a.b.c", "a.!!!.c", "a.bnVsbA.c", "a.eyJleHAiOiJ4In0.c"):
        assert jwt_expiry(Secret(value)) is None


def test_one_series_per_configured_source(tmp_path: Path) -> None:
    """Endpoint auth gives probe="", a probe's own auth gives probe=<name>; the source A's
    endpoints share across three probes is exported once per endpoint. Token files are read
    at scrape time: the expiry is known before any probe ran, negative once expired."""
    (tmp_path / "a.token").write_text(make_jwt(3600))
    (tmp_path / "own.token").write_text(make_jwt(-60))
    jobs = build_plan(parse_config(config_text(tmp_path)))
    expiry = exposition(jobs)
    values = series(expiry.render().decode())
    assert set(values) == {("A", "root", ""), ("A", "dav", ""), ("A", "dav", "webdav-own")}
    assert 3590 < values["A", "root", ""] <= 3600
    assert -70 < values["A", "dav", "webdav-own"] <= -60
    assert set(sources(expiry.render().decode()).values()) == {"file"}
    objects = {id(t.token) for job in jobs for t in job.target.endpoints if t.token}
    assert len(objects) == 3  # A/root, A/dav, and the probe's own


def test_discovered_token_has_source_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token found by WLCG bearer-token discovery is labelled source="discovery"."""
    (tmp_path / "a.token").write_text(make_jwt(3600))
    monkeypatch.setenv("BEARER_TOKEN", make_jwt(1200))
    expiry = exposition(build_plan(parse_config(config_text(tmp_path, {"bearer_discovery": True}))))
    text = expiry.render().decode()
    assert sources(text) == {
        ("A", "root", ""): "file",
        ("A", "dav", ""): "file",
        ("A", "dav", "webdav-own"): "discovery",
    }
    assert 1190 < series(text)["A", "dav", "webdav-own"] <= 1200


def test_unknown_expiry_is_absent(tmp_path: Path) -> None:
    """A missing file or an opaque token has no known expiry: no series (no family)."""
    (tmp_path / "a.token").write_text("opaque-token-value")
    expiry = exposition(build_plan(parse_config(config_text(tmp_path))))
    assert expiry.render() == b""
    (tmp_path / "a.token").write_text(make_jwt(600))
    assert len(series(expiry.render().decode())) == 2


def test_a_row_without_the_family_exports_no_expiry(tmp_path: Path) -> None:
    """Token series come from the targets whose probe type's row lists the family: with
    only webdav's row listing it, A/root (used by xrootd alone) has no series, and the one
    header is written once."""
    (tmp_path / "a.token").write_text(make_jwt(3600))
    (tmp_path / "own.token").write_text(make_jwt(3600))
    no_tokens = Row(ENDPOINT_FAMILIES, tokens=())
    table = {"xrootd": no_tokens, "webdav": Row(ENDPOINT_FAMILIES), "http-tpc": no_tokens}
    made = Exposition(ResultsStore(), table)
    made.set_plan(build_plan(parse_config(config_text(tmp_path))))
    text = made.render().decode()
    assert set(series(text)) == {("A", "dav", ""), ("A", "dav", "webdav-own")}
    assert text.count(f"# HELP {NAME} ") == 1


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[LocalIssuer]:
    server = LocalIssuer(tmp_path / "issuer", make_test_pki(tmp_path / "pki"), free_ports(1)[0])
    server.start()
    yield server
    server.stop()


@pytest.mark.lake
async def test_oidc_source_reports_what_it_issued(tmp_path: Path, issuer: LocalIssuer) -> None:
    """An OIDC source has no series until it issued a token (a scrape never asks the
    issuer), then the issued token's remaining lifetime."""
    id_file, secret_file = issuer.add_client("expiry-metric", lifetime=900)
    oidc = {
        "oidc": {
            "token_endpoint": issuer.token_endpoint,
            "client_id_file": str(id_file),
            "client_secret_file": str(secret_file),
            "ca_dir": str(issuer.pki.ca_dir),
            "scope": "storage.read:/",
        }
    }
    (tmp_path / "a.token").write_text("opaque")
    jobs = build_plan(parse_config(config_text(tmp_path, oidc)))
    expiry = exposition(jobs)
    assert expiry.render() == b""
    assert "token issued" not in issuer.log_path.read_text()
    own = next(job for job in jobs if job.key.probe == "webdav-own")
    token = own.target.endpoints[0].token
    assert token is not None
    await token.token()
    text = expiry.render().decode()
    assert 890 < series(text)["A", "dav", "webdav-own"] <= 900
    assert sources(text) == {("A", "dav", "webdav-own"): "oidc"}  # a.token is opaque


async def test_daemon_exports_the_expiry(tmp_path: Path) -> None:
    """The running daemon's /metrics carries the series with its HELP and TYPE."""
    (tmp_path / "a.token").write_text(make_jwt(7200))
    (tmp_path / "own.token").write_text(make_jwt(1800))
    data = yaml.safe_load(config_text(tmp_path))
    data["server"] = {"listen": f"127.0.0.1:{free_ports(1)[0]}"}
    data["defaults"] = {"interval": "1h", "timeout": 5}
    path = tmp_path / "lakeprobe.yaml"
    path.write_text(yaml.safe_dump(data))
    async with running_daemon(path) as (_, base):
        samples = await scrape(base)
    values = pick(samples, NAME)
    assert len(values) == 3
    key = frozenset({"site": "A", "endpoint": "root", "probe": "", "source": "file"}.items())
    assert 7100 < values[key] <= 7200
