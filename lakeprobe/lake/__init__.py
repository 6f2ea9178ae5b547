"""The local data lake: real XRootD sites on loopback, for the demo and integration tests."""

from __future__ import annotations

import shutil

from lakeprobe.lake.lake import LocalLake, free_ports
from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.lake.tape import TapeEmulation
from lakeprobe.lake.xrootd_site import SiteStartError, XrootdSite

REQUIRED_BINARIES = ("xrootd", "xrdcp", "xrdfs", "openssl")

__all__ = [
    "REQUIRED_BINARIES",
    "LocalLake",
    "SiteStartError",
    "TapeEmulation",
    "TestPki",
    "XrootdSite",
    "free_ports",
    "make_test_pki",
    "require_binaries",
]


def require_binaries() -> list[str]:
    """Names of the binaries the lake needs that are not on PATH (empty when all are there)."""
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
