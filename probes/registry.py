"""The one list of probe types. Config validation, the scheduler and the CLI all read it.

Two registries by target kind, so that mypy knows which types take a single endpoint (Target)
and which an ordered site pair (PairTarget); PROBE_TYPES is the one lookup by name.

Each entry names the module that defines the type and imports it on first lookup: a
`lakeprobe run webdav` process never loads the XRootD, TPC or token probes. Listing names
(iteration, `in`, `len`) imports nothing."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lakeprobe.probes.core.context import AnyProbeType, EndpointProbeType, PairProbeType, ProbeType
from lakeprobe.probes.core.target import PairTarget, Target

if TYPE_CHECKING:  # mypy checks that each module's PROBE_TYPE is of its registry's kind
    from lakeprobe.probes.authz import token_authz
    from lakeprobe.probes.integrity import fixity, injection
    from lakeprobe.probes.network import iperf3, perfsonar
    from lakeprobe.probes.storage import webdav, xrootd
    from lakeprobe.probes.tape import recall
    from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

    _ENDPOINT_CHECKED: tuple[EndpointProbeType, ...] = (
        xrootd.PROBE_TYPE,
        webdav.PROBE_TYPE,
        token_authz.PROBE_TYPE,
        recall.PROBE_TYPE,
        fixity.PROBE_TYPE,
        injection.PROBE_TYPE,
    )
    _PAIR_CHECKED: tuple[PairProbeType, ...] = (
        http_tpc.PROBE_TYPE,
        xrootd_tpc.PROBE_TYPE,
        perfsonar.PROBE_TYPE,
        iperf3.PROBE_TYPE,
    )

T = TypeVar("T", Target, PairTarget)
_PACKAGE = "lakeprobe.probes"


class LazyProbeTypes(Mapping[str, ProbeType[Any, T]], Generic[T]):
    """Probe type name -> type, importing `<_PACKAGE>.<module>` when the name is looked up.
    The loaded type must carry that name and be of this registry's kind (pair types have
    modes, endpoint types none), so the static type above holds at run time too."""

    def __init__(self, modules: Mapping[str, str], pair: bool) -> None:
        self._modules = dict(modules)
        self._pair = pair
        self._loaded: dict[str, ProbeType[Any, T]] = {}

    def __getitem__(self, name: str) -> ProbeType[Any, T]:
        loaded = self._loaded.get(name)
        if loaded is None:
            module = importlib.import_module(f"{_PACKAGE}.{self._modules[name]}")
            loaded = module.PROBE_TYPE
            if loaded.name != name or bool(loaded.modes) != self._pair:
                kind = "pair" if self._pair else "endpoint"
                raise TypeError(f"{module.__name__}.PROBE_TYPE is not the {kind} type {name!r}")
            self._loaded[name] = loaded
        return loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules


class _AnyProbeTypes(Mapping[str, AnyProbeType]):
    """Both registries as one lookup by name, as lazy as they are."""

    def __getitem__(self, name: str) -> AnyProbeType:
        if name in ENDPOINT_PROBE_TYPES:
            return ENDPOINT_PROBE_TYPES[name]
        return PAIR_PROBE_TYPES[name]

    def __iter__(self) -> Iterator[str]:
        yield from ENDPOINT_PROBE_TYPES
        yield from PAIR_PROBE_TYPES

    def __len__(self) -> int:
        return len(ENDPOINT_PROBE_TYPES) + len(PAIR_PROBE_TYPES)

    def __contains__(self, name: object) -> bool:
        return name in ENDPOINT_PROBE_TYPES or name in PAIR_PROBE_TYPES


# Each type has its own params model; callers validate params with that type's model.
ENDPOINT_PROBE_TYPES: LazyProbeTypes[Target] = LazyProbeTypes(
    {
        "xrootd": "storage.xrootd",
        "webdav": "storage.webdav",
        "token-authz": "authz.token_authz",
        "tape-recall": "tape.recall",
        "fixity": "integrity.fixity",
        "corruption": "integrity.injection",
    },
    pair=False,
)
PAIR_PROBE_TYPES: LazyProbeTypes[PairTarget] = LazyProbeTypes(
    {
        "http-tpc": "transfer.http_tpc",
        "xrootd-tpc": "transfer.xrootd_tpc",
        "perfsonar": "network.perfsonar",
        "iperf3": "network.iperf3",
    },
    pair=True,
)
PROBE_TYPES: Mapping[str, AnyProbeType] = _AnyProbeTypes()
