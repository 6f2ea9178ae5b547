"""Read and validate a config file. Every error names its YAML path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lakeprobe.config.model import LakeprobeConfig, ProbeConfig
from lakeprobe.config.pairs import check_pairs
from lakeprobe.config.select import select_endpoints
from lakeprobe.probes.registry import PROBE_TYPES

_MESSAGES = {
    "extra_forbidden": "unknown key",
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read: {error.strerror}"]) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> LakeprobeConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping with sites and probes"])
    try:
        config = LakeprobeConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, [_describe(e) for e in error.errors()]) from None
    problems = [m for i, probe in enumerate(config.probes) for m in _check_probe(config, i, probe)]
    if problems:
        raise ConfigError(source, problems)
    return config


def _check_probe(config: LakeprobeConfig, index: int, probe: ProbeConfig) -> list[str]:
    at = f"probes[{index}]"
    probe_type = PROBE_TYPES.get(probe.type)
    if probe_type is None:
        known = ", ".join(sorted(PROBE_TYPES))
        return [f"{at}.type: unknown probe type {probe.type!r} (known: {known})"]
    problems = []
    try:
        params = probe_type.params_model.model_validate(probe.params)
    except ValidationError as error:
        return [_describe(e, ("probes", index, "params")) for e in error.errors()]
    interval = probe.interval or config.defaults.interval
    timeout = probe.timeout or config.defaults.timeout
    if timeout > interval:
        problems.append(f"{at}.timeout: {timeout:g} s is longer than the interval {interval:g} s")
    problems += _check_selector(config, at, probe_type.schemes, probe)
    if probe_type.pairwise and not problems:
        problems += check_pairs(config, at, probe, probe_type, params)
    elif probe.targets.pairs is not None:
        problems.append(f"{at}.targets.pairs: only pair probes (third-party copies) take pairs")
    return problems


def _check_selector(
    config: LakeprobeConfig, at: str, schemes: frozenset[str], probe: ProbeConfig
) -> list[str]:
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
    if not problems and not select_endpoints(config, probe, schemes):
        problems.append(f"{at}.targets: selects no endpoint (type {probe.type!r} tests {tested})")
    return problems
