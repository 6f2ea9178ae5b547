"""Test files: unique names, the ownership check before any delete, and checksums."""

from __future__ import annotations

import functools
import os
import posixpath
import re
import ssl
import time
from collections.abc import Iterator

from zlib_ng.zlib_ng import adler32

from lakeprobe.probes.core.paths import path_problem

PREFIX = "lakeprobe-"
_NAME = re.compile(
    rf"^{PREFIX}(?P<host>[A-Za-z0-9.\-]+)-(?P<epoch>[0-9]{{10,20}})-(?P<uid>[0-9a-f]{{32}})\Z"
)
_UNSAFE_HOST = re.compile(r"[^A-Za-z0-9.\-]")


def safe_host(probe_host: str) -> str:
    """The host name as it may appear in a file name."""
    return _UNSAFE_HOST.sub("-", probe_host) or "unknown"


def new_test_file(test_dir: str, probe_host: str, now: float | None = None) -> str:
    """An absolute path: <test_dir>/lakeprobe-<host>-<epoch>-<128 random bits in hex>."""
    host = safe_host(probe_host)
    epoch = int(time.time() if now is None else now)
    return posixpath.join(test_dir, f"{PREFIX}{host}-{epoch}-{os.urandom(16).hex()}")


def is_own_file(path: str, test_dir: str) -> bool:
    """True only for a file lakeprobe named, directly inside the test directory. Every
    delete is guarded by this: never a directory, never a foreign file. Both paths must be
    safe (probes/core/paths.py), so the comparison is on the path exactly as every client sends
    it: nothing a client or server could read as a query, a fragment or a dot-segment."""
    parent, name = _split_own(path, test_dir)
    return parent is not None and bool(_NAME.match(name))


def is_own_source(path: str, test_dir: str, probe_host: str, size: int) -> bool:
    """True only for this host's TPC source file of `size` bytes in the test directory: the
    guard before a transfer probe replaces it."""
    parent, _ = _split_own(path, test_dir)
    return parent is not None and path == source_file(parent, probe_host, size)


def _split_own(path: str, test_dir: str) -> tuple[str | None, str]:
    """(the normalised test directory, the name) when `path` names an entry directly in it;
    (None, "") otherwise."""
    if path_problem(path) is not None or path_problem(test_dir) is not None:
        return None, ""
    directory = test_dir.removesuffix("/")
    parent, name = posixpath.split(path)
    if not directory or parent != directory or not name:
        return None, ""
    return directory, name


def stale_test_files(
    names: list[str], probe_host: str, *, own_after: float, foreign_after: float, now: float
) -> list[str]:
    """Names (from a directory listing) of lakeprobe test files to sweep, oldest first: this
    identity's older than `own_after`, other identities' (a renamed host, a restarted pod)
    older than `foreign_after`. Only names fully matching the test-file pattern."""
    host = safe_host(probe_host)
    stale = []
    for name in names:
        match = _NAME.match(name)
        if match is None:
            continue
        age = now - int(match["epoch"])
        if age > (own_after if match["host"] == host else foreign_after):
            stale.append((int(match["epoch"]), name))
    return [name for _, name in sorted(stale)]


def is_foreign(name: str, probe_host: str) -> bool:
    """A test-file name of another identity than `probe_host`."""
    match = _NAME.match(name)
    return match is not None and match["host"] != safe_host(probe_host)


def adler32_hex(data: bytes | bytearray) -> str:
    """adler32 as grid storage reports it: 8 lower-case hex digits."""
    return f"{adler32(data) & 0xFFFFFFFF:08x}"


class Adler32:
    """adler32 of data that arrives in chunks."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = adler32(b"")

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self.value = adler32(chunk, self.value)

    def hex(self) -> str:
        return f"{self.value & 0xFFFFFFFF:08x}"


def normalize_adler32(value: str) -> str:
    """Servers may drop leading zeros or use upper case."""
    return value.strip().lower().rjust(8, "0")


def payload(size: int) -> bytes:
    """`size` unpredictable bytes, new for every call (at most 2 GiB: a C int)."""
    # OpenSSL's DRBG (seeded by the OS): 1 MiB in 0.17 ms, os.urandom 2.7 ms, a quarter
    # of a daemon run's CPU (benchmarks/one_core_load.py); ssl is loaded for HTTP anyway.
    # 1 GiB: 0.7 s, os.urandom 3.5 s (benchmarks/data_path.py).
    return ssl.RAND_bytes(size)


def source_file(test_dir: str, probe_host: str, size: int) -> str:
    """The reusable source file of third-party-copy probes: uploaded once, never deleted by
    the probes (the sweep does not match it), re-uploaded when missing or corrupt."""
    return posixpath.join(test_dir, f"{PREFIX}source-{safe_host(probe_host)}-{size}")


def source_payload(size: int) -> bytes:
    """Deterministic bytes, so the expected adler32 of the source file is known locally:
    a seeded random block of at most 1 MiB, repeated (randbytes overflows past 256 MiB).
    Built in one allocation of `size` bytes: a 1 GiB source is held once, not twice."""
    return b"".join(source_blocks(size))


def source_blocks(size: int) -> Iterator[bytes]:
    """The source file's bytes in order, in blocks of at most 1 MiB (one shared block)."""
    import random  # only third-party-copy probes need it

    block = random.Random(size).randbytes(min(size, _SOURCE_BLOCK))
    whole, rest = divmod(size, len(block)) if block else (0, 0)
    for _ in range(whole):
        yield block
    if rest:
        yield block[:rest]


_SOURCE_BLOCK = 1024 * 1024


# State scope: source files (endpoint URL + path) whose copy came out corrupt. The next run
# re-uploads them: a silently corrupted source keeps reporting its old checksum.
SUSPECT_SOURCES = "tpc-source-suspect"


def source_lock_key(key: str) -> str:
    """The state store's lock for one source file: one check or upload at a time."""
    return f"tpc-source:{key}"


@functools.lru_cache(maxsize=8)
def source_adler32(size: int) -> str:
    """The adler32 of the TPC source file of `size` bytes (its bytes are deterministic),
    computed block by block: 1 MiB of memory for a 1 GiB file."""
    checksum = Adler32()
    for block in source_blocks(size):
        checksum.update(block)
    return checksum.hex()
