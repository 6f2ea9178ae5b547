"""The perfsonar probe (probes/network/perfsonar.py) against the perfSONAR archive double
(lakeprobe/lake/psarchive.py) over https on loopback: results mapped to the right site pair
and IP version, stale and missing pairs, thresholds, and every archive fault as a result."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lakeprobe.lake.lake import free_ports
from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.lake.psarchive import PsArchiveDouble
from lakeprobe.probes.clients.psarchive import ArchiveClosed, ArchiveMalformed, ArchiveUnavailable
from lakeprobe.probes.core.archivetarget import PerfsonarArchive
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.network import perfsonar
from lakeprobe.probes.network.params import PerfsonarParams

LOG = logging.getLogger("test.network.perfsonar")
BW_A, LAT_A = "ps-bw.site-a.example", "ps-lat.site-a.example"
BW_B, LAT_B = "ps-bw.site-b.example", "ps-lat.site-b.example"
HOUR = 3600.0
M = Measurement


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def archive(pki: TestPki) -> Iterator[PsArchiveDouble]:
    with PsArchiveDouble(pki) as double:
        yield double


def end(site: str, url: str, pki: TestPki, **archive: Any) -> Target:
    """A site's archive endpoint; its nodes ps-bw/ps-lat.<site>.example unless `archive`
    says otherwise."""
    name = site.lower()
    nodes = PerfsonarArchive((f"ps-bw.{name}.example",), (f"ps-lat.{name}.example",))
    return Target(site, "ps", url, "/", ca_dir=pki.ca_dir, perfsonar=replace(nodes, **archive))


def pair(src: str, dst: str, pki: TestPki) -> PairTarget:
    """SITE-A -> SITE-B over IPv4, their archives at `src` and `dst`."""
    return PairTarget(end("SITE-A", src, pki), end("SITE-B", dst, pki), "ipv4")


async def run(target: PairTarget, **params: object) -> ProbeResult:
    checked = validate_params(PerfsonarParams, params)
    outcome = await run_probe(perfsonar.PROBE_TYPE, target, checked, timeout=20.0,
                              probe_host="testhost", log=LOG)  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def steps(result: ProbeResult) -> dict[str, StepResult]:
    return {step.name: step for step in result.steps}


def fill(archive: PsArchiveDouble, now: float) -> None:
    """A -> B fresh over both IP versions with their own values; B -> A with others."""
    for version, bps in ((4, 9.1e9), (6, 4.2e9)):
        archive.add_throughput(BW_A, BW_B, at=now - 600, ip_version=version, bps=bps,
                               retransmits=version)  # fmt: skip
        archive.add_latency(LAT_A, LAT_B, at=now - 300, ip_version=version,
                            median_seconds=version / 1000, loss=0.0)  # fmt: skip
        archive.add_trace(BW_A, BW_B, at=now - 900, ip_version=version, hops=version + 5)
    archive.add_throughput(BW_B, BW_A, at=now - 60, bps=1e6)
    archive.add_latency(LAT_B, LAT_A, at=now - 60, loss=0.5)


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
@pytest.mark.parametrize(("mode", "bps", "version"), [("ipv4", 9.1e9, 4), ("ipv6", 4.2e9, 6)])
async def test_fresh_results_map_to_pair_and_version(
    archive: PsArchiveDouble, pki: TestPki, api: str, mode: str, bps: float, version: int
) -> None:
    """A -> B in one IP version: that version's throughput, retransmits, loss, latency and
    hops, never the reverse direction's or the other version's; measured_at is the newest
    start time used (the latency result's); OK."""
    now = time.time()
    fill(archive, now)
    target = PairTarget(end("SITE-A", archive.url, pki, api=api),
                        end("SITE-B", archive.url, pki, api=api), mode)  # fmt: skip
    result = await run(target)
    assert result.status is Status.OK, result.steps
    assert result.measurements[M.NETWORK_THROUGHPUT] == bps
    assert result.measurements[M.NETWORK_RETRANSMITS] == version
    assert result.measurements[M.NETWORK_LOSS] == 0.0
    assert result.measurements[M.NETWORK_LATENCY] == pytest.approx(version / 1000)
    assert result.measurements[M.NETWORK_HOPS] == version + 5
    assert result.measurements[M.NETWORK_MEASURED_AT] == pytest.approx(now - 300, abs=1.5)
    assert "Gbit/s" in steps(result)["throughput"].detail


@pytest.mark.parametrize("case", ["missing", "stale", "reverse_only", "other_version"])
async def test_stale_or_missing_pair(archive: PsArchiveDouble, pki: TestPki, case: str) -> None:
    """No result of this pair and version in the window (none at all, older than the window,
    only B -> A, only IPv6): WARNING measurement_stale, and no throughput, loss or age is
    measured (a stale pair is not zero throughput)."""
    now = time.time()
    if case == "stale":
        archive.add_throughput(BW_A, BW_B, at=now - 7 * HOUR)
        archive.add_latency(LAT_A, LAT_B, at=now - 7 * HOUR)
    elif case == "reverse_only":
        archive.add_throughput(BW_B, BW_A, at=now - 60)
    elif case == "other_version":
        archive.add_throughput(BW_A, BW_B, at=now - 60, ip_version=6)
    result = await run(pair(archive.url, archive.url, pki), window="6h")
    assert (result.status, result.reason) == (Status.WARNING, Reason.MEASUREMENT_STALE)
    assert steps(result)["freshness"].detail == "no throughput or latency result in the last 6.0 h"
    assert result.measurements == {}


THRESHOLDS = {"throughput_warning_bps": 5e9, "throughput_critical_bps": 1e9}
# Per pair: A -> B's own limits replace the global ones, key by key, for that direction only.
RELAXED = {"throughput_critical_bps": None, "throughput_warning_bps": 1e8}
A_B_RELAXED = {**THRESHOLDS, "pairs": {"SITE-A->SITE-B": RELAXED}}
A_B_LOSSY = {"pairs": {"SITE-A->SITE-B": {"loss_warning": 0.1, "loss_critical": 0.2}}}
A_B_STRICT = {"pairs": {"SITE-A->SITE-B": {"throughput_critical_bps": 1e10}}}
B_A_STRICT = {"pairs": {"SITE-B->SITE-A": {"throughput_critical_bps": 1e10}}}


@pytest.mark.parametrize(
    ("bps", "loss", "params", "status", "reason"),
    [
        (6e9, 0.0, THRESHOLDS, Status.OK, Reason.NONE),
        (2e9, 0.0, THRESHOLDS, Status.WARNING, Reason.THROUGHPUT_LOW),
        (0.5e9, 0.0, THRESHOLDS, Status.CRITICAL, Reason.THROUGHPUT_LOW),
        (6e9, 0.005, {}, Status.WARNING, Reason.PACKET_LOSS),
        (6e9, 0.05, {}, Status.CRITICAL, Reason.PACKET_LOSS),
        (0.5e9, 0.0, A_B_RELAXED, Status.OK, Reason.NONE),
        (6e9, 0.05, A_B_LOSSY, Status.OK, Reason.NONE),
        (6e9, 0.0, A_B_STRICT, Status.CRITICAL, Reason.THROUGHPUT_LOW),
        (6e9, 0.0, B_A_STRICT, Status.OK, Reason.NONE),
    ],
)
async def test_thresholds(
    archive: PsArchiveDouble,
    pki: TestPki,
    bps: float,
    loss: float,
    params: dict[str, object],
    status: Status,
    reason: Reason,
) -> None:
    """Throughput below warning/critical and loss above them give WARNING/CRITICAL with the
    numbers and the threshold in the detail; a pair's own thresholds replace the global ones
    for that direction only; the values are measured either way."""
    archive.add_throughput(BW_A, BW_B, bps=bps)
    archive.add_latency(LAT_A, LAT_B, loss=loss)
    result = await run(pair(archive.url, archive.url, pki), **params)
    assert (result.status, result.reason) == (status, reason), result.steps
    assert result.measurements[M.NETWORK_THROUGHPUT] == bps
    assert result.measurements[M.NETWORK_LOSS] == loss
    if reason is Reason.THROUGHPUT_LOW:
        detail = steps(result)["throughput"].detail
        assert f"{bps / 1e9:.3g} Gbit/s" in detail
        assert ("critical below" if status is Status.CRITICAL else "warning below") in detail
    if reason is Reason.PACKET_LOSS:
        assert f"loss {loss * 100:.3g} %" in steps(result)["latency"].detail


async def test_failed_test_is_measurement_failed(archive: PsArchiveDouble, pki: TestPki) -> None:
    """The newest throughput test failed (an older one succeeded): CRITICAL measurement_failed
    with pScheduler's error, no throughput measured; the latency step still runs."""
    archive.add_throughput(BW_A, BW_B, at=time.time() - 600)
    archive.add_throughput(BW_A, BW_B, at=time.time() - 60, succeeded=False,
                           error="iperf3: connection refused")  # fmt: skip
    archive.add_latency(LAT_A, LAT_B)
    result = await run(pair(archive.url, archive.url, pki))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.MEASUREMENT_FAILED)
    assert "iperf3: connection refused" in steps(result)["throughput"].detail
    assert M.NETWORK_THROUGHPUT not in result.measurements
    assert steps(result)["latency"].status is Status.OK
    assert M.NETWORK_LOSS in result.measurements


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"closed": True}, Reason.ARCHIVE_CLOSED),
        ({"malformed": "json"}, Reason.ARCHIVE_MALFORMED),
        ({"malformed": "types"}, Reason.ARCHIVE_MALFORMED),
    ],
)
async def test_archive_faults_are_unknown(
    pki: TestPki, knobs: dict[str, Any], reason: Reason
) -> None:
    """An archive that refuses us (401) or answers nonsense leaves the pair unjudged:
    UNKNOWN with that reason, no exception, nothing measured, the later steps skipped."""
    with PsArchiveDouble(pki, **knobs) as archive:
        archive.add_throughput(BW_A, BW_B)
        result = await run(pair(archive.url, archive.url, pki))
    assert (result.status, result.reason) == (Status.UNKNOWN, reason)
    assert result.measurements == {}
    assert steps(result)["latency"].status is Status.SKIPPED


async def test_unreachable_archive_is_critical_connect(pki: TestPki) -> None:
    """Nothing listens at the archive's port: CRITICAL connect, naming the archive."""
    (port,) = free_ports(1)
    result = await run(pair(f"https://localhost:{port}", f"https://localhost:{port}", pki))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert "archive of SITE-A/ps" in steps(result)["throughput"].detail


async def test_falls_back_to_destination_archive(pki: TestPki) -> None:
    """The source's archive has no throughput of the pair, the destination's has: that is
    measured. The source's own latency result is preferred to the destination's."""
    now = time.time()
    with PsArchiveDouble(pki) as source, PsArchiveDouble(pki) as destination:
        destination.add_throughput(BW_A, BW_B, at=now - 120, bps=3e9)
        source.add_latency(LAT_A, LAT_B, at=now - 600, loss=0.0)
        destination.add_latency(LAT_A, LAT_B, at=now - 60, loss=0.5)
        result = await run(pair(source.url, destination.url, pki))
    assert result.status is Status.OK, result.steps
    assert result.measurements[M.NETWORK_THROUGHPUT] == 3e9
    assert result.measurements[M.NETWORK_LOSS] == 0.0
    assert result.measurements[M.NETWORK_MEASURED_AT] == pytest.approx(now - 120, abs=1.5)


async def test_latency_only_site(archive: PsArchiveDouble, pki: TestPki) -> None:
    """A site with only latency nodes: throughput is skipped, loss and latency measured, OK."""
    archive.add_latency(LAT_A, LAT_B, loss=0.0)
    target = PairTarget(end("SITE-A", archive.url, pki, bandwidth_hosts=()),
                        end("SITE-B", archive.url, pki), "ipv4")  # fmt: skip
    result = await run(target)
    assert result.status is Status.OK, result.steps
    assert steps(result)["throughput"].status is Status.SKIPPED
    assert "no bandwidth hosts at SITE-A" in steps(result)["throughput"].detail
    assert set(result.measurements) == {M.NETWORK_LOSS, M.NETWORK_LATENCY, M.NETWORK_MEASURED_AT}


async def test_basic_auth(pki: TestPki, tmp_path: Path) -> None:
    """An archive closed to anonymous readers: with its password file the probe reads it;
    with an unreadable file the credential step is UNKNOWN credential and asks nothing."""
    password = tmp_path / "password"
    password.write_text("s3cret-pw\n")
    password.chmod(0o600)
    with PsArchiveDouble(pki, basic_auth=("reader", "s3cret-pw")) as archive:
        archive.add_throughput(BW_A, BW_B)
        archive.add_latency(LAT_A, LAT_B)
        auth = {"username": "reader", "password_file": password}
        target = PairTarget(end("SITE-A", archive.url, pki, **auth),
                            end("SITE-B", archive.url, pki, **auth), "ipv4")  # fmt: skip
        result = await run(target)
        assert result.status is Status.OK, result.steps
        missing = {"username": "reader", "password_file": tmp_path / "absent"}
        target = PairTarget(end("SITE-A", archive.url, pki, **missing),
                            end("SITE-B", archive.url, pki), "ipv4")  # fmt: skip
        asked = len(archive.seen)
        result = await run(target)
        assert (result.status, result.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
        assert "s3cret" not in repr(result)
        assert len(archive.seen) == asked


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ArchiveClosed("GET /x: HTTP 403"), Status.UNKNOWN, Reason.ARCHIVE_CLOSED),
        (ArchiveMalformed("hits.hits: missing"), Status.UNKNOWN, Reason.ARCHIVE_MALFORMED),
        (ArchiveUnavailable("POST /p: HTTP 503", Reason.SERVER_ERROR), Status.CRITICAL,
         Reason.SERVER_ERROR),
        (ArchiveUnavailable("POST /p: timed out", Reason.TIMEOUT), Status.CRITICAL,
         Reason.TIMEOUT),
    ],
)  # fmt: skip
def test_archive_error_reasons(error: Exception, status: Status, reason: Reason) -> None:
    """Each archive error maps to its status and reason, the detail naming the archive:
    closed and malformed leave the pair unjudged, an unreachable archive keeps the reason
    the client gave it (tests/test_psarchive.py checks those)."""
    outcome = perfsonar.archive_failure(error, "archive of SITE-A/ps")
    assert (outcome.status, outcome.reason) == (status, reason)
    assert outcome.detail.startswith("archive of SITE-A/ps: ")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"modes": ["pull"]}, "modes must be distinct values of ipv4, ipv6"),
        ({"modes": ["ipv4", "ipv4"]}, "modes must be distinct values of ipv4, ipv6"),
        ({"window": "6 weeks"}, "expected a duration like 3600, '90m', '6h'"),
        ({"window": "60d"}, "less than or equal to 2592000"),
        ({"loss_warning": 1.5}, "less than or equal to 1"),
        ({"throughput_warning_bps": 1e9, "throughput_critical_bps": 2e9},
         "throughput_critical_bps (2e+09) must not be above throughput_warning_bps (1e+09)"),
        ({"pairs": {"A-B": {}}}, "'A-B' is not 'SRC->DST' with two different site names"),
        ({"pairs": {"A->A": {}}}, "'A->A' is not 'SRC->DST' with two different site names"),
        ({"pairs": {"A->B": {"loss_warn": 0.1}}}, "pairs.A->B.loss_warn\n  Extra inputs"),
        ({"pairs": {"A->B": {"loss_warning": 0.5}}},
         "pairs['A->B']: loss_warning (0.5) must not be above loss_critical (0.01)"),
    ],
)  # fmt: skip
def test_params_rejected(params: dict[str, object], message: str) -> None:
    """Unknown modes and keys, bad durations and thresholds, and a pair whose thresholds
    (its own merged over the global ones) contradict each other are errors naming them."""
    with pytest.raises(ValidationError) as error:
        validate_params(PerfsonarParams, params)
    assert message in str(error.value)


def test_pair_thresholds_merge() -> None:
    """A pair's entry replaces only the keys it sets (null: off); other pairs keep the
    global thresholds; the window takes '90m'."""
    params = validate_params(PerfsonarParams, {
        "window": "90m", "throughput_warning_bps": 1e9,
        "pairs": {"A->B": {"throughput_warning_bps": None, "loss_critical": 0.5}},
    })  # fmt: skip
    assert params.window == 5400
    assert params.modes == ("ipv4", "ipv6")
    own = params.thresholds("A", "B")
    assert (own.throughput_warning_bps, own.loss_warning, own.loss_critical) == (None, 0.001, 0.5)
    other = params.thresholds("B", "A")
    assert (other.throughput_warning_bps, other.loss_critical) == (1e9, 0.01)
