"""Test files: unique names, the ownership check before any delete, and checksums."""

from __future__ import annotations

import os
import posixpath
import random
import re
import time
import uuid
import zlib

PREFIX = "lakeprobe-"
_NAME = re.compile(
    rf"^{PREFIX}(?P<host>[A-Za-z0-9.\-]+)-(?P<epoch>\d{{10,}})-(?P<uid>[0-9a-f]{{32}})$"
)
_UNSAFE_HOST = re.compile(r"[^A-Za-z0-9.\-]")


def safe_host(probe_host: str) -> str:
    """The host name as it may appear in a file name."""
    return _UNSAFE_HOST.sub("-", probe_host) or "unknown"


def new_test_file(test_dir: str, probe_host: str, now: float | None = None) -> str:
    """An absolute path: <test_dir>/lakeprobe-<host>-<epoch>-<uuid>."""
    host = safe_host(probe_host)
    epoch = int(time.time() if now is None else now)
    return posixpath.join(test_dir, f"{PREFIX}{host}-{epoch}-{uuid.uuid4().hex}")


def is_own_file(path: str, test_dir: str) -> bool:
    """True only for a file lakeprobe named, directly inside the test directory.
    Every delete is guarded by this: never a directory, never a foreign file."""
    if path.endswith("/") or ".." in path.split("/"):
        return False
    parent, name = posixpath.split(path)
    return posixpath.normpath(parent) == posixpath.normpath(test_dir) and bool(_NAME.match(name))


def stale_own_files(names: list[str], probe_host: str, older_than: float, now: float) -> list[str]:
    """Names (from a directory listing) of this host's test files older than `older_than`."""
    host = safe_host(probe_host)
    stale = []
    for name in names:
        match = _NAME.match(name)
        if match and match["host"] == host and now - int(match["epoch"]) > older_than:
            stale.append(name)
    return stale


def adler32_hex(data: bytes) -> str:
    """adler32 as grid storage reports it: 8 lower-case hex digits."""
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def normalize_adler32(value: str) -> str:
    """Servers may drop leading zeros or use upper case."""
    return value.strip().lower().rjust(8, "0")


def payload(size: int) -> bytes:
    return os.urandom(size)


def source_file(test_dir: str, probe_host: str, size: int) -> str:
    """The reusable source file of third-party-copy probes: uploaded once, never deleted by
    the probes (the sweep does not match it), re-uploaded when missing or corrupt."""
    return posixpath.join(test_dir, f"{PREFIX}source-{safe_host(probe_host)}-{size}")


def source_payload(size: int) -> bytes:
    """Deterministic bytes, so the expected adler32 of the source file is known locally:
    a seeded random block of at most 1 MiB, repeated (randbytes overflows past 256 MiB)."""
    block = random.Random(size).randbytes(min(size, _SOURCE_BLOCK))
    repeats = -(-size // len(block)) if block else 0
    return (block * repeats)[:size]


_SOURCE_BLOCK = 1024 * 1024
