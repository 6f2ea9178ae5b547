"""The tape-recall probe against the real tape-emulating XRootD site, over XRootD prepare and
over the WLCG Tape REST API (the lake's double, fronting the same site through prepare)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from conftest import need_binaries

from lakeprobe.lake import LocalLake, TapeEmulation
from lakeprobe.lake.taperest import TapeRestDouble
from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.tapeqos import TapeFile, TapeQos
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.tape import ledger
from lakeprobe.probes.tape.recall import PROBE_TYPE, TapeRecallParams

RECALL = 1.0  # the drive's recall delay, seconds
LOG = logging.getLogger("test.tape")
pytestmark = pytest.mark.lake


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("tape"), tape_sites=True) as lake:
        yield lake


@pytest.fixture
def tape(tape_lake: LocalLake) -> TapeEmulation:
    emulation = tape_lake.sites[0].tape
    assert emulation is not None
    emulation.recall_delay_seconds = RECALL
    emulation.archive_delay_seconds = 0.5
    emulation.hang_stages = False
    return emulation


def on_tape(tape: TapeEmulation, count: int = 2) -> list[TapeFile]:
    """`count` new files on tape only, with their adler32."""
    folder = f"/tape/t-{uuid.uuid4().hex[:8]}"
    files = []
    for i in range(count):
        data = f"tape file {i} {folder}".encode() * 100
        tape.put_on_tape(f"{folder}/f{i}", data)
        files.append(TapeFile(f"{folder}/f{i}", f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"))
    return files


def target(lake: LocalLake, qos: TapeQos, url: str | None = None) -> Target:
    site = lake.sites[0]
    return Target(
        site=site.name, endpoint="tape", url=url or site.root_url, test_dir="/lakeprobe",
        ca_dir=lake.pki.ca_dir, tape=qos,
    )  # fmt: skip


def run(where: Target, state: StateStore, **params: object) -> ProbeResult:
    outcome = asyncio.run(
        run_probe(
            PROBE_TYPE,
            where,
            validate_params(TapeRecallParams, params),
            timeout=30,
            probe_host="t",
            log=LOG,
            state=state,
        )
    )
    return outcome.result


def step(result: ProbeResult, name: str) -> tuple[Status, Reason, str]:
    (found,) = [s for s in result.steps if s.name == name]
    return found.status, found.reason, found.detail


def until(condition: Callable[[], bool], bound: float = 15.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def due_now(state: StateStore, where: Target) -> None:
    """Make the outstanding request's next poll due (the backoff's first wait is 2 s)."""
    book = ledger.load(state, where)
    assert book.request is not None
    book.request = replace(book.request, next_poll_at=0.0)
    ledger.save(state, where, book)


def test_xrootd_recall_completes_verifies_and_evicts(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """Run 1 stages the first offline file and returns at once; once the drive recalled it,
    run 2 finds it online, reads and verifies it, evicts it and stages the next file. The
    recall time is the configured delay plus polling slack."""
    files = on_tape(tape)
    where = target(tape_lake, TapeQos("xrootd", tuple(files), may_evict=True))
    state = StateStore.memory()
    first = run(where, state)
    assert first.status is Status.OK, first.steps
    assert step(first, "stage")[2].startswith(f"staged {files[0].path}")
    assert first.measurements[Measurement.TAPE_OUTSTANDING] == 1.0
    assert first.measurements[Measurement.TAPE_FILES_TAPE] == 2.0
    submitted = time.time()
    until(lambda: tape.is_online(files[0].path))
    slack = time.time() - submitted
    due_now(state, where)
    second = run(where, state)
    assert second.status is Status.OK, second.steps
    assert "verified" in step(second, "read")[2]
    assert step(second, "release")[2] == f"evicted {files[0].path}"
    recall = second.measurements[Measurement.TAPE_RECALL]
    assert RECALL * 0.9 <= recall <= RECALL + slack + 3.0
    assert step(second, "stage")[2].startswith(f"staged {files[1].path}")
    until(lambda: not tape.is_online(files[0].path))  # evicted: recallable again


def test_a_lost_reference_file_is_critical(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    """A reference file gone from tape is LOST: CRITICAL `locality_lost`, naming it."""
    files = on_tape(tape)
    tape.lose(files[1].path)
    result = run(target(tape_lake, TapeQos("xrootd", tuple(files))), StateStore.memory())
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.LOCALITY_LOST)
    assert files[1].path in step(result, "locality")[2]


def test_a_file_lost_during_its_recall_fails_the_recall(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """The tape copy vanishes while its stage is queued: the run's locality check says LOST
    at once, and once the drive gives up, the poll fails the recall and drops the request."""
    files = on_tape(tape, 1)
    tape.hang_stages = True
    where, state = target(tape_lake, TapeQos("xrootd", tuple(files))), StateStore.memory()
    assert run(where, state).status is Status.OK
    tape.lose(files[0].path)
    tape.hang_stages = False
    deadline = time.monotonic() + 15
    while True:
        due_now(state, where)
        result = run(where, state)
        assert (result.status, result.reason) == (Status.CRITICAL, Reason.LOCALITY_LOST)
        if step(result, "poll")[0] is not Status.OK or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert step(result, "poll")[1] in (Reason.LOCALITY_LOST, Reason.FILE_FAILED)
    assert ledger.load(state, where).request is None  # dropped, cancelled on the server


def test_a_stage_that_never_completes_turns_warning_then_critical(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """Pending past online_warning: WARNING `stage_timeout`; past online_critical: CRITICAL."""
    files = on_tape(tape, 1)
    tape.hang_stages = True
    qos = TapeQos("xrootd", tuple(files), online_warning=1.0, online_critical=3.0)
    where, state = target(tape_lake, qos), StateStore.memory()
    assert run(where, state).status is Status.OK
    time.sleep(1.2)
    due_now(state, where)
    warned = run(where, state)
    assert (warned.status, warned.reason) == (Status.WARNING, Reason.STAGE_TIMEOUT)
    time.sleep(2.0)
    due_now(state, where)
    late = run(where, state)
    assert (late.status, late.reason) == (Status.CRITICAL, Reason.STAGE_TIMEOUT)
    assert late.measurements[Measurement.TAPE_OLDEST_OUTSTANDING] >= 3.0


def test_a_wrong_adler32_is_critical(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    (good,) = on_tape(tape, 1)
    bad = TapeFile(good.path, "00000001")
    result = run(target(tape_lake, TapeQos("xrootd", (bad,))), StateStore.memory(), wait=True)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CHECKSUM_MISMATCH)


def test_wait_mode_recalls_within_one_run(tape_lake: LocalLake, tape: TapeEmulation) -> None:
    """What the CLI runs: stage, wait, read, verify, in one run, with a timeline."""
    files = on_tape(tape, 1)
    where = target(tape_lake, TapeQos("xrootd", tuple(files)))
    result = run(where, StateStore.memory(), wait=True)
    assert result.status is Status.OK, result.steps
    assert [s.name for s in result.steps] == ["connect", "locality", "stage", "poll", "read",
                                              "release"]  # fmt: skip
    assert "submitted" in step(result, "poll")[2]
    assert result.measurements[Measurement.TAPE_RECALL] >= RECALL * 0.9


def test_wait_mode_cancels_what_the_timeout_cut_short(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """A recall still pending at the run's timeout: cancelled, not judged (UNKNOWN)."""
    files = on_tape(tape, 1)
    tape.hang_stages = True
    where, state = target(tape_lake, TapeQos("xrootd", tuple(files))), StateStore.memory()
    outcome = asyncio.run(
        run_probe(
            PROBE_TYPE,
            where,
            TapeRecallParams(wait=True),
            timeout=6,
            probe_host="t",
            log=LOG,
            state=state,
        )
    )
    result = outcome.result
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.TIMEOUT), result.steps
    assert step(result, "cancel")[0] is Status.OK
    assert ledger.load(state, where).request is None


def test_archive_canary_reaches_tape_and_is_deleted(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """Run 1 writes a canary into the tape-class directory; once migrated, run 2 reports
    the archive lag and deletes it."""
    qos = TapeQos("xrootd", archive_dir=tape.archive_dir)
    where, state = target(tape_lake, qos), StateStore.memory()
    first = run(where, state)
    assert first.status is Status.OK, first.steps
    canary = ledger.load(state, where).canary
    assert canary is not None
    assert canary.path.startswith(tape.archive_dir + "/lakeprobe-")
    until(lambda: tape.is_on_tape(canary.path))
    second = run(where, state)
    assert second.status is Status.OK, second.steps
    assert second.measurements[Measurement.TAPE_ARCHIVE_LAG] >= 0.5
    assert ledger.load(state, where).canary is None
    until(lambda: not tape.is_online(canary.path))


@pytest.mark.parametrize("dialect", ["dcache", "eos", "storm"])
def test_tape_rest_recall_leaves_no_request_open(
    tape_lake: LocalLake, tape: TapeEmulation, dialect: str
) -> None:
    """Over the Tape REST API (discovered at the double's origin): stage with diskLifetime,
    poll, read over https, release; the server keeps no request afterwards."""
    files = on_tape(tape, 1)
    site = tape_lake.sites[0]
    with TapeRestDouble(tape_lake.pki, XrootdPrepareBackend(site.root_url), dialect) as api:
        qos = TapeQos("tape-rest", tuple(files), discovery_url=api.url, disk_lifetime=600)
        where, state = target(tape_lake, qos, site.https_url), StateStore.memory()
        first = run(where, state)
        assert first.status is Status.OK, first.steps
        assert api.disk_lifetimes[files[0].path] == "PT600S"
        until(lambda: tape.is_online(files[0].path))
        due_now(state, where)
        second = run(where, state)
        assert second.status is Status.OK, second.steps
        assert "verified" in step(second, "read")[2]
        assert step(second, "release")[2].startswith(f"released {files[0].path}")
        assert api.open_requests() == []


def test_tape_rest_path_mismatch_is_its_own_reason(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """A poll answer naming another path (dCache #7585, which breaks FTS): CRITICAL
    `path_mismatch`; the request is cancelled and deleted rather than trusted."""
    files = on_tape(tape, 1)
    site = tape_lake.sites[0]
    backend = XrootdPrepareBackend(site.root_url)
    with TapeRestDouble(tape_lake.pki, backend, "dcache", path_mismatch=True) as api:
        qos = TapeQos("tape-rest", tuple(files), rest_api=api.api_uri)
        where, state = target(tape_lake, qos, site.https_url), StateStore.memory()
        assert run(where, state).status is Status.OK
        first = ledger.load(state, where).request
        assert first is not None
        due_now(state, where)
        result = run(where, state)
        assert (result.status, result.reason) == (Status.CRITICAL, Reason.PATH_MISMATCH)
        assert first.request_id not in api.open_requests()  # cancelled and deleted
        assert step(result, "stage")[0] is Status.OK  # and the next recall is on its way


def test_tape_rest_discovery_failure_names_the_endpoint(
    tape_lake: LocalLake, tape: TapeEmulation
) -> None:
    """XrdHttp 5.5 serves no /.well-known/wlcg-tape-rest-api: `discovery_failed`."""
    files = on_tape(tape, 1)
    site = tape_lake.sites[0]
    where = target(tape_lake, TapeQos("tape-rest", tuple(files)), site.https_url)
    # discovery_url unset: the endpoint's own origin is asked
    result = run(where, StateStore.memory())
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.DISCOVERY_FAILED)
    assert "well-known" in step(result, "connect")[2]
