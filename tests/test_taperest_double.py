"""The Tape REST double (lakeprobe.lake.taperest) and our client (probes/clients/taperest.py)
end to end over https on loopback, in each dialect; and the double held to the real protocol
by Debian's gfal2 as an independent client (in a subprocess: davix reads X509_CERT_DIR from
the environment, which the test process must not change)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import need_binaries

from lakeprobe.lake import LocalLake
from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.lake.taperest import MemoryTapeBackend, TapeRestDouble
from lakeprobe.lake.taperest_dialects import DIALECTS, api_prefix
from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend
from lakeprobe.probes.clients.taperest import (
    FileState,
    Locality,
    StageStatus,
    TapeRestClient,
    TapeRestError,
)
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target

LOG = logging.getLogger("test")
RECALL = 0.3
F1 = "/tape/f1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def backend() -> MemoryTapeBackend:
    memory = MemoryTapeBackend(RECALL)
    memory.add(F1)
    memory.add("/tape/f2")
    memory.add("/tape/lost", lost=True)
    return memory


@pytest.fixture(params=DIALECTS)
def double(
    request: pytest.FixtureRequest, pki: TestPki, backend: MemoryTapeBackend
) -> Iterator[TapeRestDouble]:
    with TapeRestDouble(pki, backend, dialect=request.param) as server:
        yield server


@pytest.fixture
async def api(double: TapeRestDouble, pki: TestPki) -> AsyncIterator[TapeRestClient]:
    """A client that discovers the API from the endpoint's origin."""
    target = Target(site="S", endpoint="tape", url=double.url.replace("https", "davs"),
                    test_dir="/t", ca_dir=pki.ca_dir)  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 20
    ctx = ProbeContext(StepRecorder(deadline, 10, 1), deadline, "h", LOG,
                       StateStore.memory(), ProbeResources())  # fmt: skip
    async with TapeRestClient(target, ctx, None, None, None) as client:
        yield client


async def until_done(api: TapeRestClient, rid: str, paths: list[str]) -> StageStatus:
    """Poll until every file is in a final state (bounded: 40 polls)."""
    for _ in range(40):
        status = await api.poll(rid, paths)
        if len(status.files) == len(paths) and all(
            f.state in (FileState.COMPLETED, FileState.FAILED, FileState.CANCELLED)
            for f in status.files.values()
        ):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"not done: {status}")


async def test_recall_release_delete(api: TapeRestClient, double: TapeRestDouble) -> None:
    """Discover, stage (diskLifetime sent), poll until online after the recall delay,
    archiveinfo DISK_AND_TAPE, release -> TAPE, delete: no request left open."""
    tape_api = await api.discover()
    assert (tape_api.uri, tape_api.sitename) == (double.api_uri, "LAKE-TAPE")
    assert await api.archiveinfo([F1]) == {F1: Locality.TAPE}
    submitted = time.time()
    rid = await api.stage([F1], 3600)
    assert double.disk_lifetimes == {F1: "PT3600S"}
    first = await api.poll(rid, [F1])
    assert first.files[F1].state is FileState.STARTED
    assert not first.files[F1].on_disk
    status = await until_done(api, rid, [F1])
    assert status.files[F1].state is FileState.COMPLETED
    assert status.files[F1].on_disk
    assert time.time() - submitted >= RECALL
    assert status.created_at is not None
    assert abs(status.created_at - submitted) < 2
    assert await api.archiveinfo([F1]) == {F1: Locality.DISK_AND_TAPE}
    await api.release(rid, [F1])
    assert await api.archiveinfo([F1]) == {F1: Locality.TAPE}
    await api.delete(rid)
    assert double.open_requests() == []


async def test_cancel(api: TapeRestClient, double: TapeRestDouble) -> None:
    """A cancelled file reads CANCELLED; cancelling a path not in the request is refused with
    the server's problem text (dCache: in headers) and changes nothing."""
    rid = await api.stage([F1, "/tape/f2"], 60)
    with pytest.raises(TapeRestError) as raised:
        await api.cancel(rid, ["/tape/other"])
    assert raised.value.detail.startswith("cancel: 400 File missing from stage request")
    await api.cancel(rid, ["/tape/f2"])
    status = await until_done(api, rid, [F1, "/tape/f2"])
    # EOS says onDisk only: a cancelled file comes with an error, which reads as FAILED.
    cancelled = FileState.FAILED if double.dialect == "eos" else FileState.CANCELLED
    assert status.files["/tape/f2"].state is cancelled
    assert status.files[F1].state is FileState.COMPLETED
    await api.delete(rid)
    with pytest.raises(TapeRestError) as gone:
        await api.poll(rid, [F1])
    assert gone.value.reason is Reason.NOT_FOUND


async def test_lost_file(api: TapeRestClient) -> None:
    """A file lost from tape: archiveinfo LOST, its recall FAILED with an error."""
    assert await api.archiveinfo(["/tape/lost", "/tape/none"]) == {
        "/tape/lost": Locality.LOST, "/tape/none": "No such file or directory"}  # fmt: skip
    rid = await api.stage(["/tape/lost"], 60)
    status = await until_done(api, rid, ["/tape/lost"])
    assert status.files["/tape/lost"].state is FileState.FAILED
    assert status.files["/tape/lost"].error
    await api.delete(rid)


async def test_path_mismatch(api: TapeRestClient, double: TapeRestDouble) -> None:
    """Fault injection: the poll names other paths; the client reports them as unexpected."""
    double.path_mismatch = True
    rid = await api.stage([F1], 60)
    status = await api.poll(rid, [F1])
    assert status.files == {}
    assert status.unexpected_paths == (f"/mismatch{F1}",)
    await api.delete(rid)


async def test_rejected_stage(api: TapeRestClient, double: TapeRestDouble) -> None:
    """Fault injection: a refused stage is STAGE_REJECTED with the problem's text."""
    double.reject_stages = True
    with pytest.raises(TapeRestError) as raised:
        await api.stage([F1], 60)
    assert raised.value.reason is Reason.STAGE_REJECTED
    assert raised.value.detail.startswith("stage: 403 Forbidden")
    assert double.open_requests() == []


async def test_tape_backend_down(
    api: TapeRestClient, double: TapeRestDouble, backend: MemoryTapeBackend
) -> None:
    """The double over a tape site that cannot answer: a 500 problem naming the backend
    (StoRM's problem has a title only), never a traceback: archiveinfo's server_error, and
    a stage refused (stage_rejected covers any 4xx/5xx, docs/reasons.md)."""
    await api.discover()
    backend.down = True
    calls: list[tuple[Callable[[], Awaitable[object]], Reason]] = [
        (lambda: api.archiveinfo([F1]), Reason.SERVER_ERROR),
        (lambda: api.stage([F1], 60), Reason.STAGE_REJECTED),
    ]
    for call, reason in calls:
        with pytest.raises(TapeRestError) as raised:
            await call()
        assert raised.value.reason is reason
        assert "500 Internal Server Error" in raised.value.detail
        assert ("tape site down" in raised.value.detail) == (double.dialect != "storm")
    backend.down = False
    assert await api.archiveinfo([F1]) == {F1: Locality.TAPE}


async def test_server_gone(api: TapeRestClient, double: TapeRestDouble) -> None:
    """A network failure is a TapeRestError with the transport's reason."""
    double.stop()
    with pytest.raises(TapeRestError) as raised:
        await api.archiveinfo([F1])  # discovery first: refused
    assert raised.value.reason is Reason.CONNECT


@pytest.mark.parametrize(
    ("dialect", "status", "headers", "body"),
    [("dcache", 400, {"title": "Bad Request"}, b""), ("storm", 400, {}, b""),
     ("eos", 201, {}, b"requestId")],
)  # fmt: skip
async def test_stage_extra_key(
    pki: TestPki, backend: MemoryTapeBackend, dialect: str, status: int,
    headers: dict[str, str], body: bytes,
) -> None:  # fmt: skip
    """dCache refuses a top-level key besides `files` (problem in headers); StoRM answers a
    bare 400 to a body it cannot parse; EOS takes both."""
    tls = ssl.create_default_context(capath=str(pki.ca_dir))
    with TapeRestDouble(pki, backend, dialect=dialect) as server:
        async with aiohttp.ClientSession() as session:
            good = {"files": [{"path": F1}], "extra": 1}
            bad = b"{not json" if dialect == "storm" else json.dumps(good).encode()
            url = f"{server.api_uri}/stage/"
            async with session.post(url, data=bad, ssl=tls) as reply:
                assert reply.status == status
                assert all(reply.headers.get(k) == v for k, v in headers.items())
                assert body in await reply.read()


GFAL_SCRIPT = """
import gfal2, json, sys, time
ctx = gfal2.creat_context()
url = sys.argv[1]
_, token = ctx.bring_online(url, 3600, 60, True)
for _ in range(100):
    if ctx.bring_online_poll(url, token) == 1:
        break
    time.sleep(0.1)
else:
    sys.exit("never online")
print(json.dumps({"token": token, "archive": ctx.archive_poll(url),
                  "status": ctx.getxattr(url, "user.status"),
                  "uri": ctx.getxattr(url, "taperestapi.uri")}))
"""


def gfal2_python() -> str:
    """The venv's python sees Debian's python3-gfal2 (system site packages)."""
    probe = subprocess.run([sys.executable, "-c", "import gfal2"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("python3-gfal2 is missing", pytrace=False)
        pytest.skip("python3-gfal2 is missing")
    return sys.executable


@pytest.mark.parametrize("dialect", DIALECTS)
def test_gfal2_bring_online(pki: TestPki, backend: MemoryTapeBackend, dialect: str) -> None:
    """Debian's gfal2 (2.21: `stage/` with a trailing slash) discovers the double, stages,
    polls until online and archive-polls, in every dialect."""
    python = gfal2_python()
    with TapeRestDouble(pki, backend, dialect=dialect, cancelled_word="CANCELED") as server:
        env = dict(os.environ, X509_CERT_DIR=str(pki.ca_dir))
        run = subprocess.run([python, "-c", GFAL_SCRIPT, f"{server.url}{F1}"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        answer = json.loads(run.stdout)
        assert answer["token"] in server.open_requests()
        assert (answer["archive"], answer["status"]) == (1, "ONLINE_AND_NEARLINE")
        assert answer["uri"] == server.api_uri
        assert server.disk_lifetimes == {F1: None}  # gfal2 never sends diskLifetime
        stage_paths = {path for method, path in server.seen if method == "POST"}
        assert f"{api_prefix(dialect)}/stage/" in stage_paths  # gfal2 2.21: trailing slash


GFAL_CANCEL = """
import gfal2, sys
ctx = gfal2.creat_context()
url = sys.argv[1]
_, token = ctx.bring_online(url, 3600, 60, True)
ctx.abort_bring_online(url, token)
try:
    ctx.bring_online_poll(url, token)
except gfal2.GError as error:
    sys.exit(error.code)
"""


@pytest.mark.parametrize("dialect", ["dcache", "storm"])
def test_gfal2_cancel(pki: TestPki, backend: MemoryTapeBackend, dialect: str) -> None:
    """gfal2 cancels through the double, and reads the cancelled file (spelt CANCELED, the
    word gfal2 2.21 knows) as ECANCELED."""
    python = gfal2_python()
    backend.recall_delay = 30  # still running when cancelled
    with TapeRestDouble(pki, backend, dialect=dialect, cancelled_word="CANCELED") as server:
        env = dict(os.environ, X509_CERT_DIR=str(pki.ca_dir))
        run = subprocess.run([python, "-c", GFAL_CANCEL, f"{server.url}{F1}"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == errno.ECANCELED, run.stderr[-2000:]


def test_unknown_dialect(pki: TestPki, backend: MemoryTapeBackend, tmp_path: Path) -> None:
    """A dialect the double does not know is refused at construction."""
    with pytest.raises(ValueError, match="unknown dialect"):
        TapeRestDouble(pki, backend, dialect="castor")


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    """One XRootD site with tape emulation (recall 0.5 s) for the XRootD-backed double."""
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("lake"), tape_sites=True) as lake:
        tape = lake.sites[0].tape
        assert tape is not None
        tape.recall_delay_seconds = 0.5
        yield lake


async def test_xrootd_backend(tape_lake: LocalLake) -> None:
    """The double over the tape site: stage -> prepare, poll -> query prepare, until the file
    is online; release evicts it (archiveinfo back to TAPE); a lost file is LOST."""
    site, tape = tape_lake.sites[0], tape_lake.sites[0].tape
    assert tape is not None
    tape.put_on_tape("/tape/rest1", b"recalled")
    tape.put_on_tape("/tape/rest-lost", b"gone")
    tape.lose("/tape/rest-lost")
    backend = XrootdPrepareBackend(site.root_url)
    with TapeRestDouble(tape_lake.pki, backend, dialect="dcache") as server:
        target = Target(site="S", endpoint="tape", url=server.url, test_dir="/t",
                        ca_dir=tape_lake.pki.ca_dir)  # fmt: skip
        deadline = asyncio.get_running_loop().time() + 30
        ctx = ProbeContext(StepRecorder(deadline, 10, 1), deadline, "h", LOG,
                           StateStore.memory(), ProbeResources())  # fmt: skip
        async with TapeRestClient(target, ctx, server.api_uri, None, None) as api:
            paths = ["/tape/rest1"]
            assert await api.archiveinfo(paths) == {"/tape/rest1": Locality.TAPE}
            rid = await api.stage(paths, 600)
            for _ in range(60):
                status = await api.poll(rid, paths)
                if status.files["/tape/rest1"].on_disk:
                    break
                await asyncio.sleep(0.1)
            assert status.files["/tape/rest1"].state is FileState.COMPLETED
            assert tape.is_online("/tape/rest1")
            await api.release(rid, paths)
            for _ in range(50):  # the site's prepare program evicts after its reply
                if await api.archiveinfo(paths) == {"/tape/rest1": Locality.TAPE}:
                    break
                await asyncio.sleep(0.1)
            assert not tape.is_online("/tape/rest1")
            await api.delete(rid)
            lost = await api.archiveinfo(["/tape/rest-lost"])
            assert lost == {"/tape/rest-lost": Locality.LOST}
        assert server.open_requests() == []


def test_gfal2_over_xrootd_backend(tape_lake: LocalLake) -> None:
    """gfal2 recalls a file of the tape site through the double, as FTS would."""
    python = gfal2_python()
    tape = tape_lake.sites[0].tape
    assert tape is not None
    tape.put_on_tape("/tape/rest-gfal", b"via gfal2")
    backend = XrootdPrepareBackend(tape_lake.sites[0].root_url)
    with TapeRestDouble(tape_lake.pki, backend, dialect="storm") as server:
        env = dict(os.environ, X509_CERT_DIR=str(tape_lake.pki.ca_dir))
        run = subprocess.run([python, "-c", GFAL_SCRIPT, f"{server.url}/tape/rest-gfal"],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["status"] == "ONLINE_AND_NEARLINE"
    assert tape.is_online("/tape/rest-gfal")
