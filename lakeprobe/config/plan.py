"""From a validated config to the list of (probe, target) jobs the scheduler runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig, SiteConfig
from lakeprobe.probes.context import ProbeParams, ProbeType
from lakeprobe.probes.registry import PROBE_TYPES
from lakeprobe.probes.target import Target
from lakeprobe.probes.tokens import DiscoveredToken, FileToken, TokenSource


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    """The identity of a target's series: exactly the bounded metric labels."""

    probe: str
    site: str
    endpoint: str
    protocol: str

    @property
    def job_id(self) -> str:
        return f"{self.probe}|{self.site}|{self.endpoint}"


@dataclass(frozen=True, slots=True)
class ProbeJob:
    key: TargetKey
    probe_type: ProbeType[Any, Any]
    target: Target
    params: ProbeParams
    interval: float
    timeout: float


def select_endpoints(
    config: LakeprobeConfig, probe: ProbeConfig, schemes: frozenset[str]
) -> list[tuple[SiteConfig, EndpointConfig]]:
    selector = probe.targets
    chosen = []
    for site in config.sites:
        if selector.sites is not None and site.name not in selector.sites:
            continue
        for endpoint in site.endpoints:
            scheme = endpoint.url.split("://", 1)[0]
            named = {endpoint.name, f"{site.name}/{endpoint.name}"}
            if scheme not in schemes:
                continue
            if selector.protocols is not None and scheme not in selector.protocols:
                continue
            if selector.endpoints is not None and not named & set(selector.endpoints):
                continue
            chosen.append((site, endpoint))
    return chosen


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


def build_plan(config: LakeprobeConfig) -> list[ProbeJob]:
    jobs = []
    for probe in config.probes:
        probe_type = PROBE_TYPES[probe.type]
        params = probe_type.params_model.model_validate(probe.params)
        for site, endpoint in select_endpoints(config, probe, probe_type.schemes):
            target = make_target(site.name, endpoint, config.defaults.ca_dir)
            key = TargetKey(probe.name, site.name, endpoint.name, target.protocol)
            jobs.append(
                ProbeJob(
                    key=key,
                    probe_type=probe_type,
                    target=target,
                    params=params,
                    interval=probe.interval or config.defaults.interval,
                    timeout=probe.timeout or config.defaults.timeout,
                )
            )
    return jobs
