"""Third-party copies through gfal2 (probes/clients/gfalcopy.py) against the real local lake,
directly and as the xrootd-tpc probe's `gfal2` engine."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from state_helpers import loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.clients.copyjob import CopyEnd, CopyError, CopyStats
from lakeprobe.probes.clients.gfalcopy import gfal_copy
from lakeprobe.probes.core.outcome import Measurement, Reason, Status
from lakeprobe.probes.core.params import MIB
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import adler32_hex, new_test_file, source_file, source_payload
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.transfer.xrootd_tpc import PROBE_TYPE, XrootdTpcParams

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.gfalcopy")
SOURCE = "/lakeprobe/gfal-source.dat"


@pytest.fixture
def ca_env(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """davix (gfal2's HTTP plugin) reads its CA directory from X509_CERT_DIR when a gfal2
    context is created; lakeprobe never sets it (the daemon is started with it)."""
    monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))


def end(lake: LocalLake, site: XrootdSite, scheme: str, path: str, token: str = "") -> CopyEnd:
    url = site.davs_url if scheme == "davs" else site.root_url
    tgt = Target(site.name, scheme, url, lake.test_dir, ca_dir=lake.pki.ca_dir)
    return CopyEnd(tgt, path, Secret(token) if token else None)


async def copy(source: CopyEnd, destination: CopyEnd, **kwargs: object) -> CopyStats:
    """One copy on copy threads of its own, released after it."""
    deadline = asyncio.get_running_loop().time() + 10
    resources = ProbeResources()
    try:
        return await gfal_copy(source, destination, resources=resources, deadline=deadline,
                               stall_seconds=10, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    finally:
        resources.close()


@pytest.mark.parametrize(("mode", "token"), [("pull", ""), ("push", "davs-token-0123456789")])
async def test_davs_copy(lake: LocalLake, ca_env: None, mode: str, token: str) -> None:
    """davs -> davs in the mode asked for (no fallback to the other mode, no streaming through
    this host), with gfal2's adler32 check at both ends. With tokens, each side gets its own
    (the active one as Authorization, the passive one as TransferHeaderAuthorization);
    without, the passive side gets the placeholder token (else gfal2 asks for proxy
    delegation, refused with 400); the open servers ignore both. The copy is byte-identical;
    gfal2 reports no perf marker for so quick a copy, so the size given stands for the bytes
    transferred."""
    data = os.urandom(MIB + 7)
    lake.sites[0].put_file(SOURCE, data)
    target_path = new_test_file(lake.test_dir, "testhost")
    source, destination = (
        end(lake, lake.sites[0], "davs", SOURCE),
        end(lake, lake.sites[1], "davs", target_path),
    )
    stats = await copy(source, destination, mode=mode, adler32=adler32_hex(data), size=len(data))
    assert stats.transfer_type == f"3rd {mode}"
    assert stats.transferred == len(data)
    assert 0 < stats.seconds < 2
    assert lake.sites[1].local_path(target_path).read_bytes() == data


@pytest.mark.parametrize(
    ("case", "scheme", "reason"),
    [
        ("missing_source", "davs", Reason.SOURCE_MISSING),
        ("missing_source", "root", Reason.SOURCE_MISSING),
        ("corrupt_source", "davs", Reason.CHECKSUM_MISMATCH),
        ("stopped_source", "davs", Reason.CONNECT),
        ("stopped_destination", "davs", Reason.CONNECT),
        ("stopped_destination", "root", Reason.CONNECT),
        ("readonly_destination", "davs", Reason.AUTH),  # COPY 401: as the native engine
        ("readonly_destination", "root", Reason.DESTINATION_ERROR),
    ],
)
async def test_copy_failures(
    lake: LocalLake, ca_env: None, caplog: pytest.LogCaptureFixture, case: str, scheme: str,
    reason: Reason,
) -> None:  # fmt: skip
    """Each failure maps to its reason, fast: gfal2's "SOURCE ..."/"DESTINATION ..." stage
    prefixes (HTTP) and the paths in XrdCl's messages (root) tell the side; a silently
    corrupted source fails gfal2's destination checksum check; a non-writable destination
    refuses the open over root (destination_error) and answers the (pull) COPY with 401
    over HTTP (auth), the reasons the native engines give. Tokens (here
    on both sides, as ?authz= for root) appear in no detail and no log record."""
    source_site, destination_site = lake.sites
    data = os.urandom(100_000)
    source_site.put_file(SOURCE, data)
    directory = lake.test_dir
    if case == "missing_source":
        source_site.local_path(SOURCE).unlink()
    elif case == "corrupt_source":
        source_site.corrupt_silently(SOURCE)
    elif case == "stopped_source":
        source_site.stop()
    elif case == "stopped_destination":
        destination_site.stop()
    else:
        directory = "/readonly"
        destination_site.make_dir(directory, writable=False)
    tokens = ("gfal-source-token-" + os.urandom(6).hex(), "gfal-dest-token-" + os.urandom(6).hex())
    source = end(lake, source_site, scheme, SOURCE, tokens[0])
    destination = end(lake, destination_site, scheme, f"{directory}/lakeprobe-copy", tokens[1])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CopyError) as failure:
        await copy(source, destination, adler32=adler32_hex(data))
    assert failure.value.reason is reason, failure.value.detail
    LOG.info("%s/%s: %s", case, scheme, failure.value.detail)
    texts = [failure.value.detail, *(record.getMessage() for record in caplog.records)]
    assert not [text for text in texts if any(token in text for token in tokens)]


async def test_probe_gfal2_engine(lake: LocalLake, ca_env: None) -> None:
    """xrootd-tpc with engine gfal2 (root -> root, as FTS copies): a silently corrupted source
    file is copied but gfal2's end-to-end adler32 check fails it: CRITICAL checksum_mismatch
    at `copy` (gfal2 already removed the bad copy). The next run re-uploads the source file
    and the copy passes with the checksums verified, transfer measured (first marker at
    XrdCl's 2.5 s check)."""
    source_path = source_file(lake.test_dir, "testhost", MIB)
    lake.sites[0].put_file(source_path, source_payload(MIB))
    lake.sites[0].corrupt_silently(source_path)
    source, destination = (Target(s.name, "xrootd", s.root_url, lake.test_dir) for s in lake.sites)
    pair, params = PairTarget(source, destination, "pull"), XrootdTpcParams(engine="gfal2")
    results = []
    for _ in range(2):
        outcome = await run_probe(PROBE_TYPE, pair, params, timeout=10, probe_host="testhost",
                                  log=LOG, state=loop_state())  # fmt: skip
        results.append(outcome.result)
    bad, fixed = results
    assert (bad.status, bad.reason) == (Status.CRITICAL, Reason.CHECKSUM_MISMATCH), bad.steps
    statuses = [Status.OK, Status.CRITICAL, Status.SKIPPED, Status.OK, Status.OK]  # ..., sweep
    assert [s.status for s in bad.steps] == statuses
    assert "CheckSum error" in bad.steps[1].detail
    assert fixed.status is Status.OK, fixed.steps
    assert fixed.steps[0].detail.startswith("uploaded")
    assert "gfal2, 3rd pull" in fixed.steps[1].detail
    assert fixed.measurements[Measurement.TRANSFER_BYTES] == MIB
    assert 2.0 < fixed.measurements[Measurement.FIRST_MARKER] < 4.0
