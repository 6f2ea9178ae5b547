"""The webdav and http-tpc probes against a WebDAV server that is not XRootD: Debian's nginx
(dav + dav_ext, lakeprobe/lake/nginxdav.py) on loopback, HTTPS from a test CA.

What nginx answers, as these tests pin it down: MKCOL 409 without the trailing slash and
under a missing parent, 405 on an existing collection; no digest on HEAD; DELETE 204. Its
fault-injection mode (`delete_noop`: a `return 204` for DELETE in the location) answers
DELETE 204 and deletes nothing, as a broken or lying door would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from state_helpers import loop_state

from lakeprobe.lake import LocalLake
from lakeprobe.lake.nginxdav import NginxDav
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.storage import webdav
from lakeprobe.probes.transfer import http_tpc

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.nginx_dav")
HOST = "testhost"
TEST_DIR = "/lakeprobe"
SMALL = webdav.WebdavParams(file_size_bytes=64 * 1024)
# Test-file names carry whole seconds: this run's own file (listed by its PROPFIND, deleted
# already) must not count as stale, so the sweep age is well above a run's second.
SWEEP_AFTER = 2.5
NginxFactory = Callable[..., NginxDav]  # the nginx_factory fixture (tests/conftest.py)


def dav_target(server: NginxDav, test_dir: str = TEST_DIR) -> Target:
    return Target(site="NGINX", endpoint="webdav", url=server.davs_url, test_dir=test_dir,
                  ca_dir=server.pki.ca_dir)  # fmt: skip


async def run(probe_type: Any, target: Any, params: Any) -> ProbeResult:
    outcome = await run_probe(probe_type, target, params, timeout=20.0, probe_host=HOST, log=LOG,
                              state=loop_state())  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def steps(result: ProbeResult) -> dict[str, StepResult]:
    return {step.name: step for step in result.steps}


def files(server: NginxDav, directory: str = TEST_DIR) -> list[str]:
    return sorted(path.name for path in server.local_path(directory).iterdir())


async def test_webdav_probe_on_healthy_nginx(nginx_dav: NginxDav) -> None:
    """A healthy nginx is never CRITICAL: every data-path step passes, the missing digest
    is at most a WARNING (checksum_unavailable), the verified delete leaves nothing."""
    result = await run(webdav.PROBE_TYPE, dav_target(nginx_dav), SMALL)
    assert result.status in (Status.OK, Status.WARNING), result.steps
    found = steps(result)
    for name in ("options", "put", "get", "propfind", "head_missing", "delete", "sweep"):
        assert found[name].status is Status.OK, found[name]
    assert found["head"].status in (Status.OK, Status.WARNING), found["head"]
    assert found["delete"].detail == "deleted, verified gone"
    assert files(nginx_dav) == []


@pytest.mark.parametrize("engine", ["native", "gfal2"])
async def test_push_from_xrootd_into_missing_nginx_dir(
    lake: LocalLake, nginx_factory: NginxFactory, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XRootD (active side) pushes into nginx, whose test directory and its parent do not
    exist yet: mkcol creates them with trailing-slash MKCOLs (no false CRITICAL on nginx's
    409), the copy lands, nothing is left behind; a second run finds them (405). gfal2
    reads its CA directory from X509_CERT_DIR only (the daemon is started with it)."""
    monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))
    server = nginx_factory(lake.pki)
    site = lake.sites[0]
    source = Target(site=site.name, endpoint="webdav", url=site.davs_url,
                    test_dir=lake.test_dir, ca_dir=lake.pki.ca_dir)  # fmt: skip
    pair = PairTarget(source, dav_target(server, "/lakeprobe/new/tpc"), "push")
    params = validate_params(
        http_tpc.HttpTpcParams, {"file_size_bytes": 64 * 1024, "engine": engine}
    )
    results = [await run(http_tpc.PROBE_TYPE, pair, params) for _ in range(2)]
    mkcols = [(steps(result)["mkcol"].status, steps(result)["mkcol"].detail) for result in results]
    created = "MKCOL: 409, created with 1 missing parents"
    assert mkcols == [(Status.OK, created), (Status.OK, "MKCOL: 405, exists")]
    assert all(steps(r)["delete"].detail == "deleted, verified gone" for r in results), results
    assert files(server, "/lakeprobe/new/tpc") == []
    copies = [steps(result)["copy"] for result in results]
    assert [c.status for c in copies] == [Status.OK, Status.OK], copies
    if engine == "gfal2":  # nginx computes no adler32: gfal2 copied again without comparing,
        # and the next run, remembering it (state store), copies once without asking
        assert ["gfal2 compared no checksum" in c.detail for c in copies] == [True, False], copies
    assert all(r.status in (Status.OK, Status.WARNING) for r in results), results


async def test_delete_that_deletes_nothing(nginx_factory: NginxFactory) -> None:
    """DELETE answered 204 with the file still there (real nginx, fault-injection config):
    the delete step is CRITICAL delete_ineffective and that is the run's reason, the file
    stays; once the server deletes again, the next run's sweep removes it."""
    server = nginx_factory(delete_noop=True)
    params = webdav.WebdavParams(file_size_bytes=1024, sweep_after_seconds=SWEEP_AFTER,
                                 sweep_foreign_after_seconds=3600)  # fmt: skip
    result = await run(webdav.PROBE_TYPE, dav_target(server), params)
    delete = steps(result)["delete"]
    assert (delete.status, delete.reason) == (Status.CRITICAL, Reason.DELETE_INEFFECTIVE)
    assert f"the sweep retries it after {SWEEP_AFTER:g} s" in delete.detail
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.DELETE_INEFFECTIVE)
    [left] = files(server)

    server.restart(delete_noop=False)
    await asyncio.sleep(SWEEP_AFTER + 0.5)  # older than sweep_after_seconds
    result = await run(webdav.PROBE_TYPE, dav_target(server), params)
    sweep = steps(result)["sweep"]
    assert (sweep.status, sweep.detail) == (Status.OK, "1 stale test files deleted"), sweep
    assert left not in files(server)
    assert files(server) == []


async def test_sweep_reports_a_delete_that_deletes_nothing(nginx_factory: NginxFactory) -> None:
    """While DELETE still deletes nothing, the sweep does not claim the stale file deleted:
    its HEAD after the 204 finds it, so the (non-critical) sweep reports cleanup."""
    server = nginx_factory(delete_noop=True)
    params = webdav.WebdavParams(file_size_bytes=1024, sweep_after_seconds=SWEEP_AFTER,
                                 sweep_foreign_after_seconds=3600)  # fmt: skip
    await run(webdav.PROBE_TYPE, dav_target(server), params)
    await asyncio.sleep(SWEEP_AFTER + 0.5)
    result = await run(webdav.PROBE_TYPE, dav_target(server), params)
    sweep = steps(result)["sweep"]
    assert (sweep.status, sweep.reason) == (Status.WARNING, Reason.CLEANUP), sweep
    assert "is still there" in sweep.detail
    assert len(files(server)) == 2


async def test_tpc_delete_that_deletes_nothing(
    lake: LocalLake, nginx_factory: NginxFactory
) -> None:
    """An http-tpc destination whose DELETE deletes nothing: delete_ineffective at the
    pair's delete step, not a silent OK."""
    server = nginx_factory(lake.pki, delete_noop=True)
    site = lake.sites[0]
    source = Target(site=site.name, endpoint="webdav", url=site.davs_url,
                    test_dir=lake.test_dir, ca_dir=lake.pki.ca_dir)  # fmt: skip
    params = http_tpc.HttpTpcParams(file_size_bytes=64 * 1024)
    pair = PairTarget(source, dav_target(server), "push")
    result = await run(http_tpc.PROBE_TYPE, pair, params)
    delete = steps(result)["delete"]
    assert (delete.status, delete.reason) == (Status.CRITICAL, Reason.DELETE_INEFFECTIVE)
    assert len(files(server)) == 1
