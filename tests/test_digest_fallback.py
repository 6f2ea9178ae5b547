"""How "no checksum here" looks on the wire, from a loopback WebDAV server that answers a
request carrying Want-Digest in one of the ways real servers do: 405 (XrdHttp without
`xrootd.chksum`), 501, a 200 without digest, a 200 with another algorithm's digest. Each is
`checksum_unavailable` (a capability finding), the file is still found and its bytes compared."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from http_helpers import serve_handler

from lakeprobe.probes.common.storage import StorageError, storage_for
from lakeprobe.probes.core import checksums
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

TEST_DIR = "/lakeprobe"
# How the server answers a HEAD/GET carrying Want-Digest: a status, or 200 with these headers.
ANSWERS: dict[str, tuple[int, dict[str, str]]] = {
    "405": (405, {}),
    "501": (501, {}),
    "no_digest": (200, {}),
    "md5": (200, {"Digest": "md5=XUFAKrxLKna5cZ2REBfFkg=="}),
}


@dataclass
class DigestlessDav:
    answer: str
    files: dict[str, bytes] = field(default_factory=dict)
    url: str = ""
    digest_requests: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        if method == "OPTIONS":
            return web.Response(headers={"DAV": "1"})
        if method == "PUT":
            self.files[path] = await request.read()
            return web.Response(status=201)
        if method == "PROPFIND":
            names = "".join(f"<d:response><d:href>{p}</d:href></d:response>" for p in self.files)
            body = f'<d:multistatus xmlns:d="DAV:">{names}</d:multistatus>'
            return web.Response(status=207, text=body, content_type="text/xml")
        if path not in self.files:
            return web.Response(status=404)
        if method == "DELETE":
            del self.files[path]
            return web.Response(status=204)
        status, headers = 200, dict[str, str]()
        if "Want-Digest" in request.headers:
            self.digest_requests += 1
            status, headers = ANSWERS[self.answer]
        if status != 200:
            return web.Response(status=status)
        return web.Response(body=self.files[path], headers=headers)


@pytest.fixture(params=sorted(ANSWERS))
async def dav(request: pytest.FixtureRequest) -> AsyncIterator[DigestlessDav]:
    fake = DigestlessDav(request.param)
    async with serve_handler(fake.handle) as fake.url:
        yield fake


async def test_webdav_probe_warns_once_and_checks_the_data(dav: DigestlessDav) -> None:
    """Every way of not answering a digest is one WARNING checksum_unavailable at `head`,
    with what the server said in the detail; GET still compares the bytes."""
    target = Target("SITE", "fake", dav.url, TEST_DIR)
    outcome = await run_probe(PROBE_TYPE, target, WebdavParams(file_size_bytes=4096),
                              timeout=5, probe_host="h", log=logging.getLogger("test"))  # fmt: skip
    result = outcome.result
    assert (result.status, result.reason) == (Status.WARNING, Reason.CHECKSUM_UNAVAILABLE)
    unavailable = [s for s in result.steps if s.reason is Reason.CHECKSUM_UNAVAILABLE]
    assert [s.name for s in unavailable] == ["head"]
    said = {"405": "Want-Digest: 405", "501": "Want-Digest: 501",
            "no_digest": "no Digest header", "md5": "digest md5, not adler32"}  # fmt: skip
    assert said[dav.answer] in unavailable[0].detail
    assert all(s.status is Status.OK for s in result.steps if s.name != "head"), result.steps
    assert dav.files == {}


async def test_none_policy_never_asks(dav: DigestlessDav) -> None:
    """`checksums: none`: no request carries Want-Digest; the run is OK."""
    target = Target("SITE", "fake", dav.url, TEST_DIR, checksums="none")
    outcome = await run_probe(PROBE_TYPE, target, WebdavParams(file_size_bytes=4096),
                              timeout=5, probe_host="h", log=logging.getLogger("test"))  # fmt: skip
    assert (outcome.result.status, outcome.result.reason) == (Status.OK, Reason.NONE)
    assert dav.digest_requests == 0


async def test_storage_checksum_is_none_not_an_error(dav: DigestlessDav) -> None:
    """The storage interface's checksum() of a present file on such a server: None, and a
    missing file is still NOT_FOUND (the retry without digest tells them apart)."""
    dav.files["/lakeprobe/f"] = b"data"
    target = Target("SITE", "fake", dav.url, TEST_DIR)
    deadline = asyncio.get_running_loop().time() + 5
    ctx = ProbeContext(StepRecorder(deadline, 10, 0.5), deadline, "h", logging.getLogger("test"),
                       StateStore.memory(), ProbeResources())  # fmt: skip
    async with storage_for(target, ctx) as storage:
        assert await storage.checksum("/lakeprobe/f") is None
        with pytest.raises(StorageError) as missing:
            await storage.checksum("/lakeprobe/missing")
        assert missing.value.reason is Reason.NOT_FOUND


def test_engine_comparison_is_remembered_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pair whose copy engine found an end without checksums is copied without asking the
    engine to compare for RECHECK_SECONDS, then asked again; `none` at an end never asks;
    other pairs are not affected."""
    state = StateStore.memory()
    a, b, c = (Target("S", name, f"davs://{name}.example:443", "/t") for name in "abc")
    assert checksums.engine_compares(state, (a, b))
    checksums.engine_found_none(state, (a, b))
    assert not checksums.engine_compares(state, (a, b))
    assert checksums.engine_compares(state, (b, a))
    assert checksums.engine_compares(state, (a, c))
    later = time.time() + checksums.RECHECK_SECONDS + 1
    monkeypatch.setattr(checksums.time, "time", lambda: later)
    assert checksums.engine_compares(state, (a, b))
    none = dataclasses.replace(c, checksums="none")
    assert not checksums.engine_compares(state, (a, none))
