"""The tape-emulating XRootD site (lakeprobe/lake/tape.py), seen through independent clients:
the xrdfs CLI and Debian's gfal2 over root://."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import need_binaries

from lakeprobe.lake import LocalLake, TapeEmulation

RECALL = 0.5  # seconds: the drive's recall delay in these tests
ARCHIVE = 0.5


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    """One started site (SITE-A) with tape emulation, shared by the module's tests."""
    need_binaries()
    base = tmp_path_factory.mktemp("tape-lake")
    with LocalLake(1, base_dir=base, tape_sites=True) as lake:
        yield lake


@pytest.fixture
def tape(tape_lake: LocalLake) -> TapeEmulation:
    """The site's tape with this module's knobs, reset for every test."""
    emulation = tape_lake.sites[0].tape
    assert emulation is not None
    emulation.recall_delay_seconds = RECALL
    emulation.archive_delay_seconds = ARCHIVE
    emulation.hang_stages = False
    return emulation


def xrdfs(lake: LocalLake, *args: str) -> str:
    out = subprocess.run(
        ["xrdfs", lake.sites[0].root_url, *args], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def query(lake: LocalLake, request_id: str, path: str) -> dict[str, Any]:
    answer = json.loads(xrdfs(lake, "query", "prepare", request_id, path))
    assert answer["request_id"] == request_id
    (entry,) = answer["responses"]
    assert entry["path"] == path
    return dict(entry)


def wait_for(condition: Callable[[], bool], bound: float) -> float:
    """Seconds until `condition()` holds; fails after `bound` seconds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < bound, "condition not reached in time"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.lake
def test_recall_cycle_with_xrdfs(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    """A file on tape only is Offline and unreadable; a stage makes it online after the recall
    delay (pending before), it then reads back; evict makes it Offline again (soon: XRootD
    runs the prepare program after it has answered)."""
    path = "/tape/site/recall-cycle"
    tape.put_on_tape(path, b"from tape")
    assert "Offline" in xrdfs(tape_lake, "stat", path)
    request_id = xrdfs(tape_lake, "prepare", "-s", path)
    pending = query(tape_lake, request_id, path)
    assert (pending["online"], pending["requested"], pending["on_tape"]) == (False, True, True)
    waited = wait_for(lambda: bool(query(tape_lake, request_id, path)["online"]), 5)
    assert waited >= RECALL * 0.5
    assert "Offline" not in xrdfs(tape_lake, "stat", path)
    assert tape.is_online(path)
    assert tape.is_on_tape(path)
    assert (request_id, [path]) in tape.stage_requests_seen()
    xrdfs(tape_lake, "prepare", "-e", path)  # the program runs after the reply
    wait_for(lambda: not tape.is_online(path), 5)
    assert "Offline" in xrdfs(tape_lake, "stat", path)


@pytest.mark.lake
def test_lost_file_reports_an_error(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    """A stage of a file whose tape copy is lost ends with an error_text, not online."""
    path = "/tape/site/lost"
    tape.put_on_tape(path, b"gone")
    tape.lose(path)
    assert not tape.is_on_tape(path)
    request_id = xrdfs(tape_lake, "prepare", "-s", path)
    wait_for(lambda: bool(query(tape_lake, request_id, path)["error_text"]), 5)
    entry = query(tape_lake, request_id, path)
    assert "lost" in entry["error_text"]
    assert (entry["online"], entry["on_tape"]) == (False, False)


@pytest.mark.lake
def test_hung_stage_stays_pending(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    """With hang_stages, a stage stays pending past the recall delay; clearing it lets the
    recall complete, without a restart."""
    path = "/tape/site/hung"
    tape.put_on_tape(path, b"stuck")
    tape.hang_stages = True
    request_id = xrdfs(tape_lake, "prepare", "-s", path)
    time.sleep(RECALL * 3)
    entry = query(tape_lake, request_id, path)
    assert (entry["online"], entry["requested"], entry["error_text"]) == (False, True, "")
    tape.hang_stages = False
    wait_for(lambda: tape.is_online(path), 5)


@pytest.mark.lake
def test_archive_migration_and_cleanup(
    tape_lake: LocalLake, tape: TapeEmulation, tmp_path: Path
) -> None:
    """A file written into the archive directory over root:// reaches tape (query prepare
    on_tape) after the archive delay; rm removes both copies."""
    path = f"{tape.archive_dir}/canary"
    local = tmp_path / "canary"
    local.write_bytes(b"archive me")
    subprocess.run(["xrdcp", "-f", str(local), f"{tape_lake.sites[0].root_url}/{path}"],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    assert not query(tape_lake, "archive", path)["on_tape"]
    wait_for(lambda: bool(query(tape_lake, "archive", path)["on_tape"]), 5)
    xrdfs(tape_lake, "rm", path)
    assert not tape.is_on_tape(path)
    assert not tape.is_online(path)


@pytest.fixture
def gfal2_context() -> Any:
    try:
        import gfal2  # Debian's python3-gfal2, seen through the venv's system site packages
    except ImportError:
        if os.environ.get("CI") == "true":  # in CI a missing client fails, never skips
            pytest.fail("python3-gfal2 is missing", pytrace=False)
        pytest.skip("python3-gfal2 is missing")
    if shutil.which("xrootd") is None:
        need_binaries()
    return gfal2.creat_context()


@pytest.mark.lake
def test_gfal2_bring_online_and_archive_poll(
    tape_lake: LocalLake, tape: TapeEmulation, gfal2_context: Any
) -> None:
    """gfal2 (the client FTS uses) stages over root:// and polls until online; archive_poll
    says the recalled file is on tape; a lost file fails its poll."""
    path = "/tape/site/gfal2"
    url = f"{tape_lake.sites[0].root_url}/{path}"
    tape.put_on_tape(path, b"gfal2 recall")
    result, token = gfal2_context.bring_online(url, 60, 30, True)
    assert result == 0
    assert token
    wait_for(lambda: gfal2_context.bring_online_poll(url, token) == 1, 5)
    assert gfal2_context.archive_poll(url) == 1
    lost = "/tape/site/gfal2-lost"
    tape.put_on_tape(lost, b"lost")
    tape.lose(lost)
    lost_url = f"{tape_lake.sites[0].root_url}/{lost}"
    _result, token = gfal2_context.bring_online(lost_url, 60, 30, True)
    time.sleep(RECALL * 2)
    with pytest.raises(Exception, match="lost"):
        gfal2_context.bring_online_poll(lost_url, token)
