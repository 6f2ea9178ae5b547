"""The xrootd probe against real XRootD servers on loopback (the `lake` fixture)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import PREFIX, new_test_file
from lakeprobe.probes.credentials.tokens import FileToken
from lakeprobe.probes.storage import xrootd
from lakeprobe.probes.storage.xrootd import PROBE_TYPE, XrootdParams

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.xrootd")
WRITE_STEPS = ["ping", "stat_dir", "write", "stat_file", "checksum", "read", "delete", "sweep"]
FAILED_AT_PING = {"ping": Status.CRITICAL} | dict.fromkeys(WRITE_STEPS[1:], Status.SKIPPED)


def target(
    site: XrootdSite,
    test_dir: str = LocalLake.test_dir,
    *,
    token: FileToken | None = None,
    reference_file: str | None = None,
    reference_adler32: str | None = None,
) -> Target:
    return Target(
        site.name, "xrootd", site.root_url, test_dir, read_only=reference_file is not None,
        reference_file=reference_file, reference_adler32=reference_adler32, token=token,
        insecure_token_transport=True,  # root:// on loopback: the tests opt in
    )  # fmt: skip


async def probe(
    tgt: Target, timeout: float = 5.0, state: StateStore | None = None, **params: object
) -> tuple[ProbeResult, float]:
    """Run the probe as the daemon does (`state`: a store shared across runs, as the
    daemon's; else one per run); returns the result and the wall time it took."""
    started = time.monotonic()
    outcome = await run_probe(
        PROBE_TYPE, tgt, validate_params(XrootdParams, params), timeout=timeout,
        probe_host="testhost", log=LOG, state=state,
    )  # fmt: skip
    assert outcome.exception is None
    return outcome.result, time.monotonic() - started


def statuses(result: ProbeResult) -> dict[str, Status]:
    return {step.name: step.status for step in result.steps}


def own_files(site: XrootdSite, directory: str = LocalLake.test_dir) -> list[str]:
    return [p.name for p in site.local_path(directory).iterdir() if p.name.startswith(PREFIX)]


async def test_healthy_site(lake: LocalLake) -> None:
    """A healthy site: OK, every step OK in order, measurements reported, and the test file
    deleted afterwards (no file with the lakeprobe prefix left in the data directory)."""
    result, _ = await probe(target(lake.sites[0]), file_size_bytes=3 * 1024 * 1024 + 7)
    assert (result.status, result.reason) == (Status.OK, Reason.NONE), result.steps
    assert statuses(result) == dict.fromkeys(WRITE_STEPS, Status.OK)
    assert result.measurements[Measurement.WRITE_BYTES] == 3 * 1024 * 1024 + 7
    assert result.measurements[Measurement.READ_BYTES] == 3 * 1024 * 1024 + 7
    assert result.measurements[Measurement.WRITE_THROUGHPUT] > 0
    assert result.measurements[Measurement.READ_THROUGHPUT] > 0
    assert own_files(lake.sites[0]) == []


async def test_stopped_site_fails_fast(lake: LocalLake) -> None:
    """A stopped server: CRITICAL `connect` at `ping` within a second of a 10 s deadline (a
    connection error, not a timeout); the later steps are SKIPPED."""
    lake.sites[1].stop()
    result, took = await probe(target(lake.sites[1]), timeout=10)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert took < 1.0
    assert statuses(result) == FAILED_AT_PING


@pytest.mark.parametrize("connection", ["new", "open"])
async def test_paused_site_times_out(lake: LocalLake, connection: str) -> None:
    """A SIGSTOPped server accepts connections and never answers: CRITICAL `timeout` at `ping`,
    later steps SKIPPED, and the run returns within its deadline (+2 s), whether the client
    has to connect or reuses a connection opened while the server was healthy."""
    site = lake.sites[1]
    if connection == "open":
        assert (await probe(target(site)))[0].status is Status.OK
    site.pause()
    result, took = await probe(target(site), timeout=2)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.TIMEOUT)
    assert statuses(result) == FAILED_AT_PING
    assert 1.0 < took < 2 + 2


async def test_site_hangs_mid_run(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that hangs after `ping`: `write` fails with `timeout`, `delete` is still tried
    (a partial file may exist) and the whole run still ends by its deadline."""
    site, real_upload = lake.sites[1], xrootd.upload

    async def hang_then_upload(*args: Any, **kwargs: Any) -> None:
        site.pause()
        await real_upload(*args, **kwargs)

    monkeypatch.setattr(xrootd, "upload", hang_then_upload)
    result, took = await probe(target(site), timeout=3)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.TIMEOUT)
    assert statuses(result)["write"] is Status.CRITICAL
    assert statuses(result)["delete"] is Status.CRITICAL  # tried, and timed out too
    assert took < 3 + 0.5


async def test_paused_site_does_not_block_others(lake: LocalLake) -> None:
    """While one site hangs (SIGSTOP), a probe of the other site runs concurrently and ends
    normally long before the hung one; the event loop is never blocked meanwhile."""
    lake.sites[1].pause()
    loop = asyncio.get_running_loop()
    started, worst_lag = loop.time(), 0.0

    async def timed(site: XrootdSite) -> tuple[ProbeResult, float]:
        result, _ = await probe(target(site), timeout=3)
        return result, loop.time() - started

    async def watch_loop() -> None:
        nonlocal worst_lag
        while True:
            tick = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - tick - 0.01)

    watcher = asyncio.create_task(watch_loop())
    (healthy, healthy_end), (hung, hung_end) = await asyncio.gather(
        timed(lake.sites[0]), timed(lake.sites[1])
    )
    watcher.cancel()
    assert healthy.status is Status.OK
    assert hung.reason is Reason.TIMEOUT
    assert healthy_end < 1.0 < hung_end
    assert worst_lag < 0.2


@pytest.mark.parametrize(
    ("corrupt", "with_expected", "status", "reason", "failed_step"),
    [
        (False, False, Status.OK, Reason.NONE, None),
        (False, True, Status.OK, Reason.NONE, None),
        (True, False, Status.CRITICAL, Reason.CHECKSUM_MISMATCH, "read"),
        (True, True, Status.CRITICAL, Reason.CHECKSUM_MISMATCH, "read"),
    ],
    ids=["intact", "intact-expected", "corrupt", "corrupt-expected"],
)
async def test_read_only_reference(
    lake: LocalLake, corrupt: bool, with_expected: bool, status: Status, reason: Reason,
    failed_step: str | None,
) -> None:  # fmt: skip
    """Read-only mode reads the reference file and compares the adler32 of its bytes with the
    server's checksum (and the configured one). A silently corrupted file (the server still
    reports the stale checksum) is CRITICAL checksum_mismatch at `read`. Nothing is written."""
    site = lake.sites[0]
    site.put_file("/ref/reference.dat", os.urandom(200_000))
    expected = site.server_adler32("/ref/reference.dat")
    if corrupt:
        assert site.corrupt_silently("/ref/reference.dat") == expected
    reference = expected if with_expected else None
    result, _ = await probe(target(site, reference_file="/ref/reference.dat",
                                   reference_adler32=reference))  # fmt: skip
    assert (result.status, result.reason) == (status, reason), result.steps
    assert [s.name for s in result.steps] == ["ping", "stat_file", "checksum", "read"]
    if failed_step:
        assert statuses(result)[failed_step] is Status.CRITICAL
    assert own_files(site) == []


async def test_non_writable_dir(lake: LocalLake) -> None:
    """A test directory the server may not write: CRITICAL `auth` at `write`; `delete` finds
    nothing of ours to delete, and a foreign file in that directory is left alone."""
    site = lake.sites[0]
    site.make_dir("/readonly", writable=False)
    foreign = site.put_file("/readonly/foreign.dat", b"not yours")
    result, _ = await probe(target(site, "/readonly"))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.AUTH)
    assert statuses(result)["write"] is Status.CRITICAL
    assert statuses(result)["delete"] is Status.OK
    assert foreign.read_bytes() == b"not yours"


async def test_slow_step_warning(lake: LocalLake) -> None:
    """With a slow-step threshold of ~0 every step is "slow": WARNING, reason `slow`."""
    result, _ = await probe(target(lake.sites[0]), slow_step_seconds=1e-9)
    assert (result.status, result.reason) == (Status.WARNING, Reason.SLOW)
    assert set(statuses(result).values()) == {Status.WARNING}


async def test_sweep(lake: LocalLake) -> None:
    """The sweep deletes this host's test files older than sweep_after_seconds and leaves a
    foreign file, another host's old test file and a fresh own file alone."""
    site, now = lake.sites[0], time.time()
    test_dir = LocalLake.test_dir
    stale = new_test_file(test_dir, "testhost", now=now - 3 * 3600)
    keep = [
        f"{test_dir}/notes.txt",
        new_test_file(test_dir, "otherhost", now=now - 3 * 3600),
        new_test_file(test_dir, "testhost", now=now - 60),
    ]
    for path in [stale, *keep]:
        site.put_file(path, b"x")
    result, _ = await probe(target(site), sweep_after_seconds=3600)
    assert result.status is Status.OK
    assert "1 stale" in result.steps[-1].detail
    assert not site.local_path(stale).exists()
    assert all(site.local_path(path).exists() for path in keep)


async def test_sweep_at_most_every_quarter_of_sweep_after(lake: LocalLake) -> None:
    """With one state store across runs, as in the daemon, the test directory is listed and
    swept at most once per sweep_after_seconds / 4 (a leftover is only stale after
    sweep_after_seconds); a sweep that fails stays due, so the next run reports it again."""
    site, test_dir, old = lake.sites[0], LocalLake.test_dir, time.time() - 3 * 3600
    state = StateStore.memory()
    first_stale, second_stale = (new_test_file(test_dir, "testhost", now=old) for _ in "ab")
    site.put_file(first_stale, b"x")
    first, _ = await probe(target(site), state=state, sweep_after_seconds=3600)
    assert (first.steps[-1].status, first.steps[-1].detail) == (
        Status.OK, "1 stale test files deleted")  # fmt: skip
    site.put_file(second_stale, b"x")
    second, _ = await probe(target(site), state=state, sweep_after_seconds=3600)
    assert second.status is Status.OK
    assert second.steps[-1].status is Status.SKIPPED
    assert re.fullmatch(r"test directory swept \d+ s ago \(at most every 900 s\)",
                        second.steps[-1].detail)  # fmt: skip
    assert site.local_path(second_stale).exists()

    undeletable = new_test_file(test_dir, "testhost", now=old)
    site.put_file(f"{undeletable}/inside", b"x")  # a non-empty directory: rm refuses it
    state = StateStore.memory()
    for _ in range(2):
        failing, _ = await probe(target(site), state=state, sweep_after_seconds=3600)
        assert (failing.steps[-1].status, failing.steps[-1].reason) == (
            Status.WARNING, Reason.CLEANUP)  # fmt: skip
    shutil.rmtree(site.local_path(undeletable))
    cleared, _ = await probe(target(site), state=state, sweep_after_seconds=3600)
    assert (cleared.status, cleared.steps[-1].status) == (Status.OK, Status.OK)
    assert not site.local_path(second_stale).exists()


async def test_missing_token_file(lake: LocalLake, tmp_path: Path) -> None:
    """A token file that does not exist: UNKNOWN `credential` naming the file; nothing is
    sent to the server (every later step SKIPPED)."""
    missing = tmp_path / "no-such.token"
    result, _ = await probe(target(lake.sites[0], token=FileToken(missing)))
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert str(missing) in result.steps[0].detail
    assert {s.status for s in result.steps[1:]} == {Status.SKIPPED}


async def test_token_never_leaks(
    lake: LocalLake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token travels as ?authz= CGI (an open server ignores it) and appears in no step
    detail and no log record, also when a step fails."""
    token_value = "eyJ.secret-token-value-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token_value)
    caplog.set_level(logging.DEBUG)
    ok, _ = await probe(target(lake.sites[0], token=FileToken(token_file)))
    lake.sites[0].make_dir("/closed", writable=False)
    bad, _ = await probe(target(lake.sites[0], "/closed", token=FileToken(token_file)))
    assert ok.status is Status.OK
    assert bad.reason is Reason.AUTH
    texts = [s.detail for s in (*ok.steps, *bad.steps)] + [r.getMessage() for r in caplog.records]
    assert not [text for text in texts if token_value in text]


ROOTS_CHILD = """
import asyncio, json, logging, sys
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage import xrootd
from lakeprobe.probes.storage.xrootd import PROBE_TYPE, XrootdParams
async def main():
    for url in sys.argv[1:]:
        out = await run_probe(PROBE_TYPE, Target("A", "x", url, "/lakeprobe"), XrootdParams(),
                              timeout=5, probe_host="testhost", log=logging.getLogger())
        print(json.dumps([out.result.status.name, out.result.reason.value]))
asyncio.run(main())
"""


def test_roots_tls(lake: LocalLake) -> None:
    """roots:// verifies the server against X509_CERT_DIR, which XrdCl reads once per process
    (so this runs in a child process with its own environment): OK for an address in the host
    certificate, CRITICAL `tls` for one that is not (127.0.0.2, also loopback)."""
    port = lake.sites[0].root_port
    env = {**os.environ, "X509_CERT_DIR": str(lake.pki.ca_dir)}
    urls = [f"roots://127.0.0.1:{port}", f"roots://127.0.0.2:{port}"]
    child = subprocess.run([sys.executable, "-c", ROOTS_CHILD, *urls], env=env,
                           capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert results == [["OK", "none"], ["CRITICAL", "tls"]]
    assert own_files(lake.sites[0]) == []
