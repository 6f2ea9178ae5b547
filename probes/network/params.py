"""Parameters of the network probes (perfsonar, iperf3): the IP versions a pair is measured
over, and the thresholds that judge a pair, for every pair and per pair (`pairs:`).

A per-pair entry (`"SRC->DST": {...}`) overrides only the keys it sets; `null` turns that
threshold off for the pair. Throughput is judged from below (critical <= warning), loss from
above (warning <= critical); both orders are checked for every pair as it ends up.
"""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from lakeprobe.probes.clients.iperf3 import MAX_SECONDS
from lakeprobe.probes.core.context import PairParams

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


Window = Annotated[float, BeforeValidator(parse_window)]


class Thresholds(BaseModel):
    """When a pair's numbers are WARNING or CRITICAL; None: that threshold is off."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    throughput_warning_bps: float | None = Field(
        None, gt=0, description="throughput below this (bits/s) gives WARNING"
    )
    throughput_critical_bps: float | None = Field(
        None, gt=0, description="throughput below this (bits/s) gives CRITICAL"
    )
    loss_warning: float | None = Field(
        0.001, ge=0, le=1, description="packet loss ratio above this gives WARNING"
    )
    loss_critical: float | None = Field(
        0.01, ge=0, le=1, description="packet loss ratio above this gives CRITICAL"
    )

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

    def merged(self, override: Thresholds) -> Thresholds:
        """These thresholds with the keys `override` sets replaced."""
        update = {name: getattr(override, name) for name in override.model_fields_set}
        return self.model_copy(update=update)


class NetworkParams(PairParams, Thresholds):
    modes: tuple[str, ...] = Field(
        IP_MODES, description="ipv4, ipv6 or both: one series per IP version", min_length=1
    )
    pairs: dict[str, Thresholds] = Field(
        default_factory=dict, description='per-pair thresholds: {"SRC->DST": {key: value}}'
    )

    # Same name as PairParams' validator: replaces it (pull/push are not network modes).
    @field_validator("modes")
    @classmethod
    def _known_modes(cls, modes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in modes if m not in IP_MODES]
        if unknown or len(set(modes)) != len(modes):
            raise ValueError(f"modes must be distinct values of {', '.join(IP_MODES)}: {modes}")
        return modes

    @field_validator("pairs")
    @classmethod
    def _pair_names(cls, pairs: dict[str, Thresholds]) -> dict[str, Thresholds]:
        for key in pairs:
            match = _PAIR.match(key)
            if match is None or match[1] == match[2]:
                raise ValueError(f"{key!r:.80} is not 'SRC->DST' with two different site names")
        return pairs

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problem = self.global_thresholds().order_problem()
        if problem is not None:
            raise ValueError(problem)
        for key, override in self.pairs.items():
            problem = self.global_thresholds().merged(override).order_problem()
            if problem is not None:
                raise ValueError(f"pairs[{key!r}]: {problem}")
        return self

    def global_thresholds(self) -> Thresholds:
        return Thresholds(**{name: getattr(self, name) for name in Thresholds.model_fields})

    def thresholds(self, src_site: str, dst_site: str) -> Thresholds:
        """The thresholds of the pair src_site -> dst_site: the global ones, with the keys its
        `pairs` entry sets replaced."""
        found = self.global_thresholds()
        override = self.pairs.get(f"{src_site}->{dst_site}")
        return found if override is None else found.merged(override)


class PerfsonarParams(NetworkParams):
    window: Window = Field(
        6 * 3600.0,
        gt=0,
        le=MAX_WINDOW_SECONDS,
        description="look-back: an older result is stale (seconds, or '90m', '6h', '1d')",
    )


class Iperf3Params(NetworkParams):
    seconds: int = Field(5, ge=1, le=MAX_SECONDS, description="test length (iperf3 -t)")
    busy_retries: int = Field(
        3, ge=0, le=10, description="how often a busy server is asked again (backoff 1 s, 2 s..)"
    )
    reverse: bool = Field(
        False,
        description="the server sends, lakeprobe receives (iperf3 -R): the pair's cell then "
        "holds the destination-to-source rate",
    )
    # The test step lasts `seconds` plus any busy retries: only a much longer one is slow.
    slow_step_seconds: float = Field(90.0, gt=0, description="a slower step gives WARNING")

    @model_validator(mode="after")
    def _test_fits(self) -> Self:
        if self.slow_step_seconds <= self.seconds:
            raise ValueError(
                f"slow_step_seconds ({self.slow_step_seconds:g}) must be above seconds "
                f"({self.seconds}): every test would be slow"
            )
        return self
