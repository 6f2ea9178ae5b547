"""The http-tpc probe against real XRootD 5.5.3 (XrdHttp + libXrdHttpTPC) sites on loopback.

What XrdHttp answers, as these tests pin it down:
- healthy copy (pull or push): 201, one perf marker (0 bytes), `success: Created`;
- pull of a missing source: 201, then `failure: Remote side failed with status code 404;
  error message: "Unable to open ...; no such file or directory "`, and an EMPTY file is
  left at the destination (the probe's delete removes it);
- push of a missing source: 400 `Unable to open ...; no such file or directory`;
- the passive side stopped after the probe's own checks: 201, then
  `failure: Couldn't connect to server` (curl's text) in both modes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time

import pytest
from crash_retry import once_more_if_xrootd_crashed
from state_helpers import loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import source_file
from lakeprobe.probes.transfer.http_tpc import PROBE_TYPE, BeforeCopy, HttpTpcParams, HttpTpcProbe

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.http_tpc")
HOST = "testhost"
SIZE = 256 * 1024
PARAMS = HttpTpcParams(file_size_bytes=SIZE)
STEPS = ["source", "mkcol", "copy", "verify", "delete", "sweep"]
SOURCE_PATH = source_file("/lakeprobe", HOST, SIZE)


def target(lake: LocalLake, site: XrootdSite) -> Target:
    return Target(site=site.name, endpoint="webdav", url=site.davs_url,
                  test_dir=lake.test_dir, ca_dir=lake.pki.ca_dir)  # fmt: skip


def pair(lake: LocalLake, src: XrootdSite, dst: XrootdSite, mode: str) -> PairTarget:
    return PairTarget(target(lake, src), target(lake, dst), mode)


async def tpc(
    pair_target: PairTarget,
    *,
    timeout: float = 10.0,
    before_copy: BeforeCopy | None = None,
    params: HttpTpcParams = PARAMS,
    state: StateStore | None = None,
) -> ProbeResult:
    """One run; `state` defaults to the test's one store (tests/state_helpers.py)."""
    probe_type = dataclasses.replace(PROBE_TYPE, factory=lambda: HttpTpcProbe(before_copy))
    outcome = await run_probe(
        probe_type,
        pair_target,
        params,
        timeout=timeout,
        probe_host=HOST,
        log=LOG,
        state=state or loop_state(),
    )
    assert outcome.exception is None
    return outcome.result


def steps(result: ProbeResult) -> dict[str, StepResult]:
    return {step.name: step for step in result.steps}


def files(site: XrootdSite) -> list[str]:
    return sorted(p.name for p in site.local_path("/lakeprobe").iterdir())


def all_pairs(lake: LocalLake) -> list[PairTarget]:
    ordered = itertools.permutations(lake.sites, 2)
    return [pair(lake, s, d, m) for (s, d) in ordered for m in ("pull", "push")]


async def test_matrix_succeeds_and_reuses_the_source(lake3: LocalLake) -> None:
    """6 ordered pairs x {pull, push}, all at once: every run OK with every step OK. Each
    source file is uploaded by exactly one run (concurrent runs wait for it), a second round
    uploads nothing (same inode, same mtime), and no copy is left at any destination.

    XRootD 5.5.3 itself occasionally segfaults (libssl/libcrypto) under these 24 concurrent
    HTTPS runs. Only then, the crashed site is restarted and the test runs once more from a
    clean state; a failure with every site alive is never retried."""

    def clear_leftovers() -> None:
        for site in lake3.sites:
            for leftover in site.local_path("/lakeprobe").iterdir():
                leftover.unlink()

    await once_more_if_xrootd_crashed(lake3, lambda _: _matrix_twice(lake3), clear_leftovers)


async def _matrix_twice(lake3: LocalLake) -> None:
    pairs = all_pairs(lake3)
    state = StateStore.memory()  # one store, as in the daemon: pairs share source-file locks
    first = await asyncio.gather(*(tpc(p, state=state) for p in pairs))
    for p, result in zip(pairs, first, strict=True):
        assert (result.status, result.reason) == (Status.OK, Reason.NONE), (p, result.steps)
        assert [s.name for s in result.steps] == STEPS
        assert result.measurements[Measurement.TRANSFER_BYTES] == SIZE
        assert result.measurements[Measurement.TRANSFER_THROUGHPUT] > 0
        assert 0 < result.measurements[Measurement.FIRST_MARKER] < 1.0
    for site in lake3.sites:
        sources = [steps(r)["source"] for p, r in zip(pairs, first, strict=True)
                   if p.source.site == site.name]  # fmt: skip
        assert sum("uploaded" in s.detail for s in sources) == 1
        assert files(site) == [SOURCE_PATH.rsplit("/", 1)[1]]
    stamps = [site.local_path(SOURCE_PATH).stat() for site in lake3.sites]
    second = await asyncio.gather(*(tpc(p, state=state) for p in pairs))
    for p, result in zip(pairs, second, strict=True):
        assert result.status is Status.OK, (p.describe(), result.steps)
    assert all(steps(r)["source"].detail.startswith("reused") for r in second)
    after = [site.local_path(SOURCE_PATH).stat() for site in lake3.sites]
    assert [(s.st_ino, s.st_mtime_ns) for s in stamps] == [(s.st_ino, s.st_mtime_ns) for s in after]


async def test_stopped_site_fails_only_its_pairs(lake3: LocalLake) -> None:
    """SITE-C stopped. The probe talks to both sides itself before the COPY (source: HEAD at
    the source; mkcol: MKCOL at the destination), so a down site is seen directly as
    `connect` by the step that talks to it, in whichever role; the copy is then skipped and
    nothing is left anywhere. Pairs without SITE-C stay OK."""
    down = lake3.sites[2]
    down.stop()
    pairs = all_pairs(lake3)
    results = await asyncio.gather(*(tpc(p) for p in pairs))
    for p, result in zip(pairs, results, strict=True):
        if down.name not in (p.source.site, p.destination.site):
            assert result.status is Status.OK, (p, result.steps)
            continue
        failing = "source" if p.source.site == down.name else "mkcol"
        assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
        assert steps(result)[failing].reason is Reason.CONNECT
        assert steps(result)["copy"].status is Status.SKIPPED
    assert [f for f in files(lake3.sites[0]) if "source" not in f] == []


@pytest.mark.parametrize("mode", ["pull", "push"])
async def test_passive_side_down_during_copy(lake: LocalLake, mode: str) -> None:
    """The passive side stops after the probe's own checks: XrdHttp still answers 201, then
    `failure: Couldn't connect to server`, which is `connect` at the copy step. In pull mode
    the active destination left an empty file: delete removes it; in push mode the
    destination is the stopped site, so delete fails too (connect)."""
    src, dst = lake.sites
    passive = src if mode == "pull" else dst

    async def stop_passive(*_: object) -> None:
        await asyncio.to_thread(passive.stop)

    result = await tpc(pair(lake, src, dst, mode), before_copy=stop_passive)
    copy = steps(result)["copy"]
    assert (result.status, result.reason, copy.reason) == (
        Status.CRITICAL, Reason.CONNECT, Reason.CONNECT
    )  # fmt: skip
    assert copy.detail == "COPY: 201, then failure: Couldn't connect to server"
    assert "verify" in steps(result)
    assert steps(result)["verify"].status is Status.SKIPPED
    delete = steps(result)["delete"]
    if mode == "pull":
        assert delete.status is Status.OK
        assert files(dst) == []
    else:
        assert delete.reason is Reason.CONNECT


@pytest.mark.parametrize(
    ("mode", "detail_start"),
    [
        ("pull", "COPY: 201, then failure: Remote side failed with status code 404"),
        ("push", "COPY: 400 Unknown (Unable to open /lakeprobe/lakeprobe-source-"),
    ],
)
async def test_source_gone_at_copy_time(lake: LocalLake, mode: str, detail_start: str) -> None:
    """The source file disappears between the `source` step and the COPY (removed on disk by
    the before_copy seam). Pull: XrdHttp answers 201 and only the last body line tells
    (`failure: Remote side failed with status code 404`); push: 400 `Unable to open`. Both
    are CRITICAL source_missing at copy; the empty destination file a failed pull leaves is
    deleted. The next run uploads the source again and passes."""
    src, dst = lake.sites

    async def remove_source(_: PairTarget, source_path: str, __: str) -> None:
        src.local_path(source_path).unlink()

    result = await tpc(pair(lake, src, dst, mode), before_copy=remove_source)
    copy = steps(result)["copy"]
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.SOURCE_MISSING)
    assert copy.reason is Reason.SOURCE_MISSING
    assert copy.detail.startswith(detail_start)
    assert steps(result)["delete"].status is Status.OK
    assert files(dst) == []
    again = await tpc(pair(lake, src, dst, mode))
    assert again.status is Status.OK, again.steps
    assert steps(again)["source"].detail.endswith("(missing)")


async def test_silent_corruption_then_reupload(lake: LocalLake) -> None:
    """The source's bytes change behind the server's back (stale cached adler32): `source`
    still sees the right checksum, the copy succeeds, `verify` finds the destination's fresh
    adler32 wrong: CRITICAL checksum_mismatch. The next run (same state store: the daemon's)
    re-uploads and passes."""
    src, dst = lake.sites
    state = StateStore.memory()
    assert (await tpc(pair(lake, src, dst, "push"), state=state)).status is Status.OK
    src.corrupt_silently(SOURCE_PATH)
    corrupt = await tpc(pair(lake, src, dst, "pull"), state=state)
    assert (corrupt.status, corrupt.reason) == (Status.CRITICAL, Reason.CHECKSUM_MISMATCH)
    assert steps(corrupt)["source"].detail.startswith("reused")
    assert steps(corrupt)["verify"].reason is Reason.CHECKSUM_MISMATCH
    assert steps(corrupt)["delete"].status is Status.OK
    assert files(dst) == []
    healed = await tpc(pair(lake, src, dst, "pull"), state=state)
    assert healed.status is Status.OK, healed.steps
    assert "failed verification" in steps(healed)["source"].detail


async def test_paused_active_side_times_out(lake3: LocalLake) -> None:
    """The active side (pull: the destination) is frozen (SIGSTOP) just before the COPY: the
    copy step times out (CRITICAL timeout) and the run ends within its 3 s deadline (+2 s);
    a concurrent run between the other two sites is OK meanwhile."""
    src, frozen, other = lake3.sites

    async def freeze(*_: object) -> None:
        frozen.pause()

    started = time.monotonic()
    try:
        results = await asyncio.gather(
            tpc(pair(lake3, src, frozen, "pull"), timeout=3.0, before_copy=freeze),
            tpc(pair(lake3, src, other, "push"), timeout=3.0),
        )
        elapsed = time.monotonic() - started
    finally:
        frozen.resume()
    assert (results[0].status, results[0].reason) == (Status.CRITICAL, Reason.TIMEOUT)
    assert steps(results[0])["copy"].reason is Reason.TIMEOUT
    assert results[1].status is Status.OK, results[1].steps
    assert elapsed < 3.0 + 2.0


async def test_gfal2_engine(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """engine gfal2: the same steps, the COPY sent by gfal2 (probes/clients/gfalcopy.py) as FTS
    sends
    it, pull and push at once; gfal2 checks both adler32s too. davix reads its CA directory
    from X509_CERT_DIR only (set here for the test; the daemon is started with it)."""
    monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))
    params = HttpTpcParams(file_size_bytes=SIZE, engine="gfal2")
    src, dst = lake.sites
    results = await asyncio.gather(
        *(tpc(pair(lake, src, dst, mode), params=params) for mode in ("pull", "push"))
    )
    for result in results:
        assert result.status is Status.OK, result.steps
        assert steps(result)["copy"].detail.startswith("gfal2 3rd ")
        assert result.measurements[Measurement.TRANSFER_BYTES] == SIZE
    assert files(dst) == []
