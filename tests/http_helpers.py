"""A daemon config for tests of the HTTP port, where the probes do not matter."""

from __future__ import annotations

from pathlib import Path

import yaml

from lakeprobe.lake import free_ports


def write_daemon_config(path: Path, **server: object) -> Path:
    """A valid config with `server` keys, whose one target is a dead loopback port probed
    once an hour."""
    listen_port, dead_port = free_ports(2)
    endpoint = {"name": "dead", "url": f"https://127.0.0.1:{dead_port}", "test_dir": "/lp"}
    config = {
        "server": {"listen": f"127.0.0.1:{listen_port}", **server},
        "defaults": {"interval": "1h", "timeout": "10s"},
        "sites": [{"name": "DEAD", "endpoints": [endpoint]}],
        "probes": [{"name": "webdav", "type": "webdav"}],
    }
    path.write_text(yaml.safe_dump(config))
    return path
