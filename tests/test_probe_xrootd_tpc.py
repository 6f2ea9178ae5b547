"""The xrootd-tpc probe against real XRootD servers on loopback (the lake fixtures).

Every successful XRootD TPC takes ~2.5 s (XrdCl checks a running copy every 2.5 s), so pairs
run concurrently and failure cases are arranged to fail before or instead of a full copy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from state_helpers import loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.clients import copyjob
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.params import MIB
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import PREFIX, source_file, source_payload
from lakeprobe.probes.core.threads import BlockingThreads
from lakeprobe.probes.credentials.tokens import FileToken
from lakeprobe.probes.transfer import xrootd_tpc
from lakeprobe.probes.transfer.xrootd_tpc import PROBE_TYPE, XrootdTpcParams

LOG = logging.getLogger("test.xrootd_tpc")
STEPS = ["source", "copy", "verify", "delete", "sweep"]
SOURCE = source_file(LocalLake.test_dir, "testhost", MIB)


def target(lake: LocalLake, site: XrootdSite, token: FileToken | None = None) -> Target:
    # root:// on loopback: the tests opt in to tokens in cleartext.
    return Target(site=site.name, endpoint="xrootd", url=site.root_url, test_dir=lake.test_dir,
                  ca_dir=lake.pki.ca_dir, token=token, insecure_token_transport=True)  # fmt: skip


def pair(lake: LocalLake, src: int, dst: int, token: FileToken | None = None) -> PairTarget:
    return PairTarget(
        target(lake, lake.sites[src], token), target(lake, lake.sites[dst], token), "pull"
    )


async def probe(
    tgt: PairTarget,
    timeout: float = 10.0,
    state: StateStore | None = None,
    resources: ProbeResources | None = None,
    **params: object,
) -> ProbeResult:
    """One run; `state` defaults to the test's one store (tests/state_helpers.py); without
    `resources` the run has copy threads of its own."""
    outcome = await run_probe(
        PROBE_TYPE, tgt, validate_params(XrootdTpcParams, params), timeout=timeout,
        probe_host="testhost", log=LOG, state=state or loop_state(), resources=resources,
    )  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def statuses(result: ProbeResult) -> dict[str, Status]:
    return {step.name: step.status for step in result.steps}


def detail(result: ProbeResult, name: str) -> str:
    return next(step.detail for step in result.steps if step.name == name)


def copies(site: XrootdSite) -> list[str]:
    """Test files (not the reusable source file) left in the site's test directory."""
    directory = site.local_path(LocalLake.test_dir)
    return [
        p.name
        for p in directory.iterdir()
        if p.name.startswith(PREFIX) and "-source-" not in p.name
    ]


async def wait_idle(threads: BlockingThreads, bound: float) -> float:
    """Seconds until none of `threads` is busy (polled: threads have no awaitable); fails
    after `bound`."""
    started = time.monotonic()
    for _ in range(int(bound / 0.05)):
        if not threads.running:
            break
        await asyncio.sleep(0.05)
    assert threads.running == 0, "a copy thread is still busy"
    assert threads.abandoned == 0
    return time.monotonic() - started


def test_params() -> None:
    """Pull only (XRootD TPC is driven by the destination); bounded size; stall >= 5 s."""
    assert XrootdTpcParams().modes == ("pull",)
    assert XrootdTpcParams().engine == "xrootd"
    for bad in ({"modes": ["push"]}, {"file_size_bytes": 0}, {"stall_seconds": 1},
                {"engine": "fts"}, {"file_size_bytes": 2048 * MIB}):  # fmt: skip
        with pytest.raises(ValidationError):
            validate_params(XrootdTpcParams, bad)
    assert PROBE_TYPE.modes == ("pull",)


@pytest.mark.lake
async def test_all_pairs(lake3: LocalLake) -> None:
    """All 6 ordered pairs of a 3-site lake, concurrently, twice. Every run is OK with the
    transfer measured (1 MiB, first marker at XrdCl's 2.5 s check, the transfer timed to the
    destination holding every byte: shorter than the copy step, which waits for XrdCl's
    check); the source file of each
    site is uploaded once (by one of its two concurrent pairs) and reused afterwards, its
    mtime unchanged; no copy is left on any destination. Each destination is swept by one
    run only (at most once per sweep_after_seconds / 4); the other runs skip the sweep."""
    pairs = [pair(lake3, s, d) for s in range(3) for d in range(3) if s != d]
    first = await asyncio.gather(*(probe(p) for p in pairs))
    mtimes = [site.local_path(SOURCE).stat().st_mtime_ns for site in lake3.sites]
    second = await asyncio.gather(*(probe(p) for p in pairs))
    for result in first + second:
        assert (result.status, result.reason) == (Status.OK, Reason.NONE), result.steps
        assert statuses(result) == dict.fromkeys(STEPS[:-1], Status.OK) | {
            "sweep": statuses(result)["sweep"]
        }
        assert result.measurements[Measurement.TRANSFER_BYTES] == MIB
        assert result.measurements[Measurement.TRANSFER_THROUGHPUT] > 0
        assert 2.0 < result.measurements[Measurement.FIRST_MARKER] < 4.0
        seconds = MIB / result.measurements[Measurement.TRANSFER_THROUGHPUT]
        assert seconds < next(s.duration_seconds for s in result.steps if s.name == "copy")
    uploaded = [detail(r, "source").startswith("uploaded") for r in first + second]
    assert sum(uploaded[:6]) == 3
    assert not any(uploaded[6:])
    assert [site.local_path(SOURCE).stat().st_mtime_ns for site in lake3.sites] == mtimes
    assert all(copies(site) == [] for site in lake3.sites)
    swept = [statuses(r)["sweep"] for r in first + second]
    assert sorted(swept) == [Status.OK] * 3 + [Status.SKIPPED] * 9


@pytest.mark.parametrize("when", ["before_run", "after_source_step"])
@pytest.mark.lake
async def test_stopped_source(lake: LocalLake, when: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped source site: CRITICAL `connect`, at once. Stopped before the run, the
    `source` step's stat is refused; stopped after the source check, the copy's own open of
    the source is refused ("[FATAL] Connection error"), which is `connect` too, not
    source_missing: a refused connection says nothing about the file."""
    source_site = lake.sites[0]
    failed_step = "source"
    if when == "before_run":
        source_site.stop()
    else:
        failed_step, real_copy = "copy", xrootd_tpc.xrootd_copy

        async def stop_then_copy(*args: object, **kwargs: float) -> copyjob.CopyStats:
            source_site.stop()
            return await real_copy(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(xrootd_tpc, "xrootd_copy", stop_then_copy)
    started = time.monotonic()
    result = await probe(pair(lake, 0, 1))
    assert time.monotonic() - started < 1.0
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT), result.steps
    assert statuses(result)[failed_step] is Status.CRITICAL
    assert statuses(result)["verify"] is Status.SKIPPED


def stop_when_copying(
    monkeypatch: pytest.MonkeyPatch, site: XrootdSite, how: Callable[[XrootdSite], None]
) -> None:
    """`how(site)` (stop, pause) as the copy starts: after the source step's checks."""
    real = xrootd_tpc.xrootd_copy

    async def stop_then_copy(*args: Any, **kwargs: Any) -> copyjob.CopyStats:
        how(site)
        return await real(*args, **kwargs)

    monkeypatch.setattr(xrootd_tpc, "xrootd_copy", stop_then_copy)


@pytest.mark.parametrize("dead", ["source", "destination"])
@pytest.mark.lake
async def test_end_down_before_the_run(lake: LocalLake, dead: str) -> None:
    """An end stopped before the run fails the `source` step at once, which first checks
    that both ends are XRootD servers: `connect`, the side named; nothing else is tried."""
    lake.sites[0 if dead == "source" else 1].stop()
    result = await probe(pair(lake, 0, 1))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT), result.steps
    assert statuses(result)["source"] is Status.CRITICAL
    assert {statuses(result)[name] for name in ("copy", "verify", "delete")} == {Status.SKIPPED}
    assert detail(result, "source").startswith(f"{dead}: 127.0.0.1:")


@pytest.mark.lake
async def test_stopped_destination(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination stopped after the source step: the copy fails at once with `connect`
    ("Connection error (destination)"); the delete cannot reach it either (cleanup), the
    run's reason stays `connect`; the source file was still checked (and uploaded)."""
    stop_when_copying(monkeypatch, lake.sites[1], XrootdSite.stop)
    started = time.monotonic()
    result = await probe(pair(lake, 0, 1))
    assert time.monotonic() - started < 1.0
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT), result.steps
    assert statuses(result) == {"source": Status.OK, "copy": Status.CRITICAL,
                                "verify": Status.SKIPPED, "delete": Status.CRITICAL,
                                "sweep": Status.SKIPPED}  # fmt: skip
    assert "(destination)" in detail(result, "copy")
    assert lake.sites[0].local_path(SOURCE).stat().st_size == MIB


@pytest.mark.lake
async def test_source_cannot_be_uploaded(lake: LocalLake) -> None:
    """The source file is missing and the source test directory is not writable: CRITICAL
    `source_missing` at `source`; nothing is copied, so copy/verify/delete are SKIPPED."""
    site = lake.sites[0]
    site.local_path(SOURCE).unlink(missing_ok=True)
    site.make_dir(LocalLake.test_dir, writable=False)
    result = await probe(pair(lake, 0, 1))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.SOURCE_MISSING)
    assert statuses(result) == {"source": Status.CRITICAL} | dict.fromkeys(
        STEPS[1:], Status.SKIPPED
    )
    assert "missing; upload failed" in detail(result, "source")


@pytest.mark.lake
async def test_corrupt_source_is_reuploaded(lake: LocalLake) -> None:
    """A source file corrupted behind the server's back (it still reports the adler32 it
    computed for the intact file) passes the source check and is copied; the destination
    computes the real adler32: CRITICAL `checksum_mismatch` at `verify`, the bad copy
    deleted. The next run re-uploads the source file and passes."""
    source_site, tpc = lake.sites[0], pair(lake, 0, 1)
    source_site.put_file(SOURCE, source_payload(MIB))  # as a run would have uploaded it
    source_site.corrupt_silently(SOURCE)
    state = StateStore.memory()  # the daemon's: what one run learns, the next knows
    bad = await probe(tpc, state=state)
    assert (bad.status, bad.reason) == (Status.CRITICAL, Reason.CHECKSUM_MISMATCH), bad.steps
    assert statuses(bad) == {"source": Status.OK, "copy": Status.OK, "verify": Status.CRITICAL,
                             "delete": Status.OK, "sweep": Status.OK}  # fmt: skip
    assert detail(bad, "source").startswith("reused")
    fixed = await probe(tpc, state=state)
    assert fixed.status is Status.OK, fixed.steps
    assert detail(fixed, "source").startswith("uploaded")
    assert "wrong adler32" in detail(fixed, "source")
    assert copies(lake.sites[1]) == []


@pytest.mark.lake
async def test_hung_destination_times_out(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination SIGSTOPped as the copy starts accepts connections and never answers:
    CRITICAL `timeout` at `copy` within the deadline (+2 s). XrdCl is in the copy's set-up
    phase (opening the destination), where it polls nothing: its own init timeout, set to
    the time left, frees the copy thread at about the deadline."""
    stop_when_copying(monkeypatch, lake.sites[1], XrootdSite.pause)
    started = time.monotonic()
    resources = ProbeResources()
    result = await probe(pair(lake, 0, 1), timeout=3, resources=resources)
    took = time.monotonic() - started
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.TIMEOUT), result.steps
    assert statuses(result)["copy"] is Status.CRITICAL
    assert took < 3 + 2
    await wait_idle(resources.threads, bound=3.0)
    resources.close()


@pytest.mark.lake
async def test_stalled_copy_is_cancelled(lake_factory: Callable[[int], LocalLake]) -> None:
    """The destination's transfer helper never moves a byte (its `ofs.tpc pgm` sleeps):
    after `stall_seconds` without progress the copy is CRITICAL `stall`; the progress
    handler's should_cancel() then tells XrdCl (at its next 2.5 s check) to cancel the copy,
    which frees the thread long before the deadline; the empty copy is deleted."""
    lake = lake_factory(2)
    stalling = lake.sites[1]
    stalling.stop()
    script = stalling.base_dir / "stall-helper.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    stalling.extra_config.append(f"ofs.tpc pgm {script}")
    stalling.start()
    resources = ProbeResources()
    result = await probe(pair(lake, 0, 1), timeout=20, resources=resources, stall_seconds=5)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.STALL), result.steps
    assert statuses(result) == {"source": Status.OK, "copy": Status.CRITICAL,
                                "verify": Status.SKIPPED, "delete": Status.OK,
                                "sweep": Status.OK}  # fmt: skip
    assert 5.0 <= result.steps[1].duration_seconds < 6.0
    assert await wait_idle(resources.threads, bound=3.0) < 3.0
    assert copies(stalling) == []
    resources.close()


@pytest.mark.lake
async def test_tokens_never_leak(
    lake: LocalLake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens travel as per-side ?authz= CGI (open servers ignore them): the copy works, and
    no step detail or log record shows the token, also when the copy fails."""
    token_value = "eyJ.tpc-secret-token-" + os.urandom(8).hex()
    token_file = tmp_path / "token"
    token_file.write_text(token_value)
    caplog.set_level(logging.DEBUG)
    ok = await probe(pair(lake, 0, 1, FileToken(token_file)))
    lake.sites[1].stop()
    bad = await probe(pair(lake, 0, 1, FileToken(token_file)))
    assert ok.status is Status.OK, ok.steps
    assert [s.name for s in ok.steps] == ["credential", *STEPS]
    assert bad.reason is Reason.CONNECT
    texts = [s.detail for s in (*ok.steps, *bad.steps)] + [r.getMessage() for r in caplog.records]
    assert not [text for text in texts if token_value in text]
