"""`lakeprobe run tape-recall URL`: the URL names the tape file, as gfal-bringonline's does;
the run stages it, waits within --timeout, reads and verifies it, and prints the timeline."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need_binaries

from lakeprobe.lake import LocalLake, TapeEmulation
from lakeprobe.lake.taperest import TapeRestDouble
from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend

pytestmark = pytest.mark.lake


def lakeprobe(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakeprobe.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=90, check=False, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("tape-cli"), tape_sites=True) as lake:
        tape = lake.sites[0].tape
        assert tape is not None
        tape.recall_delay_seconds = 1.0
        yield lake


def tape_file(lake: LocalLake) -> tuple[str, str]:
    tape = lake.sites[0].tape
    assert isinstance(tape, TapeEmulation)
    path, data = f"/tape/cli-{uuid.uuid4().hex[:8]}", b"recalled by the CLI\n" * 64
    tape.put_on_tape(path, data)
    return path, f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_xrootd_recall_from_the_command_line(tape_lake: LocalLake) -> None:
    """Exit 0, every step of the timeline named, the checksum verified."""
    path, adler32 = tape_file(tape_lake)
    url = f"{tape_lake.sites[0].root_url}/{path}"
    done = lakeprobe("run", "tape-recall", url, "--adler32", adler32, "--timeout", "30",
                     "--ca-dir", tape_lake.pki.ca_dir)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("stage", "poll", "read", "release"):
        assert step in done.stdout
    assert "verified" in done.stdout
    assert "submitted" in done.stdout


def test_tape_rest_recall_json(tape_lake: LocalLake) -> None:
    """Over https with the Tape REST API found at --tape-discovery; JSON output carries the
    recall time."""
    path, adler32 = tape_file(tape_lake)
    site = tape_lake.sites[0]
    with TapeRestDouble(tape_lake.pki, XrootdPrepareBackend(site.root_url), "eos") as api:
        done = lakeprobe(
            "run", "tape-recall", f"{site.davs_url}{path}", "--adler32", adler32,
            "--tape-discovery", api.url, "--timeout", "30", "--ca-dir", tape_lake.pki.ca_dir,
            "--json",
        )  # fmt: skip
        assert api.open_requests() == []
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = json.loads(done.stdout)
    assert record["status"] == "OK"
    assert record["measurements"]["tape_recall_seconds"] >= 0.9


def test_a_timeout_before_the_file_is_online_cancels_and_exits_unknown(
    tape_lake: LocalLake,
) -> None:
    path, _ = tape_file(tape_lake)
    tape = tape_lake.sites[0].tape
    assert tape is not None
    tape.hang_stages = True
    try:
        done = lakeprobe("run", "tape-recall", f"{tape_lake.sites[0].root_url}/{path}",
                         "--timeout", "5")  # fmt: skip
    finally:
        tape.hang_stages = False
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cancel" in done.stdout


def test_a_url_without_a_file_is_a_usage_error() -> None:
    done = lakeprobe("run", "tape-recall", "root://127.0.0.1:9")
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1].startswith("UNKNOWN: root://127.0.0.1:9: give")
    assert "Traceback" not in done.stderr
