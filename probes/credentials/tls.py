"""Client TLS: verification always on; trust anchors from a CA directory, as grid tools do."""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

GRID_CA_DIR = Path("/etc/grid-security/certificates")


def resolve_ca_dir(configured: Path | None) -> Path | None:
    """The configured directory, else $X509_CERT_DIR, else the grid default if it exists.
    None means the system trust store."""
    if configured is not None:
        return configured
    from_env = os.environ.get("X509_CERT_DIR")
    if from_env:
        return Path(from_env)
    return GRID_CA_DIR if GRID_CA_DIR.is_dir() else None


def client_ssl_context(ca_dir: Path | None, check_hostname: bool = True) -> ssl.SSLContext:
    """A verifying client context. Grid CA directories hold hashed PEM files (`openssl rehash`).
    Made once per state of the directory: a CA added or removed (fetch-crl, a CA package
    update) changes the directory's mtime, and the next context trusts what is there now.
    `check_hostname=False` only for a caller that checks the names itself (the chain is
    always verified)."""
    return _context(ca_dir, _mtime_ns(ca_dir), check_hostname)


def _mtime_ns(ca_dir: Path | None) -> int:
    if ca_dir is None:
        return 0
    try:
        return ca_dir.stat().st_mtime_ns
    except OSError:
        return -1  # load_verify_locations below reports what is wrong with it


@functools.lru_cache(maxsize=32)
def _context(ca_dir: Path | None, _mtime_ns: int, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = check_hostname
    if ca_dir is not None:
        context.load_verify_locations(capath=str(ca_dir))
        # Also load plain *.pem files, in case the directory was never rehashed.
        for pem in sorted(ca_dir.glob("*.pem")):
            context.load_verify_locations(cafile=str(pem))
    return context
