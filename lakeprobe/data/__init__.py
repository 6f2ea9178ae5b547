"""Files the installed package reads: the shipped alert rules and Alertmanager example
(alerting/) and the Grafana dashboards (grafana/json/).

The top-level folders stay the one source: lakeprobe/data/alerting and lakeprobe/data/dashboards
are committed relative symlinks to them, and the wheel holds real copies (package data in
pyproject.toml, checked by tests/test_packaging.py)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A shipped file on disk: `data_path("alerting", "lakeprobe-rules.yaml")`. Prometheus and
    Alertmanager read these by path, so a zipped install (not a pip-installed wheel) is
    refused instead of being copied out."""
    resource = files(__name__).joinpath(*parts)
    if not isinstance(resource, Path):
        raise RuntimeError(f"lakeprobe data {'/'.join(parts)} is not a file on disk: {resource}")
    return resource
