"""Pair probes (third-party copies, network paths): ordered site pairs, their keys and their
validation."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig
from lakeprobe.config.select import select_endpoints
from lakeprobe.probes.core.context import NETWORK, PairParams, PairProbeType
from lakeprobe.probes.core.target import PairTarget

PAIR_SEPARATOR = "->"


@dataclass(frozen=True, slots=True, order=True)
class PairKey:
    """The identity of a site pair's series: exactly its bounded metric labels."""

    probe: str
    src_site: str
    dst_site: str
    protocol: str
    mode: str

    @property
    def job_id(self) -> str:
        return f"{self.probe}|{self.src_site}{PAIR_SEPARATOR}{self.dst_site}|{self.mode}"

    @property
    def owner(self) -> str:
        """The site whose deployment runs this pair: the side that moves the data."""
        return self.dst_site if self.mode == "pull" else self.src_site

    def involves(self, site: str) -> bool:
        return site in (self.src_site, self.dst_site)

    def describe(self) -> str:
        return f"{self.probe} {self.src_site}{PAIR_SEPARATOR}{self.dst_site} ({self.mode})"

    def labels(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "src_site": self.src_site,
            "dst_site": self.dst_site,
            "protocol": self.protocol,
            "mode": self.mode,
        }


# A network probe's modes are IP versions; the series label carries the bare number.
IP_VERSIONS = {"ipv4": "4", "ipv6": "6"}


@dataclass(frozen=True, slots=True, order=True)
class NetworkKey:
    """The identity of a site pair's network series (the network family's probe types, whose
    modes are IP versions): exactly its bounded metric labels. No protocol label: perfSONAR
    and iperf3 measure the same path, told apart by `probe`."""

    probe: str
    src_site: str
    dst_site: str
    ip_version: str  # "4" or "6"

    @property
    def job_id(self) -> str:
        return f"{self.probe}|{self.src_site}{PAIR_SEPARATOR}{self.dst_site}|ipv{self.ip_version}"

    @property
    def owner(self) -> str:
        """The source site: a per-site install measures the paths its site sends on."""
        return self.src_site

    def involves(self, site: str) -> bool:
        return site in (self.src_site, self.dst_site)

    def describe(self) -> str:
        return f"{self.probe} {self.src_site}{PAIR_SEPARATOR}{self.dst_site} (IPv{self.ip_version})"

    def labels(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "src_site": self.src_site,
            "dst_site": self.dst_site,
            "ip_version": self.ip_version,
        }


def pair_key(probe: str, probe_type: PairProbeType, pair: PairTarget) -> PairKey | NetworkKey:
    """The series identity of `pair` run by probe `probe` of type `probe_type`."""
    src, dst = pair.source.site, pair.destination.site
    if probe_type.family == NETWORK:
        return NetworkKey(probe, src, dst, IP_VERSIONS[pair.mode])
    return PairKey(probe, src, dst, pair.protocol, pair.mode)


def site_endpoints(
    config: LakeprobeConfig, probe: ProbeConfig, probe_type: PairProbeType
) -> dict[str, EndpointConfig]:
    """The one selected endpoint of each site (validation rejects sites with several)."""
    chosen: dict[str, EndpointConfig] = {}
    for site, endpoint in select_endpoints(config, probe, probe_type.schemes, probe_type.needs):
        chosen.setdefault(site.name, endpoint)
    return chosen


def selected_pairs(
    config: LakeprobeConfig, probe: ProbeConfig, probe_type: PairProbeType
) -> list[tuple[str, str]]:
    sites = site_endpoints(config, probe, probe_type)
    pairs = list(permutations(sites, 2))
    if probe.targets.pairs is not None:
        wanted = {tuple(p.split(PAIR_SEPARATOR, 1)) for p in probe.targets.pairs}
        pairs = [pair for pair in pairs if pair in wanted]
    return pairs


def check_pairs(
    config: LakeprobeConfig,
    at: str,
    probe: ProbeConfig,
    probe_type: PairProbeType,
    params: PairParams,
) -> list[str]:
    problems = []
    unsupported = [m for m in params.modes if m not in probe_type.modes]
    if unsupported:
        problems.append(
            f"{at}.params.modes: probe type {probe.type!r} supports "
            f"{', '.join(probe_type.modes)}, not {', '.join(unsupported)}"
        )
    per_site: dict[str, list[str]] = {}
    for site, endpoint in select_endpoints(config, probe, probe_type.schemes, probe_type.needs):
        per_site.setdefault(site.name, []).append(endpoint.name)
    for site_name, names in per_site.items():
        if len(names) > 1:
            problems.append(
                f"{at}.targets: site {site_name!r} has {len(names)} endpoints for "
                f"{probe.type!r} ({', '.join(names)}): select one with "
                "targets.endpoints"
            )
    for j, pair in enumerate(probe.targets.pairs or []):
        src, sep, dst = pair.partition(PAIR_SEPARATOR)
        if not sep or src == dst or src not in per_site or dst not in per_site:
            problems.append(
                f"{at}.targets.pairs[{j}]: {pair!r} is not 'SRC->DST' of two "
                f"different sites with a {probe.type!r} endpoint"
            )
    if not problems and not selected_pairs(config, probe, probe_type):
        problems.append(
            f"{at}.targets: selects no site pair (needs two sites with a {probe.type!r} endpoint)"
        )
    return problems
