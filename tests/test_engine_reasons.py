"""Both copy engines name the same failure with the same reason: the native engines (XrdCl's
CopyProcess for xrootd-tpc, lakeprobe's own COPY for http-tpc) and gfal2, against the same
fault on real servers. gfal2 relays the wire text the native engine reads (XrdCl's server
error, the COPY's status, the `failure:` verdict), and probes/clients/gfalcopy.py maps it the
same way."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from state_helpers import loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.clients.copyjob import CopyEnd, CopyError
from lakeprobe.probes.clients.gfalcopy import gfal_copy
from lakeprobe.probes.clients.xrdcopy import xrootd_copy
from lakeprobe.probes.core.context import AnyProbeType
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.engine_reasons")
READONLY = "/readonly"


def target(lake: LocalLake, site: XrootdSite, protocol: str, test_dir: str) -> Target:
    url = site.davs_url if protocol == "davs" else site.root_url
    return Target(site.name, protocol, url, test_dir, ca_dir=lake.pki.ca_dir)


async def copy_reasons(probe_type: AnyProbeType, pair: PairTarget, params: list[object]
                       ) -> list[tuple[Status, Reason]]:  # fmt: skip
    """The `copy` step of one run per engine's params, concurrently."""
    outcomes = await asyncio.gather(*(
        run_probe(probe_type, pair, p, timeout=15, probe_host="testhost", log=LOG,
                  state=loop_state())
        for p in params
    ))  # fmt: skip
    found = []
    for outcome in outcomes:
        assert outcome.exception is None
        step = next(s for s in outcome.result.steps if s.name == "copy")
        found.append((step.status, step.reason))
    return found


@pytest.mark.parametrize(
    ("family", "mode", "reason"),
    [
        ("xrootd-tpc", "pull", Reason.DESTINATION_ERROR),  # kXR_NotAuthorized at the dst open
        ("http-tpc", "pull", Reason.AUTH),  # the destination answers the COPY 401
        ("http-tpc", "push", Reason.DESTINATION_ERROR),  # "Remote side failed ... 403"
    ],
)
async def test_destination_refuses_the_copy(
    lake: LocalLake, monkeypatch: pytest.MonkeyPatch, family: str, mode: str, reason: Reason
) -> None:
    """A destination whose test directory is not writable refuses the copy: CRITICAL at
    `copy` with the same reason from the native engine and from gfal2 (gfal2 once said
    source_missing or tpc_failure here)."""
    monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))
    source_site, destination_site = lake.sites
    destination_site.make_dir(READONLY, writable=False)
    protocol = "xrootd" if family == "xrootd-tpc" else "davs"
    pair = PairTarget(target(lake, source_site, protocol, lake.test_dir),
                      target(lake, destination_site, protocol, READONLY), mode)  # fmt: skip
    if family == "xrootd-tpc":
        probe_type: AnyProbeType = xrootd_tpc.PROBE_TYPE
        params: list[object] = [xrootd_tpc.XrootdTpcParams(engine=e, file_size_bytes=65536)
                                for e in ("xrootd", "gfal2")]  # fmt: skip
    else:
        probe_type = http_tpc.PROBE_TYPE
        params = [http_tpc.HttpTpcParams(engine=e, modes=(mode,), file_size_bytes=65536)
                  for e in ("native", "gfal2")]  # fmt: skip
    native, gfal2 = await copy_reasons(probe_type, pair, params)
    assert native == gfal2 == (Status.CRITICAL, reason)


@pytest.mark.parametrize("case", ["missing_source", "token_destination"])
async def test_root_copy_failures_agree(
    lake_binaries: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """root:// copies straight through both clients: a missing source is source_missing, a
    token-protected destination given no token refuses the open (kXR_NotAuthorized):
    destination_error, from XrdCl and from gfal2 alike."""
    protected = case == "token_destination"
    lake = LocalLake(2, base_dir=tmp_path / "lake", token_sites=["SITE-B"] if protected else ())
    with lake:
        monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))
        source_site, destination_site = lake.sites
        if protected:
            source_site.put_file(f"{lake.test_dir}/source", os.urandom(65536))
        source = CopyEnd(target(lake, source_site, "root", lake.test_dir),
                         f"{lake.test_dir}/source")  # fmt: skip
        destination = CopyEnd(target(lake, destination_site, "root", lake.test_dir),
                               f"{lake.test_dir}/copy")  # fmt: skip
        reasons = []
        resources = ProbeResources()
        deadline = asyncio.get_running_loop().time() + 10
        engines = (
            lambda: xrootd_copy(source, destination, threads=resources.threads,
                                deadline=deadline, stall_seconds=10),
            lambda: gfal_copy(source, destination, resources=resources, deadline=deadline,
                              stall_seconds=10),
        )  # fmt: skip
        for engine in engines:
            with pytest.raises(CopyError) as failure:
                await engine()
            reasons.append(failure.value.reason)
        resources.close()
    expected = Reason.DESTINATION_ERROR if protected else Reason.SOURCE_MISSING
    assert reasons == [expected, expected]
