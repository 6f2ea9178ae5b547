"""The server settings a reload cannot apply: the one list of them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lakeprobe.config.model import ServerConfig


def restart_only(server: ServerConfig) -> dict[str, object]:
    """The settings only a restart applies, by the config key path a warning names. The web
    config file counts by content too: its TLS and users are read once, at start."""
    path = server.web_config_file
    return {
        "server.listen": server.listen,
        "server.state_dir": server.state_dir,
        "server.keepalive_timeout": server.keepalive_timeout,
        "server.web_config_file (or its content)": (path, path and _digest(path)),
    }


def restart_only_changes(started_with: dict[str, object], server: ServerConfig) -> list[str]:
    """The keys whose value differs from the one the daemon started with (not the last
    reload's: the warning repeats until a restart applies them)."""
    now = restart_only(server)
    return [key for key, value in now.items() if started_with.get(key) != value]


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
