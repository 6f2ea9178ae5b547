"""A target's perfSONAR archive: what the perfsonar probe reads (Target.perfsonar)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PerfsonarArchive:
    """An endpoint that is a site's perfSONAR archive (the endpoint's `perfsonar:` block):
    the site's measurement nodes as the archive names them, the API to read, and optional
    Basic credentials (the password stays in its file until a request needs it)."""

    bandwidth_hosts: tuple[str, ...] = ()
    latency_hosts: tuple[str, ...] = ()
    api: str = "auto"  # auto (OpenSearch, then esmond) | opensearch | esmond
    username: str | None = None
    password_file: Path | None = None
