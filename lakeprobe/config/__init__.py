"""Configuration: YAML file -> validated, frozen models -> the probe plan."""

from lakeprobe.config.loader import ConfigError, load_config, parse_config
from lakeprobe.config.model import LakeprobeConfig

__all__ = ["ConfigError", "LakeprobeConfig", "load_config", "parse_config"]
