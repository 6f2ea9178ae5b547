"""From a validated config to the jobs the scheduler runs: (probe, endpoint) and
(probe, site pair, mode), limited to what this deployment owns."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig
from lakeprobe.config.pairs import PairKey, selected_pairs, site_endpoints
from lakeprobe.config.select import select_endpoints
from lakeprobe.probes.context import ProbeParams, ProbeType
from lakeprobe.probes.registry import PROBE_TYPES
from lakeprobe.probes.target import PairTarget, Target
from lakeprobe.probes.tokens import DiscoveredToken, FileToken, TokenSource


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    """The identity of an endpoint's series: exactly its bounded metric labels."""

    probe: str
    site: str
    endpoint: str
    protocol: str

    @property
    def job_id(self) -> str:
        return f"{self.probe}|{self.site}|{self.endpoint}"

    @property
    def owner(self) -> str:
        return self.site

    def involves(self, site: str) -> bool:
        return site == self.site

    def describe(self) -> str:
        return f"{self.probe} {self.site}/{self.endpoint}"

    def labels(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "site": self.site,
            "endpoint": self.endpoint,
            "protocol": self.protocol,
        }


SeriesKey = TargetKey | PairKey


@dataclass(frozen=True, slots=True)
class ProbeJob:
    key: SeriesKey
    probe_type: ProbeType[Any, Any]
    target: Target | PairTarget
    params: ProbeParams
    interval: float
    timeout: float
    recheck_after: float | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What one deployment runs: everything (central), one site's share (`site`: its own
    endpoints, and the pairs where it moves the data), and/or one hash shard of N."""

    site: str | None = None
    shard: str | None = None  # "i/N"

    @classmethod
    def of(
        cls, config: LakeprobeConfig, site: str | None = None, shard: str | None = None
    ) -> Scope:
        return cls(site or config.server.site, shard or config.server.shard)

    def owns(self, key: SeriesKey) -> bool:
        if self.site is not None and key.owner != self.site:
            return False
        if self.shard is not None:
            index, count = (int(part) for part in self.shard.split("/"))
            return zlib.crc32(key.job_id.encode()) % count == index
        return True


def make_target(site: str, endpoint: EndpointConfig, default_ca_dir: Path | None) -> Target:
    token: TokenSource | None = None
    if endpoint.auth is not None and endpoint.auth.token_file is not None:
        token = FileToken(endpoint.auth.token_file)
    elif endpoint.auth is not None and endpoint.auth.bearer_discovery:
        token = DiscoveredToken()
    return Target(
        site=site,
        endpoint=endpoint.name,
        url=endpoint.url,
        test_dir=endpoint.test_dir,
        read_only=endpoint.read_only,
        reference_file=endpoint.reference_file,
        reference_adler32=endpoint.reference_adler32,
        token=token,
        ca_dir=endpoint.ca_dir or default_ca_dir,
    )


def build_plan(config: LakeprobeConfig, scope: Scope | None = None) -> list[ProbeJob]:
    scope = scope or Scope.of(config)
    jobs = []
    for probe in config.probes:
        probe_type = PROBE_TYPES[probe.type]
        params = probe_type.params_model.model_validate(probe.params)
        make = _pair_jobs if probe_type.pairwise else _endpoint_jobs
        jobs += [job for job in make(config, probe, probe_type, params) if scope.owns(job.key)]
    return jobs


def _endpoint_jobs(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: ProbeType[Any, Any],
    params: ProbeParams,
) -> list[ProbeJob]:
    jobs = []
    for site, endpoint in select_endpoints(config, probe, probe_type.schemes):
        target = make_target(site.name, endpoint, config.defaults.ca_dir)
        key = TargetKey(probe.name, site.name, endpoint.name, target.protocol)
        jobs.append(_job(config, probe, probe_type, params, key, target))
    return jobs


def _pair_jobs(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: ProbeType[Any, Any],
    params: ProbeParams,
) -> list[ProbeJob]:
    endpoints = site_endpoints(config, probe, probe_type)
    targets = {site: make_target(site, e, config.defaults.ca_dir) for site, e in endpoints.items()}
    jobs = []
    for src, dst in selected_pairs(config, probe, probe_type):
        for mode in getattr(params, "modes", ("pull",)):
            pair = PairTarget(targets[src], targets[dst], mode)
            key = PairKey(probe.name, src, dst, pair.protocol, mode)
            jobs.append(_job(config, probe, probe_type, params, key, pair))
    return jobs


def _job(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: ProbeType[Any, Any],
    params: ProbeParams,
    key: SeriesKey,
    target: Target | PairTarget,
) -> ProbeJob:
    return ProbeJob(
        key=key,
        probe_type=probe_type,
        target=target,
        params=params,
        interval=probe.interval or config.defaults.interval,
        timeout=probe.timeout or config.defaults.timeout,
        recheck_after=probe.recheck_after or config.defaults.recheck_after,
    )
