"""Read and validate a config file. Every error names its YAML path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lakeprobe.config.model import LakeprobeConfig, ProbeConfig
from lakeprobe.config.pairs import check_pairs, site_endpoints
from lakeprobe.config.reader import MAX_BYTES, UnreadableConfig, decode, read_yaml
from lakeprobe.config.select import select_endpoints
from lakeprobe.config.transport import check_endpoints, check_probe
from lakeprobe.probes.core.context import PairProbeType
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.registry import PAIR_PROBE_TYPES, PROBE_TYPES

# Bounds on the work a config asks for, so that no file makes validation or the plan hang:
# a 170-site lake with 4 endpoints each and 10 probes has 6800 (probe, endpoint) combinations.
MAX_ENDPOINTS = 10_000
MAX_COMBINATIONS = 100_000
MAX_PAIR_SITES = 300  # sites of one pair probe: 300 make 89,700 ordered pairs
MAX_TARGETS = 250_000  # jobs of the plan; a 150-site transfer matrix has ~70,000

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "unexpected_keyword_argument": "unknown key",  # probe params (dataclasses)
    "missing": "required key is missing",
}


class ConfigError(Exception):
    """An invalid config. `messages` has one line per problem, each starting with its path."""

    def __init__(self, source: str, messages: list[str]) -> None:
        self.source = source
        self.messages = messages
        super().__init__("\n".join(f"{source}: {m}" for m in messages))


def yaml_path(loc: Sequence[int | str]) -> str:
    """('sites', 2, 'endpoints', 0, 'url') -> 'sites[2].endpoints[0].url'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _describe(error: Any, prefix: Sequence[int | str] = ()) -> str:
    message = _MESSAGES.get(error["type"], error["msg"])
    message = message.removeprefix("Value error, ")
    return f"{yaml_path([*prefix, *error['loc']])}: {message}"


def load_config(path: Path) -> LakeprobeConfig:
    """The config in file `path`. Raises ConfigError, and only ConfigError, for any content."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read: {error.strerror or error}"]) from None
    try:
        text = decode(data)
    except UnreadableConfig as error:
        raise ConfigError(str(path), [str(error)]) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> LakeprobeConfig:
    """The config in `text`. Raises ConfigError, and only ConfigError, for any text."""
    try:
        data = read_yaml(text)
    except UnreadableConfig as error:
        raise ConfigError(source, [str(error)]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping with sites and probes"])
    try:
        return _validate(data, source)
    except (ValueError, OverflowError, TypeError, RecursionError) as error:
        # A validator bug, not a config problem: still the user's file that triggered it.
        problem = " ".join(str(error).split())[:200]
        raise ConfigError(source, [f"(top level): cannot validate: {problem}"]) from None


def _validate(data: dict[Any, Any], source: str) -> LakeprobeConfig:
    try:
        config = LakeprobeConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, [_describe(e) for e in error.errors()]) from None
    if too_big := _check_size(config):
        raise ConfigError(source, too_big)
    problems = check_endpoints(config)
    problems += [m for i, probe in enumerate(config.probes) for m in _check_probe(config, i, probe)]
    if not problems:
        targets = sum(_targets(config, probe) for probe in config.probes)
        if targets > MAX_TARGETS:
            problems.append(
                f"probes: {targets} targets, more than the {MAX_TARGETS} a config may schedule"
            )
    if problems:
        raise ConfigError(source, problems)
    return config


def _check_size(config: LakeprobeConfig) -> list[str]:
    endpoints = sum(len(site.endpoints) for site in config.sites)
    if endpoints > MAX_ENDPOINTS:
        return [f"sites: {endpoints} endpoints, more than the {MAX_ENDPOINTS} a config may have"]
    if len(config.probes) * endpoints > MAX_COMBINATIONS:
        return [
            f"probes: {len(config.probes)} probes and {endpoints} endpoints make more than "
            f"the {MAX_COMBINATIONS} (probe, endpoint) combinations a config may have"
        ]
    return []


def _targets(config: LakeprobeConfig, probe: ProbeConfig) -> int:
    """How many jobs the probe makes (pair probes: at most), without making them."""
    probe_type = PAIR_PROBE_TYPES.get(probe.type)
    if probe_type is None:
        endpoint_type = PROBE_TYPES[probe.type]
        return len(select_endpoints(config, probe, endpoint_type.schemes, endpoint_type.needs))
    sites = len(site_endpoints(config, probe, probe_type))
    pairs = sites * (sites - 1)
    if probe.targets.pairs is not None:
        pairs = min(pairs, len(set(probe.targets.pairs)))
    modes = validate_params(probe_type.params_model, probe.params).modes
    return pairs * len(modes)


def _check_probe(config: LakeprobeConfig, index: int, probe: ProbeConfig) -> list[str]:
    at = f"probes[{index}]"
    probe_type = PROBE_TYPES.get(probe.type)
    if probe_type is None:
        known = ", ".join(sorted(PROBE_TYPES))
        return [f"{at}.type: unknown probe type {probe.type!r} (known: {known})"]
    problems = []
    try:
        params = validate_params(probe_type.params_model, probe.params)
    except ValidationError as error:
        return [_describe(e, ("probes", index, "params")) for e in error.errors()]
    interval = probe.interval or config.defaults.interval
    timeout = probe.timeout or config.defaults.timeout
    if timeout > interval:
        problems.append(f"{at}.timeout: {timeout:g} s is longer than the interval {interval:g} s")
    problems += _check_selector(config, at, probe_type.schemes, probe, probe_type.needs)
    pair_type = PAIR_PROBE_TYPES.get(probe.type)
    if pair_type is None and probe.targets.pairs is not None:
        problems.append(f"{at}.targets.pairs: only pair probes (third-party copies) take pairs")
    elif pair_type is not None and not problems:
        problems += _check_pair_sites(config, at, probe, pair_type) or check_pairs(
            config, at, probe, pair_type, params
        )
    if not problems:
        problems += check_probe(config, index, probe, probe_type)
    return problems


def _check_pair_sites(
    config: LakeprobeConfig, at: str, probe: ProbeConfig, probe_type: PairProbeType
) -> list[str]:
    sites = len(site_endpoints(config, probe, probe_type))
    if sites <= MAX_PAIR_SITES:
        return []
    return [
        f"{at}.targets: selects {sites} sites, more than the {MAX_PAIR_SITES} a pair probe "
        "may pair up: narrow it with targets.sites"
    ]


def _check_selector(
    config: LakeprobeConfig, at: str, schemes: frozenset[str], probe: ProbeConfig,
    needs: str | None = None,
) -> list[str]:  # fmt: skip
    selector, problems = probe.targets, []
    site_names = {s.name for s in config.sites}
    endpoint_names = {e.name for s in config.sites for e in s.endpoints}
    endpoint_names |= {f"{s.name}/{e.name}" for s in config.sites for e in s.endpoints}
    tested = ", ".join(sorted(schemes))
    for j, site in enumerate(selector.sites or []):
        if site not in site_names:
            problems.append(f"{at}.targets.sites[{j}]: unknown site {site!r}")
    for j, endpoint in enumerate(selector.endpoints or []):
        if endpoint not in endpoint_names:
            problems.append(f"{at}.targets.endpoints[{j}]: unknown endpoint {endpoint!r}")
    for j, protocol in enumerate(selector.protocols or []):
        if protocol not in schemes:
            problems.append(
                f"{at}.targets.protocols[{j}]: probe type {probe.type!r} cannot test "
                f"{protocol!r} (it tests {tested})"
            )
    if not problems and not select_endpoints(config, probe, schemes, needs):
        block = f" with a '{needs}:' block" if needs else ""
        problems.append(
            f"{at}.targets: selects no endpoint{block} (type {probe.type!r} tests {tested})"
        )
    return problems
