"""Configuration: YAML file -> validated, frozen models -> the probe plan.

The public names load on first use: importing any `lakeprobe.config.*` module runs this file,
and a `lakeprobe run` without a config must not pay for the loader (YAML, the token probe)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakeprobe.config.loader import ConfigError, load_config, parse_config
    from lakeprobe.config.model import LakeprobeConfig

__all__ = ["ConfigError", "LakeprobeConfig", "load_config", "parse_config"]

_HOMES = {
    "ConfigError": "lakeprobe.config.loader",
    "load_config": "lakeprobe.config.loader",
    "parse_config": "lakeprobe.config.loader",
    "LakeprobeConfig": "lakeprobe.config.model",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
