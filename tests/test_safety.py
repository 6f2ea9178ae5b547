"""Test-file naming and ownership checks, checksums, and secret redaction."""

from __future__ import annotations

import logging
import zlib

import pytest

from lakeprobe.probes.core.testfiles import (
    adler32_hex,
    is_own_file,
    new_test_file,
    normalize_adler32,
    source_payload,
    stale_test_files,
)
from lakeprobe.probes.credentials.secrets import MASK, RedactingFilter, Secret, redact


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
        "/data/lakeprobe//lakeprobe-h-1700000000-" + "0" * 32,  # an empty segment
        "/data/lakeprobe/./lakeprobe-h-1700000000-" + "0" * 32,
        "/data/lakeprobe/lakeprobe-h-1700000000-" + "0" * 32 + "\n",  # regex `$` would match
    ],
)
def test_is_own_file_refuses(path: str) -> None:
    """Anything but our own file directly in the test directory is never deleted."""
    assert not is_own_file(path, "/data/lakeprobe")


@pytest.mark.parametrize(
    "test_dir",
    ["/data/lakeprobe?x=1", "/data/lakeprobe#x", "/data/%2e%2e", "/data/../lakeprobe",
     "/data\\lakeprobe", "/data/lake probe", "/data/lake\uff1fprobe"],
)  # fmt: skip
def test_is_own_file_refuses_unsafe_test_dirs(test_dir: str) -> None:
    """A test directory a client would not send literally owns nothing: the name inside it
    would reach the server as a query, a fragment or a dot-segment."""
    assert not is_own_file(new_test_file(test_dir, "h"), test_dir)


def test_stale_test_files_by_identity() -> None:
    """Own files go after `own_after`, other identities' (renamed hosts, restarted pods)
    only after `foreign_after`; names not fully matching the pattern never; oldest first."""
    uid, now = "a" * 32, 1_700_100_000
    names = [
        f"lakeprobe-h-1.x-1700000000-{uid}",  # old, ours (host names may hold '-')
        f"lakeprobe-h-1.x-1700099000-{uid}",  # fresh, ours
        f"lakeprobe-pod-7f9c-1700090000-{uid}",  # another identity, younger than foreign_after
        f"lakeprobe-h2-1600000000-{uid}",  # another identity, older than foreign_after
        f"lakeprobe-h2-1600000000-{uid}.tmp",  # not a test-file name
        f"lakeprobe-h2-1600000000-{uid}\n",
        "lakeprobe-source-h-1.x-1048576",
        "user-data.root",
    ]
    stale = stale_test_files(names, "h-1.x", own_after=3600, foreign_after=86400, now=now)
    assert stale == [names[3], names[0]]


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
    held = Secret(value)  # the scrubber knows a value while a Secret holds it
    text = f"open root://h//f?authz={value}&x=1 failed; Authorization: Bearer abc.def.ghi; {value}"
    cleaned = redact(text)
    assert value not in cleaned
    assert "abc.def.ghi" not in cleaned
    assert f"authz={MASK}" in cleaned
    del held


def test_logging_filter_scrubs_records(caplog: pytest.LogCaptureFixture) -> None:
    """A log call that formats a secret into its message is scrubbed before output."""
    value = "another-secret-token-xyz"
    held = Secret(value)  # the scrubber knows a value while a Secret holds it
    logger = logging.getLogger("lakeprobe.test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="lakeprobe.test.redact"):
        logger.info("token is %s", value)
    assert value not in caplog.text
    del held
    assert MASK in caplog.text


@pytest.mark.parametrize("size", [1, 1024, 1024 * 1024, 3 * 1024 * 1024 + 5, 300 * 1024 * 1024])
def test_source_payload_is_deterministic_at_any_size(size: int) -> None:
    """The TPC source file's bytes depend only on its size, so its adler32 is known locally."""
    first = source_payload(size)
    assert len(first) == size
    assert first[-4096:] == source_payload(size)[-4096:]
