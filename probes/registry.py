"""The one list of probe types. Config validation, the scheduler and the CLI all read it.

Two registries by target kind, so that mypy knows which types take a single endpoint (Target)
and which an ordered site pair (PairTarget); PROBE_TYPES is the one lookup by name."""

from __future__ import annotations

from typing import Any, TypeVar

from lakeprobe.probes.authz import token_authz
from lakeprobe.probes.core.context import AnyProbeType, EndpointProbeType, PairProbeType, ProbeType
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.storage import webdav, xrootd
from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

T = TypeVar("T", Target, PairTarget)


def _by_name(*probe_types: ProbeType[Any, T]) -> dict[str, ProbeType[Any, T]]:
    return {probe_type.name: probe_type for probe_type in probe_types}


# Each type has its own params model; callers validate params with that type's model.
ENDPOINT_PROBE_TYPES: dict[str, EndpointProbeType] = _by_name(
    xrootd.PROBE_TYPE, webdav.PROBE_TYPE, token_authz.PROBE_TYPE
)
PAIR_PROBE_TYPES: dict[str, PairProbeType] = _by_name(http_tpc.PROBE_TYPE, xrootd_tpc.PROBE_TYPE)

PROBE_TYPES: dict[str, AnyProbeType] = {**ENDPOINT_PROBE_TYPES, **PAIR_PROBE_TYPES}
