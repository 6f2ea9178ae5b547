"""`lakeprobe run` loads only what the probe it runs needs: a webdav run never imports the
daemon, the exporter, the XRootD or gfal2 bindings, or the other probe types. Checked by the
modules a fresh interpreter holds, not by timing (benchmarks/cli_start.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Modules a `lakeprobe run` of the given probe type must not load.
NEVER = ("apscheduler", "prometheus_client", "lakeprobe.service", "lakeprobe.exporter")
NOT_FOR_WEBDAV = (
    *NEVER,
    "XRootD",
    "gfal2",
    "lakeprobe.probes.storage.xrootd",
    "lakeprobe.probes.transfer",
    "lakeprobe.probes.clients.copyjob",
)

_SCRIPT = """
import json, sys
from lakeprobe.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.__stdout__)
"""


def _loaded(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv], capture_output=True, text=True, timeout=60
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _forbidden(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize(
    ("argv", "forbidden"),
    [
        (("run", "--help"), NOT_FOR_WEBDAV),
        # Nothing listens on the discard port: the run fails fast, after all imports.
        (("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5"), NOT_FOR_WEBDAV),
        (("run", "xrootd", "root://127.0.0.1:9//t", "--timeout", "5"), NEVER),
    ],
)
def test_run_imports_only_its_probe(argv: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    """`run --help` and a webdav run load no scheduler, exporter, XRootD, gfal2 or other
    probe type; an xrootd run loads no scheduler or exporter."""
    loaded = _loaded(*argv)
    assert "lakeprobe.cli.run" in loaded
    assert _forbidden(loaded, forbidden) == []


def test_webdav_run_loads_its_probe_type() -> None:
    """The lazy registry does import the probe module the run uses."""
    loaded = _loaded("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5")
    assert "lakeprobe.probes.storage.webdav" in loaded
