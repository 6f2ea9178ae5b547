"""Test-file naming and ownership checks, checksums, and secret redaction."""

from __future__ import annotations

import logging
import zlib

import pytest

from lakeprobe.probes.secrets import MASK, RedactingFilter, Secret, redact
from lakeprobe.probes.testfiles import (
    adler32_hex,
    is_own_file,
    new_test_file,
    normalize_adler32,
    source_payload,
    stale_own_files,
)


def test_new_test_file_is_unique_and_owned() -> None:
    """Names carry prefix, host, epoch and uuid, and pass the ownership check."""
    first = new_test_file("/data/lakeprobe", "probe.example.org", now=1_700_000_000)
    second = new_test_file("/data/lakeprobe", "probe.example.org", now=1_700_000_000)
    assert first != second
    assert first.startswith("/data/lakeprobe/lakeprobe-probe.example.org-1700000000-")
    assert is_own_file(first, "/data/lakeprobe")
    assert is_own_file(first, "/data/lakeprobe/")


@pytest.mark.parametrize(
    "path",
    [
        "/data/lakeprobe/",  # a directory
        "/data/lakeprobe/other-file",  # foreign name
        "/data/lakeprobe/sub/lakeprobe-h-1700000000-" + "0" * 32,  # not directly inside
        "/data/lakeprobe/lakeprobe-h-1700000000-" + "0" * 32 + "/",  # trailing slash
        "/data/lakeprobe/../lakeprobe-h-1700000000-" + "0" * 32,  # escapes the directory
        "/elsewhere/lakeprobe-h-1700000000-" + "0" * 32,
    ],
)
def test_is_own_file_refuses(path: str) -> None:
    """Anything but our own file directly in the test directory is never deleted."""
    assert not is_own_file(path, "/data/lakeprobe")


def test_stale_own_files_picks_only_old_files_of_this_host() -> None:
    uid = "a" * 32
    names = [
        f"lakeprobe-h-1.x-1700000000-{uid}",  # old, ours (host names may hold '-')
        f"lakeprobe-h-1.x-1700009000-{uid}",  # fresh, ours
        f"lakeprobe-h2-1700000000-{uid}",  # old, another host's
        "user-data.root",
    ]
    assert stale_own_files(names, "h-1.x", older_than=3600, now=1_700_010_000) == [names[0]]


def test_adler32_format() -> None:
    """8 lower-case hex digits, leading zeros kept."""
    assert adler32_hex(b"") == "00000001"
    assert adler32_hex(b"lakeprobe") == f"{zlib.adler32(b'lakeprobe'):08x}"
    assert normalize_adler32(" 1ABC ") == "00001abc"


def test_secret_never_prints() -> None:
    token = Secret("eyJhbGciOiJFUzI1NiJ9.payload.signature")
    assert "eyJ" not in f"{token} {token!r} {[token]}"
    assert token.reveal().startswith("eyJ")


def test_redact_masks_known_values_and_token_shapes() -> None:
    value = "s3cr3t-token-value-123"
    Secret(value)
    text = f"open root://h//f?authz={value}&x=1 failed; Authorization: Bearer abc.def.ghi; {value}"
    cleaned = redact(text)
    assert value not in cleaned
    assert "abc.def.ghi" not in cleaned
    assert f"authz={MASK}" in cleaned


def test_logging_filter_scrubs_records(caplog: pytest.LogCaptureFixture) -> None:
    """A log call that formats a secret into its message is scrubbed before output."""
    value = "another-secret-token-xyz"
    Secret(value)
    logger = logging.getLogger("lakeprobe.test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="lakeprobe.test.redact"):
        logger.info("token is %s", value)
    assert value not in caplog.text
    assert MASK in caplog.text


@pytest.mark.parametrize("size", [1, 1024, 1024 * 1024, 3 * 1024 * 1024 + 5, 300 * 1024 * 1024])
def test_source_payload_is_deterministic_at_any_size(size: int) -> None:
    """The TPC source file's bytes depend only on its size, so its adler32 is known locally."""
    first = source_payload(size)
    assert len(first) == size
    assert first[-4096:] == source_payload(size)[-4096:]
