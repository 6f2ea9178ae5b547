"""The iperf3 probe (probes/network/iperf3.py) against a real iperf3 server on 127.0.0.1
(lakeprobe/lake/iperf3.py): loopback throughput measured and judged, a stopped server, a
server busy with someone else's test."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need_binaries
from pydantic import ValidationError

from iperf3_helpers import hold
from lakeprobe.lake.iperf3 import Iperf3Server
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.network import iperf3
from lakeprobe.probes.network.params import Iperf3Params

LOG = logging.getLogger("test.network.iperf3")
M = Measurement


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Iperf3Server]:
    """A started iperf3 server on 127.0.0.1 (SITE-B's)."""
    need_binaries("iperf3")
    with Iperf3Server(tmp_path / "iperf3") as started:
        yield started


def pair(server: Iperf3Server) -> PairTarget:
    """SITE-A (this host) -> SITE-B's iperf3 server, IPv4."""
    source = Target("SITE-A", "iperf3", "iperf3://127.0.0.1:5201", "/")
    return PairTarget(source, Target("SITE-B", "iperf3", server.url, "/"), "ipv4")


async def run(target: PairTarget, **params: object) -> ProbeResult:
    checked = validate_params(Iperf3Params, {"seconds": 1, **params})
    outcome = await run_probe(iperf3.PROBE_TYPE, target, checked, timeout=20.0,
                              probe_host="testhost", log=LOG)  # fmt: skip
    assert outcome.exception is None
    return outcome.result


@pytest.mark.parametrize("reverse", [False, True])
async def test_loopback_throughput_measured(server: Iperf3Server, reverse: bool) -> None:
    """A real one-second test either way (-R: the server sends): OK, the throughput above
    zero in bits/s, the sender's retransmits (Linux counts them), measured now."""
    started = time.time()
    result = await run(pair(server), reverse=reverse)
    assert result.status is Status.OK, result.steps
    assert result.measurements[M.NETWORK_THROUGHPUT] > 0
    assert result.measurements[M.NETWORK_RETRANSMITS] >= 0
    assert started <= result.measurements[M.NETWORK_MEASURED_AT] <= time.time()
    detail = result.steps[0].detail
    assert "Gbit/s" in detail
    assert ("<-" if reverse else "->") in detail


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"throughput_critical_bps": 1e15}, Status.CRITICAL),
        ({"throughput_warning_bps": 1e15}, Status.WARNING),
        ({"pairs": {"SITE-A->SITE-B": {"throughput_warning_bps": 1e15}}}, Status.WARNING),
        ({"pairs": {"SITE-B->SITE-A": {"throughput_warning_bps": 1e15}}}, Status.OK),
    ],
)
async def test_thresholds(server: Iperf3Server, params: dict[str, object], status: Status) -> None:
    """Loopback throughput below a (huge) threshold is throughput_low, as perfSONAR's; a
    per-pair threshold applies to its own direction only."""
    result = await run(pair(server), **params)
    assert result.status is status, result.steps
    if status is not Status.OK:
        assert result.reason is Reason.THROUGHPUT_LOW
        assert "below 1e+06 Gbit/s" in result.steps[0].detail
    assert result.measurements[M.NETWORK_THROUGHPUT] > 0


async def test_stopped_server_is_critical_connect(server: Iperf3Server) -> None:
    """Nothing listens at the server's port: CRITICAL connect, nothing measured."""
    server.stop()
    result = await run(pair(server))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert server.url in result.steps[0].detail
    assert result.measurements == {}


async def test_busy_server_is_warning(server: Iperf3Server) -> None:
    """A server busy with another test through every retry: WARNING server_busy (not a
    network fault), the tries counted in the detail, nothing measured."""
    holder = hold(server, 4)
    try:
        result = await run(pair(server), busy_retries=1)
    finally:
        assert holder.wait(10) == 0
    assert (result.status, result.reason) == (Status.WARNING, Reason.SERVER_BUSY)
    assert "after 2 tries" in result.steps[0].detail
    assert result.measurements == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"seconds": 61}, "less than or equal to 60"),
        ({"busy_retries": -1}, "greater than or equal to 0"),
        ({"seconds": 30, "slow_step_seconds": 20}, "must be above seconds (30)"),
        ({"modes": ["push"]}, "modes must be distinct values of ipv4, ipv6"),
    ],
)
def test_params_rejected(params: dict[str, object], message: str) -> None:
    """A test longer than iperf3's cap, negative retries, a slow-step limit every test would
    exceed, copy modes: errors naming the value."""
    with pytest.raises(ValidationError) as error:
        validate_params(Iperf3Params, params)
    assert message in str(error.value)
