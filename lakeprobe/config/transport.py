"""Tokens never travel in cleartext by accident: a config that would send one over root://
or http:// must say so with the endpoint's `insecure_token_transport: true`."""

from __future__ import annotations

from typing import Any

from lakeprobe.config.model import EndpointConfig, LakeprobeConfig, ProbeConfig
from lakeprobe.config.select import select_endpoints
from lakeprobe.probes.core.context import ProbeType

# Cleartext scheme -> what to use instead.
CLEARTEXT = {"root": "roots:// (or https://)", "http": "https:// (or davs://)"}
# Probe types that send tokens of their own (not the endpoint's `auth`) to every target. By
# registry name: importing the token-authz probe for its name would load it in every process
# that reads a config (tests/test_cli_imports.py checks the name is registered).
OWN_TOKENS = frozenset({"token-authz"})


def cleartext_scheme(endpoint: EndpointConfig) -> str | None:
    """The endpoint's scheme if a token sent to it would travel in cleartext unasked."""
    scheme = endpoint.url.split("://", 1)[0]
    return scheme if scheme in CLEARTEXT and not endpoint.insecure_token_transport else None


def check_endpoints(config: LakeprobeConfig) -> list[str]:
    """One message per endpoint whose own `auth` would send a token in cleartext."""
    problems = []
    for i, site in enumerate(config.sites):
        for j, endpoint in enumerate(site.endpoints):
            scheme = cleartext_scheme(endpoint)
            if endpoint.auth is not None and scheme is not None:
                problems.append(
                    f"sites[{i}].endpoints[{j}].auth: a token over {scheme}:// travels in "
                    f"cleartext: use {CLEARTEXT[scheme]}, or set insecure_token_transport: true"
                )
    return problems


def check_probe(
    config: LakeprobeConfig, index: int, probe: ProbeConfig, probe_type: ProbeType[Any, Any]
) -> list[str]:
    """One message per endpoint the probe selects that its tokens would reach in cleartext:
    its own `auth`'s, or those a type such as token-authz brings."""
    if probe.auth is not None:
        at, tokens = f"probes[{index}].auth", "a token"
    elif probe_type.name in OWN_TOKENS:
        at, tokens = f"probes[{index}].targets", f"{probe_type.name} tokens"
    else:
        return []
    travel = "travels" if probe.auth is not None else "travel"
    places = {
        id(e): f"sites[{i}].endpoints[{j}]"
        for i, s in enumerate(config.sites)
        for j, e in enumerate(s.endpoints)
    }
    problems = []
    for site, endpoint in select_endpoints(config, probe, probe_type.schemes, probe_type.needs):
        if (scheme := cleartext_scheme(endpoint)) is not None:
            problems.append(
                f"{at}: {tokens} to {site.name}/{endpoint.name} over {scheme}:// {travel} in "
                f"cleartext: use {CLEARTEXT[scheme]} there, or set insecure_token_transport: true "
                f"on {places[id(endpoint)]}"
            )
    return problems
