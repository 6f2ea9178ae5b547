"""Which endpoints a probe's `targets` selector picks."""

from __future__ import annotations

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig, SiteConfig


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
