"""From a validated config to the jobs the scheduler runs: (probe, endpoint) and
(probe, site pair, mode), limited to what this deployment owns."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeprobe.config.jobs import ProbeJob as ProbeJob
from lakeprobe.config.jobs import T
from lakeprobe.config.jobs import TargetKey as TargetKey
from lakeprobe.config.jobs import TokenKey as TokenKey
from lakeprobe.config.jobs import TokenUse as TokenUse
from lakeprobe.config.model import (
    AuthConfig,
    Defaults,
    EndpointConfig,
    LakeprobeConfig,
    ProbeConfig,
    SiteConfig,
)
from lakeprobe.config.pairs import NetworkKey, PairKey, pair_key, selected_pairs, site_endpoints
from lakeprobe.config.select import select_endpoints
from lakeprobe.probes.core.checksums import ChecksumPolicy
from lakeprobe.probes.core.context import EndpointProbeType, PairProbeType, ProbeParams, ProbeType
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.oidc import OidcToken
from lakeprobe.probes.credentials.oidcclients import OidcClients
from lakeprobe.probes.credentials.tokens import DiscoveredToken, FileToken, TokenSource
from lakeprobe.probes.registry import ENDPOINT_PROBE_TYPES, PAIR_PROBE_TYPES

SeriesKey = TargetKey | PairKey | NetworkKey


# One source object per (site, endpoint, auth, CA directory) within a plan.
class TokenSources:
    """The token sources of one plan, one per (site, endpoint, auth, CA directory), so targets
    that share an endpoint's auth share its token. OIDC clients come from `oidc`: the
    daemon's, so their issued tokens outlive reloads."""

    def __init__(self, oidc: OidcClients | None = None) -> None:
        self._oidc = oidc if oidc is not None else OidcClients()
        self._made: dict[tuple[str, str, AuthConfig, Path | None], TokenSource | None] = {}

    def source(
        self, site: SiteConfig, endpoint: EndpointConfig, auth: AuthConfig, ca_dir: Path | None
    ) -> TokenSource | None:
        key = (site.name, endpoint.name, auth, ca_dir)
        if key not in self._made:
            self._made[key] = self._new(auth, ca_dir, endpoint.audience)
        return self._made[key]

    def _new(
        self, auth: AuthConfig, ca_dir: Path | None, audience: str | None
    ) -> TokenSource | None:
        if auth.token_file is not None:
            return FileToken(auth.token_file)
        if auth.bearer_discovery:
            return DiscoveredToken()
        if auth.oidc is not None:
            client = self._oidc.client(auth.oidc.settings(), ca_dir, auth.oidc.refresh_before)
            return OidcToken(client, auth.oidc.scope, auth.oidc.audience or audience)
        return None


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


_DEFAULTS = Defaults()  # for make_target's callers without a config (the CLI)


def make_target(
    site: SiteConfig,
    endpoint: EndpointConfig,
    default_ca_dir: Path | None,
    auth: AuthConfig | None = None,
    sources: TokenSources | None = None,
    default_checksums: ChecksumPolicy = _DEFAULTS.checksums,
) -> Target:
    """The endpoint (one of `site`'s) as a probe target. `auth` (a probe's own) replaces the
    endpoint's; `sources` shares token sources between the targets of one plan;
    `default_checksums` (defaults.checksums) applies where the endpoint sets none."""
    ca_dir = endpoint.ca_dir or default_ca_dir
    auth = auth if auth is not None else endpoint.auth
    token = None
    if auth is not None:
        token = (sources or TokenSources()).source(site, endpoint, auth, ca_dir)
    return Target(
        site=site.name,
        endpoint=endpoint.name,
        url=endpoint.url,
        test_dir=endpoint.test_dir,
        read_only=endpoint.read_only,
        reference_file=endpoint.reference_file,
        reference_adler32=endpoint.reference_adler32,
        token=token,
        ca_dir=ca_dir,
        audience=endpoint.audience,
        redirect_hosts=_redirect_hosts(site, endpoint),
        insecure_token_transport=endpoint.insecure_token_transport,
        checksums=endpoint.checksums or default_checksums,
        tape=endpoint.tape.qos() if endpoint.tape is not None else None,
        perfsonar=endpoint.perfsonar.archive() if endpoint.perfsonar is not None else None,
    )


def _redirect_hosts(site: SiteConfig, endpoint: EndpointConfig) -> frozenset[str]:
    """Where the endpoint's redirects may lead: its own patterns and its site's hosts (its
    own included: always allowed anyway). Targets without patterns share the site's set."""
    return (
        site.hosts | frozenset(endpoint.redirect_hosts) if endpoint.redirect_hosts else site.hosts
    )


def build_plan(
    config: LakeprobeConfig, scope: Scope | None = None, oidc: OidcClients | None = None
) -> list[ProbeJob[Any]]:
    """The jobs `scope` runs. `oidc`: the owner's OIDC clients (new ones when None)."""
    scope = scope or Scope.of(config)
    jobs: list[ProbeJob[Any]] = []
    sources = TokenSources(oidc)
    for probe in config.probes:
        made: list[ProbeJob[Any]]
        if probe.type in PAIR_PROBE_TYPES:
            made = _pair_jobs(config, probe, PAIR_PROBE_TYPES[probe.type], sources)
        else:
            made = _endpoint_jobs(config, probe, ENDPOINT_PROBE_TYPES[probe.type], sources)
        jobs += [job for job in made if scope.owns(job.key)]
    return jobs


def plan_tokens(jobs: list[ProbeJob[Any]]) -> dict[TokenKey, TokenSource]:
    """Each configured token source of a plan once, by its series identity."""
    return {key: source for job in jobs for key, source in job.tokens}


def _endpoint_jobs(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: EndpointProbeType,
    sources: TokenSources,
) -> list[ProbeJob[Target]]:
    params = validate_params(probe_type.params_model, probe.params)
    jobs = []
    for site, endpoint in select_endpoints(config, probe, probe_type.schemes, probe_type.needs):
        target = make_target(site, endpoint, config.defaults.ca_dir, probe.auth, sources,
                             config.defaults.checksums)  # fmt: skip
        key = TargetKey(probe.name, site.name, endpoint.name, target.protocol)
        jobs.append(_job(config, probe, probe_type, params, key, target))
    return jobs


def _pair_jobs(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: PairProbeType,
    sources: TokenSources,
) -> list[ProbeJob[PairTarget]]:
    params = validate_params(probe_type.params_model, probe.params)
    endpoints = site_endpoints(config, probe, probe_type)
    sites = {site.name: site for site in config.sites}
    ca_dir = config.defaults.ca_dir
    targets = {
        name: make_target(sites[name], e, ca_dir, probe.auth, sources, config.defaults.checksums)
        for name, e in endpoints.items()
    }
    jobs = []
    for src, dst in selected_pairs(config, probe, probe_type):
        for mode in params.modes:
            pair = PairTarget(targets[src], targets[dst], mode)
            key = pair_key(probe.name, probe_type, pair)
            jobs.append(_job(config, probe, probe_type, params, key, pair))
    return jobs


def _job(
    config: LakeprobeConfig,
    probe: ProbeConfig,
    probe_type: ProbeType[Any, T],
    params: ProbeParams,
    key: SeriesKey,
    target: T,
) -> ProbeJob[T]:
    return ProbeJob(
        key=key,
        probe_type=probe_type,
        target=target,
        params=params,
        interval=probe.interval or config.defaults.interval,
        timeout=probe.timeout or config.defaults.timeout,
        recheck_after=probe.recheck_after or config.defaults.recheck_after,
        tokens=_token_uses(probe, target),
    )


def _token_uses(probe: ProbeConfig, target: Target | PairTarget) -> tuple[TokenUse, ...]:
    owner = probe.name if probe.auth is not None else ""
    return tuple(
        (TokenKey(t.site, t.endpoint, owner), t.token)
        for t in target.endpoints
        if t.token is not None
    )
