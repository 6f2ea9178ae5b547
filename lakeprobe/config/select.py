"""Which endpoints a probe's `targets` selector picks."""

from __future__ import annotations

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig, SiteConfig


def select_endpoints(
    config: LakeprobeConfig, probe: ProbeConfig, schemes: frozenset[str], needs: str | None = None
) -> list[tuple[SiteConfig, EndpointConfig]]:
    """`needs`: only endpoints that configure this block (ProbeType.needs, e.g. "tape").
    A perfSONAR archive endpoint is only ever selected by the probe that needs it."""
    selector = probe.targets
    # Sets once: selectors may be long lists, and this runs for every probe and endpoint.
    sites = None if selector.sites is None else set(selector.sites)
    protocols = None if selector.protocols is None else set(selector.protocols)
    endpoints = None if selector.endpoints is None else set(selector.endpoints)
    chosen = []
    for site in config.sites:
        if sites is not None and site.name not in sites:
            continue
        for endpoint in site.endpoints:
            scheme = endpoint.url.split("://", 1)[0]
            named = {endpoint.name, f"{site.name}/{endpoint.name}"}
            if scheme not in schemes:
                continue
            if protocols is not None and scheme not in protocols:
                continue
            if endpoints is not None and not named & endpoints:
                continue
            if needs is not None and getattr(endpoint, needs) is None:
                continue
            if needs != "perfsonar" and endpoint.perfsonar is not None:
                continue  # an archive of measurements, not storage: only the perfsonar probe
            chosen.append((site, endpoint))
    return chosen
