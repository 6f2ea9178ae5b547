"""Endpoints without checksums, against a real XRootD site run without `xrootd.chksum`.

What that server does, as checked by these tests (XRootD 5.5.3): a HEAD or GET carrying
`Want-Digest` is answered 405, the same request without it 200; the root:// checksum query
fails with kXR_Unsupported (3013). SITE-A of `nochecksum_lake` is such a site, SITE-B reports
adler32. The verdicts follow the endpoint's `checksums` policy (probes/core/checksums.py):
required CRITICAL, optional WARNING, none no warning; the data-path steps always run.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import aiohttp
import pytest
from state_helpers import loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.core.checksums import ChecksumPolicy
from lakeprobe.probes.core.context import ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.tls import client_ssl_context
from lakeprobe.probes.storage import webdav, xrootd
from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.checksum_policy")
HOST = "testhost"
SMALL = 64 * 1024


async def run(
    probe_type: ProbeType[Any, Any], target: Target | PairTarget, params: Any
) -> ProbeResult:
    outcome = await run_probe(probe_type, target, params, timeout=20.0, probe_host=HOST, log=LOG,
                              state=loop_state())  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def dav(lake: LocalLake, site: XrootdSite, checksums: ChecksumPolicy) -> Target:
    return Target(site.name, "webdav", site.davs_url, lake.test_dir, ca_dir=lake.pki.ca_dir,
                  checksums=checksums)  # fmt: skip


def root(lake: LocalLake, site: XrootdSite, checksums: ChecksumPolicy) -> Target:
    return Target(site.name, "xrootd", site.root_url, lake.test_dir, checksums=checksums)


def found(result: ProbeResult) -> dict[str, tuple[Status, Reason]]:
    return {step.name: (step.status, step.reason) for step in result.steps}


def leftovers(site: XrootdSite, lake: LocalLake) -> list[str]:
    """Test files left in the test directory (the reusable TPC source files are meant to stay)."""
    names = (p.name for p in site.local_path(lake.test_dir).iterdir())
    return [name for name in names if "-source-" not in name]


async def test_the_site_refuses_digest_requests(nochecksum_lake: LocalLake) -> None:
    """The wire behaviour the probes must cope with: 405 to HEAD with Want-Digest, 200 to a
    plain HEAD of the same file; the site with xrootd.chksum answers adler32."""
    lake = nochecksum_lake
    answers = {}
    tls = client_ssl_context(lake.pki.ca_dir)
    async with aiohttp.ClientSession() as session:
        for site, want in itertools.product(lake.sites, (True, False)):
            site.put_file("/lakeprobe/wire-check", b"hello world")
            headers = {"Want-Digest": "adler32"} if want else {}
            url = f"{site.https_url}/lakeprobe/wire-check"
            async with session.head(url, headers=headers, ssl=tls) as reply:
                answers[site.name, want] = (reply.status, reply.headers.get("Digest"))
            site.local_path("/lakeprobe/wire-check").unlink()
    assert answers == {
        ("SITE-A", True): (405, None), ("SITE-A", False): (200, None),
        ("SITE-B", True): (200, "adler32=1a0b045d"), ("SITE-B", False): (200, None),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "expected", "head"),
    [
        ("optional", (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE), Status.WARNING),
        ("required", (Status.CRITICAL, Reason.CHECKSUM_UNAVAILABLE), Status.CRITICAL),
        ("none", (Status.OK, Reason.NONE), Status.OK),
    ],
)
async def test_webdav_without_checksums(
    nochecksum_lake: LocalLake, policy: ChecksumPolicy, expected: tuple[Status, Reason],
    head: Status,
) -> None:  # fmt: skip
    """No false `unexpected_status`: HEAD is asked again without Want-Digest, the size is
    checked, and GET still compares the bytes under every policy; the verdict follows the
    policy; no test file is left behind."""
    lake = nochecksum_lake
    site = lake.site("SITE-A")
    params = webdav.WebdavParams(file_size_bytes=SMALL)
    result = await run(webdav.PROBE_TYPE, dav(lake, site, policy), params)
    assert (result.status, result.reason) == expected, result.steps
    steps = found(result)
    assert steps["head"][0] is head
    for step in ("put", "get", "propfind", "head_missing", "delete"):
        assert steps[step] == (Status.OK, Reason.NONE), (step, result.steps)
    detail = next(s.detail for s in result.steps if s.name == "head")
    assert ("405" in detail) is (policy != "none"), detail
    assert f"size {SMALL} checked" in detail
    assert leftovers(site, lake) == []


async def test_webdav_with_checksums_is_unchanged(nochecksum_lake: LocalLake) -> None:
    """The site that reports adler32 is OK under `required` (one HEAD, no retry needed)."""
    lake = nochecksum_lake
    site = lake.site("SITE-B")
    params = webdav.WebdavParams(file_size_bytes=SMALL)
    result = await run(webdav.PROBE_TYPE, dav(lake, site, "required"), params)
    assert (result.status, result.reason) == (Status.OK, Reason.NONE), result.steps


@pytest.mark.parametrize("mode", ["pull", "push"])
@pytest.mark.parametrize(("src", "dst"), [("SITE-A", "SITE-B"), ("SITE-B", "SITE-A")])
async def test_http_tpc_with_a_checksumless_side(
    nochecksum_lake: LocalLake, src: str, dst: str, mode: str
) -> None:
    """From the site without checksums: its source file is found and reused (never
    `source_missing`), the copy is verified by adler32 at the other end: OK. Into it: the
    copy is verified by size, WARNING checksum_unavailable at verify, never CRITICAL."""
    lake = nochecksum_lake
    pair = PairTarget(dav(lake, lake.site(src), "optional"), dav(lake, lake.site(dst), "optional"),
                      mode)  # fmt: skip
    params = http_tpc.HttpTpcParams(file_size_bytes=SMALL)
    for _ in range(2):  # the second run reuses the source file uploaded by the first
        result = await run(http_tpc.PROBE_TYPE, pair, params)
        steps = found(result)
        for step in ("source", "mkcol", "copy", "delete"):
            assert steps[step] == (Status.OK, Reason.NONE), (step, result.steps)
        if dst == "SITE-A":
            expected = (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE)
        else:
            expected = (Status.OK, Reason.NONE)
        assert steps["verify"] == expected, result.steps
        assert (result.status, result.reason) == expected
    assert leftovers(lake.site(dst), lake) == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("required", (Status.CRITICAL, Reason.CHECKSUM_UNAVAILABLE)),
        ("none", (Status.OK, Reason.NONE)),
    ],
)
async def test_http_tpc_verify_follows_the_destination_policy(
    nochecksum_lake: LocalLake, policy: ChecksumPolicy, expected: tuple[Status, Reason]
) -> None:
    """Into the site without checksums: `required` makes verify CRITICAL (the copy still
    cleaned up); `none` verifies by size alone, OK."""
    lake = nochecksum_lake
    pair = PairTarget(dav(lake, lake.site("SITE-B"), "optional"),
                      dav(lake, lake.site("SITE-A"), policy), "pull")  # fmt: skip
    result = await run(http_tpc.PROBE_TYPE, pair, http_tpc.HttpTpcParams(file_size_bytes=SMALL))
    assert (result.status, result.reason) == expected, result.steps
    assert found(result)["verify"] == expected
    assert found(result)["delete"] == (Status.OK, Reason.NONE)
    assert leftovers(lake.site("SITE-A"), lake) == []


@pytest.mark.parametrize(
    ("policy", "expected", "checksum"),
    [
        ("optional", (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE), Status.WARNING),
        ("required", (Status.CRITICAL, Reason.CHECKSUM_UNAVAILABLE), Status.CRITICAL),
        ("none", (Status.OK, Reason.NONE), Status.SKIPPED),
    ],
)
async def test_xrootd_without_checksums(
    nochecksum_lake: LocalLake, policy: ChecksumPolicy, expected: tuple[Status, Reason],
    checksum: Status,
) -> None:  # fmt: skip
    """root:// on the site without checksums: the checksum step follows the policy (SKIPPED
    under none) and `read` still compares the bytes, even when the checksum is CRITICAL."""
    lake = nochecksum_lake
    site = lake.site("SITE-A")
    params = xrootd.XrootdParams(file_size_bytes=SMALL)
    result = await run(xrootd.PROBE_TYPE, root(lake, site, policy), params)
    assert (result.status, result.reason) == expected, result.steps
    steps = found(result)
    assert steps["checksum"][0] is checksum
    assert steps["read"] == steps["delete"] == (Status.OK, Reason.NONE), result.steps
    assert leftovers(site, lake) == []


@pytest.mark.parametrize("engine", ["xrootd", "gfal2"])
async def test_xrootd_tpc_into_a_checksumless_site(
    nochecksum_lake: LocalLake, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XRootD TPC into the site without checksums: verify checks the size and warns. gfal2,
    whose adler32 comparison fails there (errno 38), copies again without it and says so."""
    monkeypatch.setenv("X509_CERT_DIR", str(nochecksum_lake.pki.ca_dir))
    lake = nochecksum_lake
    pair = PairTarget(root(lake, lake.site("SITE-B"), "optional"),
                      root(lake, lake.site("SITE-A"), "optional"), "pull")  # fmt: skip
    params = validate_params(
        xrootd_tpc.XrootdTpcParams, {"file_size_bytes": SMALL, "engine": engine}
    )
    result = await run(xrootd_tpc.PROBE_TYPE, pair, params)
    assert (result.status, result.reason) == (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE), [
        s.detail for s in result.steps
    ]
    verify = next(s for s in result.steps if s.name == "verify")
    assert f"size {SMALL} checked" in verify.detail
    assert found(result)["copy"] == (Status.OK, Reason.NONE)
    copy = next(s for s in result.steps if s.name == "copy")
    assert ("gfal2 compared no checksum" in copy.detail) is (engine == "gfal2"), copy.detail
    assert leftovers(lake.site("SITE-A"), lake) == []


def test_policy_reaches_other_probes_unchanged() -> None:
    """Target defaults to `optional`, so probes given no policy behave as before."""
    target = Target("S", "e", "davs://127.0.0.1:1", "/t")
    assert target.checksums == "optional"
    assert dataclasses.replace(target, checksums="none").checksums == "none"
