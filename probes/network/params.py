"""Parameters of the network probes (perfsonar, iperf3): the IP versions a pair is measured
over, and the thresholds that judge a pair, for every pair and per pair (`pairs:`).

A per-pair entry (`"SRC->DST": {...}`) overrides only the keys it sets; `null` turns that
threshold off for the pair. Throughput is judged from below (critical <= warning), loss from
above (warning <= critical); both orders are checked for every pair as it ends up.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict

from lakeprobe.probes.clients.iperf3 import MAX_SECONDS
from lakeprobe.probes.core.context import PairParams
from lakeprobe.probes.core.paramspec import PARAMS_CONFIG, Before, Check, Doc, Ge, Gt, Le, MinLen

IP_MODES = ("ipv4", "ipv6")
MAX_WINDOW_SECONDS = 30 * 86400.0  # archives keep weeks at most; a longer look-back is a typo
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# Site names as the config allows them (lakeprobe/config/types.py): no '>', so one "->".
_PAIR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})->([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})$")


def parse_window(value: object) -> float:
    """Seconds from a number or '90m', '6h', '1d' (the config's duration spelling; probes
    cannot import lakeprobe/config, so the few lines are here)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 3600, '90m', '6h'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match[1]) * _UNIT_SECONDS[match[2]]
    raise ValueError(f"expected a duration like 3600, '90m', '6h', got {value!r:.40}")


Window = Annotated[float, Before(parse_window)]
# A threshold; None turns it off.
Throughput = Annotated[float, Gt(0)] | None
Loss = Annotated[float, Ge(0), Le(1)] | None


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """When a pair's numbers are WARNING or CRITICAL; None: that threshold is off."""

    __pydantic_config__ = PARAMS_CONFIG

    throughput_warning_bps: Annotated[
        Throughput, Doc("throughput below this (bits/s) gives WARNING")
    ] = None
    throughput_critical_bps: Annotated[
        Throughput, Doc("throughput below this (bits/s) gives CRITICAL")
    ] = None
    loss_warning: Annotated[Loss, Doc("packet loss ratio above this gives WARNING")] = 0.001
    loss_critical: Annotated[Loss, Doc("packet loss ratio above this gives CRITICAL")] = 0.01

    def order_problem(self) -> str | None:
        """Why these thresholds contradict each other, or None."""
        low, high = self.throughput_critical_bps, self.throughput_warning_bps
        if low is not None and high is not None and low > high:
            return (
                f"throughput_critical_bps ({low:g}) must not be above "
                f"throughput_warning_bps ({high:g})"
            )
        low, high = self.loss_warning, self.loss_critical
        if low is not None and high is not None and low > high:
            return f"loss_warning ({low:g}) must not be above loss_critical ({high:g})"
        return None

    def merged(self, override: PairThresholds) -> Thresholds:
        """These thresholds with the keys `override` sets replaced."""
        update = {name: getattr(override, name) for name in override.model_fields_set}
        return Thresholds(**{**_threshold_values(self), **update})


def _threshold_values(thresholds: Thresholds) -> dict[str, float | None]:
    return {f.name: getattr(thresholds, f.name) for f in dataclasses.fields(Thresholds)}


class PairThresholds(BaseModel):
    """One pair's `pairs:` entry: Thresholds' keys, remembering which it sets (an unset key
    keeps the global value; null turns it off). tests/test_network_perfsonar.py checks that
    the keys are Thresholds' own."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    throughput_warning_bps: Throughput = None
    throughput_critical_bps: Throughput = None
    loss_warning: Loss = None
    loss_critical: Loss = None


def _ip_modes(modes: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [m for m in modes if m not in IP_MODES]
    if unknown or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct values of {', '.join(IP_MODES)}: {modes}")
    return modes


def _pair_names(pairs: dict[str, PairThresholds]) -> dict[str, PairThresholds]:
    for key in pairs:
        match = _PAIR.match(key)
        if match is None or match[1] == match[2]:
            raise ValueError(f"{key!r:.80} is not 'SRC->DST' with two different site names")
    return pairs


@dataclass(frozen=True, kw_only=True)
class NetworkParams(PairParams, Thresholds):
    # pull/push are not network modes: IP versions are.
    modes: Annotated[
        tuple[str, ...],
        MinLen(1),
        Check(_ip_modes),
        Doc("ipv4, ipv6 or both: one series per IP version"),
    ] = IP_MODES
    pairs: Annotated[
        dict[str, PairThresholds],
        Check(_pair_names),
        Doc('per-pair thresholds: {"SRC->DST": {key: value}}'),
    ] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = self.global_thresholds().order_problem()
        if problem is not None:
            raise ValueError(problem)
        for key, override in self.pairs.items():
            problem = self.global_thresholds().merged(override).order_problem()
            if problem is not None:
                raise ValueError(f"pairs[{key!r}]: {problem}")

    def global_thresholds(self) -> Thresholds:
        return Thresholds(**_threshold_values(self))

    def thresholds(self, src_site: str, dst_site: str) -> Thresholds:
        """The thresholds of the pair src_site -> dst_site: the global ones, with the keys its
        `pairs` entry sets replaced."""
        found = self.global_thresholds()
        override = self.pairs.get(f"{src_site}->{dst_site}")
        return found if override is None else found.merged(override)


@dataclass(frozen=True, kw_only=True)
class PerfsonarParams(NetworkParams):
    window: Annotated[
        Window,
        Gt(0),
        Le(MAX_WINDOW_SECONDS),
        Doc("look-back: an older result is stale (seconds, or '90m', '6h', '1d')"),
    ] = 6 * 3600.0


@dataclass(frozen=True, kw_only=True)
class Iperf3Params(NetworkParams):
    seconds: Annotated[int, Ge(1), Le(MAX_SECONDS), Doc("test length (iperf3 -t)")] = 5
    busy_retries: Annotated[
        int, Ge(0), Le(10), Doc("how often a busy server is asked again (backoff 1 s, 2 s..)")
    ] = 3
    reverse: Annotated[
        bool,
        Doc(
            "the server sends, lakeprobe receives (iperf3 -R): the pair's cell then holds the "
            "destination-to-source rate"
        ),
    ] = False
    # The test step lasts `seconds` plus any busy retries: only a much longer one is slow.
    slow_step_seconds: Annotated[float, Gt(0), Doc("a slower step gives WARNING")] = 90.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.slow_step_seconds <= self.seconds:
            raise ValueError(
                f"slow_step_seconds ({self.slow_step_seconds:g}) must be above seconds "
                f"({self.seconds}): every test would be slow"
            )
