"""The perfSONAR archive client (probes/clients/psarchive.py) against the archive double
(lakeprobe/lake/psarchive.py) over https on loopback: OpenSearch queries evaluated by the
double, the esmond fallback, and the archive's faults as the client's plain errors."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.lake.psarchive import PsArchiveDouble
from lakeprobe.probes.clients.psarchive import (
    ArchiveClosed,
    ArchiveMalformed,
    ArchiveUnavailable,
    BasicAuth,
    Kind,
    PsArchiveClient,
)
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder

LOG = logging.getLogger("test.psarchive")
A, B, C = "ps-bw.site-a.example", "ps-bw.site-b.example", "ps-lat.site-b.example"
HOUR = 3600.0
ALL = tuple(Kind)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def client(
    archive: PsArchiveDouble, pki: TestPki, **options: Any
) -> AsyncIterator[PsArchiveClient]:
    deadline = asyncio.get_running_loop().time() + 20
    ctx = ProbeContext(StepRecorder(deadline, 10, 1), deadline, "h", LOG,
                       StateStore.memory(), ProbeResources())  # fmt: skip
    async with PsArchiveClient(archive.url, ctx, ca_dir=pki.ca_dir, **options) as api:
        yield api


def filled(archive: PsArchiveDouble) -> PsArchiveDouble:
    """A -> B: fresh results of every kind over IPv4 and IPv6, with different values."""
    now = time.time()
    for version, bps in ((4, 9.1e9), (6, 4.2e9)):
        archive.add_throughput(A, B, at=now - 600, ip_version=version, bps=bps, retransmits=version)
        archive.add_latency(A, B, at=now - 300, ip_version=version, median_seconds=version / 1000,
                            loss=version / 1000, bucket_width=0.0001)  # fmt: skip
        archive.add_trace(A, B, at=now - 900, ip_version=version, hops=version + 5)
    return archive


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
async def test_fresh_results_per_ip_version(pki: TestPki, api: str) -> None:
    """The newest result of each kind, each IP version with its own values; latency in
    seconds from bucket units x a 0.1 ms bucket width (OpenSearch) or ms (esmond)."""
    with filled(PsArchiveDouble(pki)) as archive:
        async with client(archive, pki, api=api) as api_client:
            for version, bps in ((4, 9.1e9), (6, 4.2e9)):
                found = await api_client.latest([A], [B], version, 6 * HOUR, ALL)
                assert set(found) == set(Kind)
                assert {r.ip_version for r in found.values()} == {version}
                assert found[Kind.THROUGHPUT].throughput_bps == bps
                assert found[Kind.THROUGHPUT].retransmits == version
                assert found[Kind.LATENCY].latency_seconds == pytest.approx(version / 1000)
                assert found[Kind.LOSS].loss_ratio == pytest.approx(version / 1000, abs=1e-3)
                assert found[Kind.TRACE].hop_count == version + 5
                assert abs(found[Kind.LATENCY].start_time - (time.time() - 300)) < 5


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
async def test_stale_and_missing_not_found(pki: TestPki, api: str) -> None:
    """A result older than the window, another pair, the reverse direction: none found."""
    with PsArchiveDouble(pki) as archive:
        archive.add_throughput(A, B, at=time.time() - 7 * HOUR)
        archive.add_throughput(B, A)
        archive.add_throughput(A, C)
        async with client(archive, pki, api=api) as api_client:
            assert await api_client.latest([A], [B], 4, 6 * HOUR, ALL) == {}
            older = await api_client.latest([A], [B], 4, 8 * HOUR, [Kind.THROUGHPUT])
            assert older[Kind.THROUGHPUT].source == A


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
async def test_several_hosts_newest_wins(pki: TestPki, api: str) -> None:
    """Several source and destination names: the newest result among all their pairs."""
    with PsArchiveDouble(pki) as archive:
        now = time.time()
        archive.add_throughput(A, B, at=now - 600, bps=1e9)
        archive.add_throughput(A, C, at=now - 60, bps=2e9)
        archive.add_throughput(B, C, at=now - 10, bps=3e9)  # B is no source here
        async with client(archive, pki, api=api) as api_client:
            found = await api_client.latest([A, "other"], [B, C], 4, HOUR, [Kind.THROUGHPUT])
            assert (found[Kind.THROUGHPUT].destination, found[Kind.THROUGHPUT].throughput_bps) == (
                C, 2e9,
            )  # fmt: skip


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
async def test_failed_test_is_reported(pki: TestPki, api: str) -> None:
    """A newer failed run wins over an older success: succeeded False, its error, no value."""
    with PsArchiveDouble(pki) as archive:
        archive.add_throughput(A, B, at=time.time() - 600)
        archive.add_throughput(A, B, at=time.time() - 60, succeeded=False, error="iperf3: refused")
        async with client(archive, pki, api=api) as api_client:
            result = (await api_client.latest([A], [B], 4, HOUR, [Kind.THROUGHPUT]))[
                Kind.THROUGHPUT
            ]
            assert (result.succeeded, result.error, result.throughput_bps) == (
                False, "iperf3: refused", None,
            )  # fmt: skip


async def test_auto_falls_back_to_esmond(pki: TestPki) -> None:
    """auto: /opensearch answers 404 (a perfSONAR 4 host): esmond answers, and the client
    stays with esmond; esmond metadata is asked for once per pair (cached)."""
    with filled(PsArchiveDouble(pki, opensearch_missing=True)) as archive:
        async with client(archive, pki) as api_client:
            found = await api_client.latest([A], [B], 6, HOUR, [Kind.THROUGHPUT])
            assert found[Kind.THROUGHPUT].throughput_bps == 4.2e9
            assert api_client.api == "esmond"
            await api_client.latest([A], [B], 4, HOUR, [Kind.THROUGHPUT])
        paths = [path for _, path in archive.seen]
        assert sum(p.startswith("/opensearch") for p in paths) == 1
        assert sum(p.startswith("/esmond/perfsonar/archive/?") for p in paths) == 1


async def test_opensearch_only_does_not_fall_back(pki: TestPki) -> None:
    """api=opensearch: a missing OpenSearch is an unavailable archive, with the status."""
    with PsArchiveDouble(pki, opensearch_missing=True) as archive:
        async with client(archive, pki, api="opensearch") as api_client:
            with pytest.raises(ArchiveUnavailable, match="HTTP 404") as raised:
                await api_client.latest([A], [B], 4, HOUR, ALL)
    assert raised.value.reason is Reason.NOT_FOUND


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
async def test_closed_archive(pki: TestPki, api: str) -> None:
    """401 on everything: ArchiveClosed."""
    with filled(PsArchiveDouble(pki, closed=True)) as archive:
        async with client(archive, pki, api=api) as api_client:
            with pytest.raises(ArchiveClosed, match="HTTP 401"):
                await api_client.latest([A], [B], 4, HOUR, ALL)


@pytest.mark.parametrize("api", ["opensearch", "esmond"])
@pytest.mark.parametrize("malformed", ["json", "types"])
async def test_malformed_archive(pki: TestPki, api: str, malformed: str) -> None:
    """Broken JSON or wrong types: ArchiveMalformed naming what is wrong."""
    with filled(PsArchiveDouble(pki, malformed=malformed)) as archive:
        async with client(archive, pki, api=api) as api_client:
            with pytest.raises(ArchiveMalformed, match=r"not JSON|expected"):
                await api_client.latest([A], [B], 4, HOUR, ALL)


async def test_unreachable_archive(pki: TestPki) -> None:
    """Nothing listening: ArchiveUnavailable with the transport error, reason connect."""
    archive = PsArchiveDouble(pki)
    with archive:
        url = archive.url
    deadline = asyncio.get_running_loop().time() + 5
    ctx = ProbeContext(StepRecorder(deadline, 10, 1), deadline, "h", LOG,
                       StateStore.memory(), ProbeResources())  # fmt: skip
    async with PsArchiveClient(url, ctx, ca_dir=pki.ca_dir) as api_client:
        with pytest.raises(ArchiveUnavailable, match="POST /opensearch") as raised:
            await api_client.latest([A], [B], 4, HOUR, ALL)
    assert raised.value.reason is Reason.CONNECT


@pytest.mark.parametrize("right", [True, False])
async def test_basic_auth_sent_never_shown(
    pki: TestPki, tmp_path: Path, caplog: pytest.LogCaptureFixture, right: bool
) -> None:
    """Basic credentials from a password file reach the archive; a wrong password is
    ArchiveClosed; the password is in no exception text and no log line."""
    password = "s3cret-archive-pw"
    (tmp_path / "pw").write_text(password if right else "wrong-password-x\n")
    caplog.set_level(logging.DEBUG)
    auth = BasicAuth("lakeprobe", tmp_path / "pw")
    texts: list[str] = [repr(auth)]
    with filled(PsArchiveDouble(pki, basic_auth=("lakeprobe", password))) as archive:
        async with client(archive, pki, auth=auth) as api_client:
            try:
                found = await api_client.latest([A], [B], 4, HOUR, ALL)
                assert right
                assert found[Kind.THROUGHPUT].throughput_bps == 9.1e9
            except ArchiveClosed as error:
                assert not right
                texts.append(str(error))
    texts.extend(record.getMessage() for record in caplog.records)
    assert not any(secret in text for text in texts for secret in (password, "wrong-password"))


def test_basic_auth_needs_https(pki: TestPki, tmp_path: Path) -> None:
    """Basic credentials are never sent over http."""
    no_context = cast(ProbeContext, None)  # refused before any use
    with pytest.raises(ValueError, match="https only"):
        PsArchiveClient("http://a.example", no_context, auth=BasicAuth("u", tmp_path / "pw"))


async def test_double_evaluates_the_query(pki: TestPki) -> None:
    """The double is no canned answer: a term on the analysed text field (not .keyword)
    finds no host name, a wrong ip_version nothing, an unknown clause is a 400."""
    with filled(PsArchiveDouble(pki)) as archive:
        search = f"{archive.url}/opensearch/pscheduler*/_search"
        bodies: list[dict[str, object]] = [
            {"query": {"term": {"meta.source.hostname": A}}},
            {"query": {"term": {"meta.source.hostname.keyword": A}}, "size": 100},
            {"query": {"term": {"meta.ip_version": 5}}},
            {"query": {"fuzzy": {}}},
        ]
        tls = ssl.create_default_context(capath=str(pki.ca_dir))
        async with aiohttp.ClientSession() as session:
            counts = []
            for body in bodies:
                async with session.post(search, json=body, ssl=tls) as response:
                    answer = await response.json()
                    counts.append(answer["hits"]["total"]["value"] if response.ok else 400)
        assert counts == [0, 6, 0, 400]
