"""The fixity probe against a real local XRootD site over root:// and davs://: canaries are
written once, verified in rotation, and each kind of corruption behind the server's back
(LocalLake's corrupt_silently, truncate_silently, delete_behind) is found with its reason."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need_binaries
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import parse_config
from lakeprobe.config.plan import build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import FAMILIES_BY_PROBE_TYPE
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex, new_test_file
from lakeprobe.probes.integrity import canaries
from lakeprobe.probes.integrity.canaries import Canary, CanaryState, Ledger
from lakeprobe.probes.integrity.fixity import PROBE_TYPE, FixityParams, _choose

LOG = logging.getLogger("test.fixity")
HOST = "fixity-host"
SIZES = (0, 1024, 64 * 1024)
PROTOCOLS = ("root", "davs")
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("fixity")) as started:
        yield started


def endpoint(lake: LocalLake, protocol: str, **fields: Any) -> Target:
    """A target with a fresh test directory of its own, holding decoy files (see decoys)."""
    site = lake.sites[0]
    test_dir = f"{LocalLake.test_dir}/fx-{uuid.uuid4().hex[:10]}"
    site.make_dir(test_dir)
    url = site.root_url if protocol == "root" else site.davs_url
    return replace(Target(site.name, protocol, url, test_dir, ca_dir=lake.pki.ca_dir), **fields)


def decoys(site: XrootdSite, test_dir: str) -> dict[str, bytes]:
    """Files the probe must never touch: foreign, a stale test file of another host (what a
    sweep would delete), a TPC source, another host's canary."""
    names = [
        "decoy.dat",
        new_test_file(test_dir, "other-host", now=1_000_000_000).rsplit("/", 1)[1],
        "lakeprobe-source-other-host-1024",
        "lakeprobe-canary-other-host-0-1024",
    ]
    placed = {}
    for name in names:
        data = f"decoy {name}".encode()
        site.put_file(f"{test_dir}/{name}", data)
        placed[f"{test_dir}/{name}"] = data
    return placed


def intact(site: XrootdSite, placed: dict[str, bytes]) -> bool:
    return all(site.local_path(path).read_bytes() == data for path, data in placed.items())


async def run(where: Target, state: StateStore, **params: object) -> ProbeResult:
    merged: dict[str, object] = {"sizes": SIZES, "per_run": 1, **params}
    outcome = await run_probe(
        PROBE_TYPE, where, validate_params(FixityParams, merged), timeout=30, probe_host=HOST,
        log=LOG, state=state,
    )  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def step(result: ProbeResult, name: str) -> tuple[Status, Reason, str]:
    (found,) = [s for s in result.steps if s.name == name]
    return found.status, found.reason, found.detail


def counts(result: ProbeResult) -> dict[str, float]:
    prefix = "fixity_canaries_"
    return {
        m.value.removeprefix(prefix): v
        for m, v in result.measurements.items()
        if m.value.startswith(prefix) and v
    }


def canary(where: Target, index: int) -> str:
    return canaries.canary_path(where.test_dir, HOST, where.endpoint, index, SIZES[index])


# Over davs:// at most 1 MiB: a larger PUT body makes aiohttp warn (ResourceWarning, an error
# under pytest's filterwarnings) although httpclient sends it in slices.
@pytest.mark.lake
@pytest.mark.parametrize(("protocol", "largest"), [("root", 4 * MIB), ("davs", MIB)])
async def test_healthy_endpoint_is_ok(lake: LocalLake, protocol: str, largest: int) -> None:
    """The first run writes every canary and verifies them all; later runs write nothing and
    verify `per_run` in rotation; every run is OK with all canaries ok, and the oldest
    verification time is from this test."""
    where, state = endpoint(lake, protocol), StateStore.memory()
    site, started = lake.sites[0], time.time()
    placed = decoys(site, where.test_dir)
    sizes = (0, 1024, MIB // 2, largest)
    first = await run(where, state, sizes=sizes, per_run=2)
    assert (first.status, first.reason) == (Status.OK, Reason.NONE), first.steps
    assert [s.name for s in first.steps] == ["create", "read", "checksum"]
    assert counts(first) == {"ok": 4.0}
    second = await run(where, state, sizes=sizes, per_run=2)
    assert [s.name for s in second.steps] == ["read", "checksum"]
    assert second.status is Status.OK
    assert "2 canaries read" in step(second, "read")[2]
    assert second.measurements[Measurement.FIXITY_OLDEST_VERIFIED] >= started - 1
    verified = dict(second.labelled[Measurement.FIXITY_CANARY_VERIFIED])
    assert set(verified) == {f"{i}-{size}" for i, size in enumerate(sizes)}
    assert min(verified.values()) == second.measurements[Measurement.FIXITY_OLDEST_VERIFIED]
    assert all(started - 1 <= t <= time.time() for t in verified.values())
    name = f"{where.test_dir}/lakeprobe-canary-{HOST}-{where.endpoint}-3-{largest}"
    assert site.local_path(name).stat().st_size == largest
    assert intact(site, placed)


async def found_within(where: Target, state: StateStore, reason: Reason) -> ProbeResult:
    """Runs until one reports `reason`: the rotation reaches every canary within len(SIZES)
    runs (per_run 1)."""
    for _ in SIZES:
        result = await run(where, state)
        if result.reason is reason:
            return result
    raise AssertionError(f"{reason} not found in {len(SIZES)} runs: {result.steps}")


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bytes_flipped_at_rest(lake: LocalLake, protocol: str) -> None:
    """A byte flipped behind the server's back, mtime kept: the bytes differ from the truth
    (canary_corrupted, CRITICAL) and the server still reports the old checksum
    (checksum_stale); the canary stays corrupted, never silently rewritten."""
    where, state, site = endpoint(lake, protocol), StateStore.memory(), lake.sites[0]
    placed = decoys(site, where.test_dir)
    assert (await run(where, state)).status is Status.OK
    site.corrupt_silently(canary(where, 2))
    result = await found_within(where, state, Reason.CANARY_CORRUPTED)
    assert result.status is Status.CRITICAL
    assert step(result, "checksum")[:2] == (Status.CRITICAL, Reason.CHECKSUM_STALE)
    assert counts(result) == {"ok": 2.0, "corrupted": 1.0}
    again = await run(where, state)
    assert again.reason is Reason.CANARY_CORRUPTED  # checked every run while bad
    assert "create" not in [s.name for s in again.steps]
    assert intact(site, placed)


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stale_server_checksum_over_intact_bytes(lake: LocalLake, protocol: str) -> None:
    """The server caches the checksum of other bytes, then the file's own bytes come back
    (mtime kept): the data is intact but the server's checksum is stale: checksum_stale,
    CRITICAL, and the canary counts as stale."""
    where, state, site = endpoint(lake, protocol), StateStore.memory(), lake.sites[0]
    assert (await run(where, state)).status is Status.OK
    path = canary(where, 1)
    site.corrupt_silently(path)  # bytes flipped
    local = site.local_path(path)
    mtime = local.stat().st_mtime_ns + 1_000_000_000
    os.utime(local, ns=(mtime, mtime))  # so the server computes the flipped bytes' checksum
    site.corrupt_silently(path)  # caches it, then flips the byte back
    result = await found_within(where, state, Reason.CHECKSUM_STALE)
    assert (result.status, step(result, "read")[0]) == (Status.CRITICAL, Status.OK)
    assert counts(result) == {"ok": 2.0, "stale": 1.0}


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_truncated_canary(lake: LocalLake, protocol: str) -> None:
    """A canary cut short behind the server's back: size_mismatch, CRITICAL, counted
    corrupted."""
    where, state, site = endpoint(lake, protocol), StateStore.memory(), lake.sites[0]
    placed = decoys(site, where.test_dir)
    assert (await run(where, state)).status is Status.OK
    site.truncate_silently(canary(where, 2), 100)
    result = await found_within(where, state, Reason.SIZE_MISMATCH)
    assert result.status is Status.CRITICAL
    assert "100 bytes, not 65536" in step(result, "read")[2]
    assert counts(result) == {"ok": 2.0, "corrupted": 1.0}
    assert intact(site, placed)


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_lost_canary_reported_once_then_recreated(lake: LocalLake, protocol: str) -> None:
    """A canary deleted behind the server's back is reported canary_lost (CRITICAL) by the
    run that finds it, once; the next run re-creates it with new bytes and is OK."""
    where, state, site = endpoint(lake, protocol), StateStore.memory(), lake.sites[0]
    placed = decoys(site, where.test_dir)
    assert (await run(where, state)).status is Status.OK
    site.delete_behind(canary(where, 1))
    result = await found_within(where, state, Reason.CANARY_LOST)
    assert result.status is Status.CRITICAL
    assert counts(result) == {"ok": 2.0, "lost": 1.0}
    after = await run(where, state)
    assert (after.status, step(after, "create")[0]) == (Status.OK, Status.OK), after.steps
    assert counts(after) == {"ok": 3.0}
    assert site.local_path(canary(where, 1)).stat().st_size == SIZES[1]
    assert intact(site, placed)


@pytest.mark.lake
async def test_canaries_survive_a_restart(lake: LocalLake, tmp_path: Path) -> None:
    """A new StateStore.open on the same directory (a daemon restart) finds the inventory:
    no canary is rewritten, and the rotation verifies them against the first truth."""
    where, site = endpoint(lake, "root"), lake.sites[0]
    store = StateStore.open(tmp_path / "state")
    assert (await run(where, store)).status is Status.OK
    store.close()
    before = {i: site.local_path(canary(where, i)).stat().st_mtime_ns for i in range(len(SIZES))}
    store = StateStore.open(tmp_path / "state")
    try:
        for _ in SIZES:
            result = await run(where, store)
            assert [s.name for s in result.steps] == ["read", "checksum"]
            assert result.status is Status.OK
    finally:
        store.close()
    after = {i: site.local_path(canary(where, i)).stat().st_mtime_ns for i in range(len(SIZES))}
    assert after == before


@pytest.mark.lake
async def test_read_only_endpoint_verifies_its_reference_file(lake: LocalLake) -> None:
    """A read-only endpoint writes nothing: its reference file is checked against the
    configured adler32, and bytes changed behind the server's back are canary_corrupted."""
    site, data = lake.sites[0], b"reference bytes\n" * 500
    path = f"/ref-fixity-{uuid.uuid4().hex[:8]}.dat"
    site.put_file(path, data)
    where = endpoint(lake, "root", read_only=True, reference_file=path,
                     reference_adler32=adler32_hex(data))  # fmt: skip
    state = StateStore.memory()
    first = await run(where, state)
    assert (first.status, [s.name for s in first.steps]) == (Status.OK, ["read", "checksum"])
    assert counts(first) == {"ok": 1.0}
    assert [label for label, _ in first.labelled[Measurement.FIXITY_CANARY_VERIFIED]] == [
        "0-reference"
    ]
    site.corrupt_silently(path)
    assert (await run(where, state)).reason is Reason.CANARY_CORRUPTED
    assert list(site.local_path(where.test_dir).iterdir()) == []


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_server_without_checksums_is_a_capability_note(
    nochecksum_lake: LocalLake, protocol: str
) -> None:
    """A server without checksums (SITE-A: no `xrootd.chksum`) is WARNING
    checksum_unavailable, never a fault: the bytes are still checked against the truth."""
    where, state = endpoint(nochecksum_lake, protocol), StateStore.memory()
    result = await run(where, state)
    assert (result.status, result.reason) == (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE)
    assert step(result, "read")[0] is Status.OK
    assert counts(result) == {"ok": 3.0}


def test_rotation_covers_every_canary_and_rechecks_bad_ones() -> None:
    """per_run canaries in turn, wrapping around; a canary not ok is chosen every run."""
    ledger = Ledger([Canary(f"/c{i}", 1, "00000001", 0.0, 1.0, CanaryState.OK) for i in range(3)])
    assert [_choose(ledger, 2) for _ in range(3)] == [[0, 1], [0, 2], [1, 2]]
    ledger.canaries[2] = ledger.canaries[2].checked(CanaryState.CORRUPTED, 2.0)
    assert [_choose(ledger, 1) for _ in range(3)] == [[0, 2], [1, 2], [0, 2]]


def test_ledger_round_trip_and_unreadable_state() -> None:
    """The inventory survives JSON; a record of an unknown format starts afresh."""
    ledger = Ledger([Canary("/c", 0, "00000001", 5.0, None, CanaryState.LOST)], 1)
    assert Ledger.from_json(ledger.to_json()) == ledger
    assert Ledger.from_json({"canaries": [{"path": "/c"}]}) == Ledger()


def test_fixity_series_render_by_state() -> None:
    """A fixity result renders lakeprobe_fixity_canaries by state and the oldest verification
    time, valid for prometheus_client's own parser."""
    config = {
        "sites": [{"name": "S", "endpoints": [{"name": "e", "url": "root://127.0.0.1:1094"}]}],
        "probes": [{"name": "fixity", "type": "fixity"}],
    }
    jobs = build_plan(parse_config(yaml.safe_dump(config)))
    store = ResultsStore()
    store.set_targets([job.key for job in jobs])
    numbers = {Measurement.FIXITY_CANARIES_OK: 3.0, Measurement.FIXITY_CANARIES_LOST: 1.0,
               Measurement.FIXITY_OLDEST_VERIFIED: 1234.0}  # fmt: skip
    store.record(jobs[0].key, ProbeResult(Status.CRITICAL, Reason.CANARY_LOST, (), 1, 0, numbers))
    exposition = Exposition(store, FAMILIES_BY_PROBE_TYPE)
    exposition.set_plan(jobs)
    found = {
        (s.name, s.labels.get("state")): s.value
        for family in text_string_to_metric_families(exposition.render().decode())
        for s in family.samples
        if s.name.startswith("lakeprobe_fixity_")
    }
    assert found == {
        ("lakeprobe_fixity_canaries", "ok"): 3.0,
        ("lakeprobe_fixity_canaries", "lost"): 1.0,
        ("lakeprobe_fixity_oldest_verification_timestamp_seconds", None): 1234.0,
    }
