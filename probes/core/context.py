"""What a probe gets besides its target and parameters, and the probe-type contract."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Protocol, TypeVar

from lakeprobe.probes.core.outcome import ProbeResult
from lakeprobe.probes.core.paramspec import PARAMS_CONFIG, Check, Doc, Gt, MinLen
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import MODES, PairTarget, Target


@dataclass(frozen=True, kw_only=True)
class ProbeParams:
    """Parameters every probe type accepts; each type extends this dataclass
    (probes/core/paramspec.py: how fields are declared and validated)."""

    # Finite numbers only: probes compute deadlines from them (stall_seconds: .inf is an error).
    __pydantic_config__ = PARAMS_CONFIG

    slow_step_seconds: Annotated[float, Gt(0), Doc("a slower step gives WARNING")] = 10.0


@dataclass(slots=True)
class ProbeContext:
    """What a run is given besides its target and parameters."""

    steps: StepRecorder
    deadline: float  # event-loop time by which the whole run must end
    probe_host: str  # this daemon's host name, part of every test-file name
    log: logging.Logger
    state: StateStore  # what runs remember (probes/core/state.py), owned by the daemon
    resources: ProbeResources  # what outlives runs: copy threads, OIDC clients, notices
    # Asked for by hand (`lakeprobe run`): checks that otherwise wait their turn
    # (probes/common/cadence.py) run now.
    on_demand: bool = False

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    @property
    def step_deadline(self) -> float:
        """Event-loop time by which normal steps must end: cleanup keeps the rest."""
        return self.steps.step_deadline


P_contra = TypeVar("P_contra", bound=ProbeParams, contravariant=True)
T_contra = TypeVar("T_contra", bound=Target | PairTarget, contravariant=True)


class Probe(Protocol[P_contra, T_contra]):
    async def __call__(
        self, target: T_contra, params: P_contra, ctx: ProbeContext
    ) -> ProbeResult: ...


P = TypeVar("P", bound=ProbeParams)
T = TypeVar("T", bound=Target | PairTarget)


def copy_modes(modes: tuple[str, ...]) -> tuple[str, ...]:
    """PairParams.modes' check: distinct copy modes."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct values of {', '.join(MODES)}: {modes}")
    return modes


@dataclass(frozen=True, kw_only=True)
class PairParams(ProbeParams):
    """Parameters every pair (third-party copy) probe accepts."""

    modes: Annotated[tuple[str, ...], MinLen(1), Check(copy_modes), Doc("pull, push or both")] = (
        "pull",
    )


@dataclass(frozen=True, slots=True)
class ProbeType(Generic[P, T]):
    """One entry of the probe registry (probes/registry.py). `T` is what it runs against: a
    single endpoint (Target) or an ordered pair of sites (PairTarget)."""

    name: str
    description: str
    schemes: frozenset[str]  # URL schemes the probe can test
    params_model: type[P]
    factory: Callable[[], Probe[P, T]]
    modes: tuple[str, ...] = ()  # pair types only: the modes this type supports
    # The endpoint config block a target must have (e.g. "tape", "perfsonar"); the probe
    # runs only against endpoints (pair types: sites' endpoints) that configure it.
    needs: str | None = None
    # Pair types only: NETWORK for the network family, whose modes are IP versions and whose
    # series are (src_site, dst_site, ip_version), not a copy's (protocol, mode).
    family: str | None = None


NETWORK = "network"  # ProbeType.family of the network probe types (probes/network)


# The two kinds of probe type. ProbeType is invariant in its target, so mypy rejects a pair
# probe where an endpoint probe is expected, and a Target handed to a pair probe's job.
EndpointProbeType = ProbeType[Any, Target]
PairProbeType = ProbeType[Any, PairTarget]
AnyProbeType = EndpointProbeType | PairProbeType
