"""How the network probes judge a pair's numbers (pure functions, shared by perfsonar and
iperf3). Details give the values with units and the threshold crossed; they are free text."""

from __future__ import annotations

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.network.params import Thresholds


def gbits(bps: float) -> str:
    return f"{bps / 1e9:.3g} Gbit/s"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.3g} %"


def millis(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"


def throughput_verdict(bps: float, limits: Thresholds, what: str) -> StepOutcome:
    """`what` says where the number comes from (hosts, archive, time)."""
    measured = f"{gbits(bps)} {what}"
    critical, warning = limits.throughput_critical_bps, limits.throughput_warning_bps
    if critical is not None and bps < critical:
        return failed(Reason.THROUGHPUT_LOW, f"{measured} (critical below {gbits(critical)})")
    if warning is not None and bps < warning:
        detail = f"{measured} (warning below {gbits(warning)})"
        return StepOutcome(Status.WARNING, Reason.THROUGHPUT_LOW, detail)
    return passed(measured)


def loss_verdict(
    ratio: float, latency_seconds: float | None, limits: Thresholds, what: str
) -> StepOutcome:
    latency = "" if latency_seconds is None else f", latency {millis(latency_seconds)}"
    measured = f"loss {percent(ratio)}{latency} {what}"
    critical, warning = limits.loss_critical, limits.loss_warning
    if critical is not None and ratio > critical:
        return failed(Reason.PACKET_LOSS, f"{measured} (critical above {percent(critical)})")
    if warning is not None and ratio > warning:
        detail = f"{measured} (warning above {percent(warning)})"
        return StepOutcome(Status.WARNING, Reason.PACKET_LOSS, detail)
    return passed(measured)


def measurement_failed(what: str, error: str | None) -> StepOutcome:
    return failed(Reason.MEASUREMENT_FAILED, f"{what} failed: {error or 'no error given'}")


def stale(detail: str) -> StepOutcome:
    """No measurement to judge: the pair is not measured, which is not zero throughput."""
    return StepOutcome(Status.WARNING, Reason.MEASUREMENT_STALE, detail)


def age(seconds: float) -> str:
    """An age for a detail: '42 s', '17 min', '3.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
