"""A full disk is `no_space` on every path into it: WebDAV PUT, root:// write, HTTP-TPC and
XRootD TPC with both copy engines. SITE-B's data directory is a small tmpfs, filled up to the
last byte; SITE-A is a normal site. One lake for the module keeps the tests bounded."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_helpers import loop_state

from lakeprobe.lake import LocalLake
from lakeprobe.lake.tmpfs import MountError
from lakeprobe.probes.core.context import AnyProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import PREFIX
from lakeprobe.probes.storage import webdav, xrootd
from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.no_space")
FILE_SIZE = 256 * 1024
DISK_BYTES = 1024 * 1024


def mount_unavailable(error: MountError) -> None:
    """Skip without a tmpfs (not root); in CI a missing mount fails, never skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(str(error), pytrace=False)
    pytest.skip(str(error))


def start_or_skip(lake: LocalLake) -> None:
    """Start `lake`; a tmpfs that cannot be mounted skips (fails under CI=true)."""
    try:
        lake.start()
    except MountError as error:
        lake.close()
        mount_unavailable(error)


@pytest.fixture(scope="module")
def full_lake(tmp_path_factory: pytest.TempPathFactory, lake_binaries: None) -> Iterator[LocalLake]:
    """SITE-A normal, SITE-B on a 1 MiB tmpfs filled to the last byte. A tmpfs that cannot be
    mounted (not root) skips, and fails under CI=true."""
    lake = LocalLake(2, base_dir=tmp_path_factory.mktemp("full-lake"))
    lake.site("SITE-B").data_size_bytes = DISK_BYTES
    start_or_skip(lake)
    try:
        lake.site("SITE-B").fill_disk()
        yield lake
    finally:
        lake.close()


@pytest.fixture(autouse=True)
def _ca_env(full_lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """gfal2 (davix) and XrdCl read the CA directory from X509_CERT_DIR only."""
    monkeypatch.setenv("X509_CERT_DIR", str(full_lake.pki.ca_dir))


def target(lake: LocalLake, name: str, protocol: str) -> Target:
    site = lake.site(name)
    url = site.davs_url if protocol == "davs" else site.root_url
    return Target(name, protocol, url, lake.test_dir, ca_dir=lake.pki.ca_dir)


async def run(probe_type: AnyProbeType, tgt: Target | PairTarget, params: object) -> ProbeResult:
    outcome = await run_probe(probe_type, tgt, params, timeout=15, probe_host="testhost",
                              log=LOG, state=loop_state())  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def details(result: ProbeResult) -> str:
    """Every step's verdict and detail, for a failed assertion's message (pytest would cut a
    list of StepResults short, and the detail is what tells a race from a wrong rule)."""
    return "; ".join(f"{s.name} {s.status.name} {s.reason.value}: {s.detail}" for s in result.steps)


def step(result: ProbeResult, name: str) -> tuple[Status, Reason]:
    found = next(s for s in result.steps if s.name == name)
    return found.status, found.reason


def leftovers(lake: LocalLake) -> list[str]:
    """Test files (not the filler) left in the full site's test directory."""
    directory = lake.site("SITE-B").local_path(lake.test_dir)
    return [p.name for p in directory.iterdir() if p.name.startswith(PREFIX)]


async def test_webdav_put(full_lake: LocalLake) -> None:
    """XrdHttp resets a PUT it cannot write (no status at all); the probe's 1-byte PUT is
    dropped too while OPTIONS is answered: CRITICAL no_space at `put`, not `connect`; the
    test file (and the 1-byte one) is deleted."""
    params = webdav.WebdavParams(file_size_bytes=FILE_SIZE)
    result = await run(webdav.PROBE_TYPE, target(full_lake, "SITE-B", "davs"), params)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.NO_SPACE), details(result)
    assert step(result, "put") == (Status.CRITICAL, Reason.NO_SPACE)
    assert "OPTIONS is answered" in next(s.detail for s in result.steps if s.name == "put")
    assert step(result, "delete")[0] is Status.OK
    assert leftovers(full_lake) == []


async def test_xrootd_write(full_lake: LocalLake) -> None:
    """root:// write on the full disk: kXR_NoSpace (3009): CRITICAL no_space at `write`."""
    params = xrootd.XrootdParams(file_size_bytes=FILE_SIZE)
    result = await run(xrootd.PROBE_TYPE, target(full_lake, "SITE-B", "xrootd"), params)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.NO_SPACE), details(result)
    assert step(result, "write") == (Status.CRITICAL, Reason.NO_SPACE)
    assert leftovers(full_lake) == []


@pytest.mark.parametrize("engine", ["native", "gfal2"])
async def test_http_tpc_pull_into_full_site(full_lake: LocalLake, engine: str) -> None:
    """A pull into the full site: the destination's perf-marker verdict says "no space left
    on device" (gfal2 relays it as "Transfer failure: ..."): no_space at `copy`, both
    engines."""
    pair = PairTarget(target(full_lake, "SITE-A", "davs"), target(full_lake, "SITE-B", "davs"),
                      "pull")  # fmt: skip
    params = validate_params(
        http_tpc.HttpTpcParams, {"modes": ("pull",), "file_size_bytes": FILE_SIZE, "engine": engine}
    )
    result = await run(http_tpc.PROBE_TYPE, pair, params)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.NO_SPACE), details(result)
    assert step(result, "copy") == (Status.CRITICAL, Reason.NO_SPACE)
    assert leftovers(full_lake) == []


@pytest.mark.parametrize("engine", ["native", "gfal2"])
async def test_http_tpc_push_into_full_site(full_lake: LocalLake, engine: str) -> None:
    """A push into the full site: XrdHttp drops the pushed upload without a word, so the
    source can only report "Server returned nothing"; the probe then asks the destination
    itself with a small PUT, which it breaks off too while still answering: no_space at
    `copy`, the same with both engines."""
    pair = PairTarget(target(full_lake, "SITE-A", "davs"), target(full_lake, "SITE-B", "davs"),
                      "push")  # fmt: skip
    params = validate_params(
        http_tpc.HttpTpcParams, {"modes": ("push",), "file_size_bytes": FILE_SIZE, "engine": engine}
    )
    result = await run(http_tpc.PROBE_TYPE, pair, params)
    expected = (Status.CRITICAL, Reason.NO_SPACE)
    assert (result.status, result.reason) == expected, details(result)
    assert step(result, "copy") == expected
    assert leftovers(full_lake) == []


@pytest.mark.parametrize("engine", ["xrootd", "gfal2"])
async def test_xrootd_tpc_into_full_site(full_lake: LocalLake, engine: str) -> None:
    """XRootD TPC into the full site: the destination's helper fails with kXR_FSError "Local
    error: no space left on device": no_space at `copy`, with either engine."""
    pair = PairTarget(target(full_lake, "SITE-A", "xrootd"),
                      target(full_lake, "SITE-B", "xrootd"), "pull")  # fmt: skip
    params = validate_params(
        xrootd_tpc.XrootdTpcParams, {"file_size_bytes": FILE_SIZE, "engine": engine}
    )
    result = await run(xrootd_tpc.PROBE_TYPE, pair, params)
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.NO_SPACE), details(result)
    assert step(result, "copy") == (Status.CRITICAL, Reason.NO_SPACE)
    assert leftovers(full_lake) == []


def test_tmpfs_data_dir_lifecycle(tmp_path: Path, lake_binaries: None) -> None:
    """`data_size_bytes` puts the site's data directory on a tmpfs of that size (mounted
    before the test directory is made), `fill_disk()` leaves no byte free, and closing the
    lake unmounts it, so the lake's directory can be removed."""
    lake = LocalLake(1, base_dir=tmp_path / "lake")
    site = lake.sites[0]
    site.data_size_bytes = 64 * 1024
    start_or_skip(lake)
    try:
        assert os.path.ismount(site.data_dir)
        assert site.local_path(lake.test_dir).is_dir()
        site.fill_disk()
        assert os.statvfs(site.data_dir).f_bavail == 0
    finally:
        lake.close()
    assert not os.path.ismount(site.data_dir)
