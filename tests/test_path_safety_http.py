"""End to end: for any test directory, the real webdav and http-tpc probes (pull and push)
never name a path outside it, against a recording WebDAV server on loopback.

The server decodes each request path once and resolves dot-segments, as a storage server
does, and records the raw request target. For a test directory that passes validation
every mutating request (PUT, DELETE, MKCOL, the COPY destination) must land in it (MKCOL:
also on its ancestors), and the runs must be OK; stale test files in it are swept, decoys
next to it stay. For one that validation rejects, a Target built without the config still
sends every path literally: nothing lands outside the literal directory, and nothing is
deleted.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from http_helpers import serve_handler
from hypothesis import event, given, settings
from hypothesis import strategies as st
from path_strategies import RICH, dangerous_paths, plain_paths
from pydantic import ValidationError
from yarl import URL

from lakeprobe.config.model import EndpointConfig
from lakeprobe.probes.core.context import ProbeParams, ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import adler32_hex, new_test_file
from lakeprobe.probes.storage import webdav
from lakeprobe.probes.transfer import http_tpc

LOG = logging.getLogger("test.path_safety")
HOST = "testhost"
MUTATING = frozenset({"PUT", "DELETE", "MKCOL", "COPY"})
SUCCESS = b"Perf Marker\nStripe Bytes Transferred: 1024\nEnd\nsuccess: Created\n"


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    raw: str  # the request target as sent (path and query)
    path: str  # where the server acts: decoded once, dot-segments resolved
    copy_to: str | None = None  # COPY: the path the copy was written to


def effective(raw_path: str) -> str:
    """What a storage server makes of a request path: decoded once, normalised."""
    decoded = unquote(URL(raw_path, encoded=True).raw_path)
    return posixpath.normpath(decoded) if decoded != "/" else "/"


@dataclass
class RecordingDav:
    """In-memory WebDAV: OPTIONS, PUT, HEAD (size, adler32), GET, PROPFIND Depth 1, DELETE,
    MKCOL, and COPY with Source (pull) or Destination (push) answering 201 and perf markers."""

    files: dict[str, bytes] = field(default_factory=dict)
    seen: list[Recorded] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, effective(request.raw_path)
        copy_to = None
        if method == "COPY":
            copy_to = self.copy(request, path)
        self.seen.append(Recorded(method, request.raw_path, path, copy_to))
        if method == "OPTIONS":
            return web.Response(headers={"DAV": "1,2"})
        if method == "PUT":
            self.files[path] = await request.read()
            return web.Response(status=201)
        if method == "MKCOL":
            return web.Response(status=201)
        if method == "PROPFIND":
            return web.Response(status=207, body=self.listing(path), content_type="text/xml")
        if method == "COPY":
            return await self.copy_answer(request, copy_to is not None)
        if path not in self.files:
            return web.Response(status=404)
        if method == "DELETE":
            del self.files[path]
            return web.Response(status=204)
        data = self.files[path]
        return web.Response(body=data, headers={"Digest": f"adler32={adler32_hex(data)}"})

    def copy(self, request: web.Request, path: str) -> str | None:
        if "Source" in request.headers:  # pull: fetch Source into the request path
            source, destination = effective(URL(request.headers["Source"]).raw_path), path
        else:
            source = path
            destination = effective(URL(request.headers["Destination"]).raw_path)
        if source not in self.files:
            return None
        self.files[destination] = self.files[source]
        return destination

    @staticmethod
    async def copy_answer(request: web.Request, copied: bool) -> web.StreamResponse:
        response = web.StreamResponse(status=201, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(SUCCESS if copied else b"failure: no such source\n")
        await response.write_eof()
        return response

    def listing(self, directory: str) -> bytes:
        names = [p for p in self.files if posixpath.dirname(p) == directory.rstrip("/")]
        entries = "".join(
            f"<D:response><D:href>{quote(p)}</D:href></D:response>" for p in [directory, *names]
        )
        return f'<D:multistatus xmlns:D="DAV:">{entries}</D:multistatus>'.encode()


async def run_all(test_dir: str, dav: RecordingDav) -> list[ProbeResult]:
    """The webdav probe, then http-tpc pull and push, all with `test_dir` as it is."""
    async with serve_handler(dav.handle) as url:
        a, b = (Target(site=name, endpoint="dav", url=url, test_dir=test_dir)
                for name in ("A", "B"))  # fmt: skip
        results = [await _run(webdav.PROBE_TYPE, a, webdav.WebdavParams(file_size_bytes=1024))]
        tpc = http_tpc.HttpTpcParams(file_size_bytes=1024, stall_seconds=5)
        for mode in ("pull", "push"):
            results.append(await _run(http_tpc.PROBE_TYPE, PairTarget(a, b, mode), tpc))
        return results


async def _run(
    probe_type: ProbeType[Any, Any], target: Target | PairTarget, params: ProbeParams
) -> ProbeResult:
    outcome = await run_probe(probe_type, target, params, timeout=10.0, probe_host=HOST, log=LOG)
    return outcome.result


def seed(dav: RecordingDav, directory: str) -> tuple[list[str], list[str]]:
    """Stale test files in `directory` (own and foreign, both past their TTL), and decoys
    with test-file names in its parent, in a sibling and in the root."""
    now = time.time()
    stale = [new_test_file(directory, HOST, now - 3 * 3600),
             new_test_file(directory, "old-pod-7f9c", now - 2 * 86400)]  # fmt: skip
    parent = posixpath.dirname(directory)
    decoys = [new_test_file(where, HOST, now - 3 * 3600)
              for where in (parent, directory + "-sibling", "/")]  # fmt: skip
    for path in stale + decoys:
        dav.files[path] = b"x"
    return stale, decoys


def inside(path: str, directory: str) -> bool:
    return path.rstrip("/") == directory or posixpath.dirname(path) == directory


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.one_of(plain_paths(), plain_paths(), dangerous_paths(), RICH.map(lambda t: "/" + t)))
def test_probes_stay_in_the_test_dir(raw: str) -> None:
    """Valid: all three runs OK, every request inside the test directory (MKCOL: or an
    ancestor), stale files swept, decoys intact. Invalid (config refuses it; the probes get
    it anyway): every mutating request inside the literal directory, no DELETE at all."""
    try:
        test_dir = EndpointConfig(name="e", url="http://h", test_dir=raw).test_dir
    except ValidationError:
        test_dir = None
    event("valid test_dir" if test_dir else "invalid test_dir")
    literal = raw.rstrip("/") or "/"
    dav = RecordingDav()
    stale, decoys = seed(dav, test_dir or literal)
    results = asyncio.run(run_all(raw, dav))
    for request in dav.seen:
        assert not {"?", "#"} & set(request.raw), request
        assert unquote(request.raw) == request.path or request.raw.endswith("/"), request
    mutating = [r for r in dav.seen if r.method in MUTATING]
    if test_dir is None:
        assert not [r for r in mutating if r.method == "DELETE"], mutating
        assert all(inside(r.copy_to or r.path, literal) for r in mutating), mutating
    else:
        assert [r.status for r in results] == [Status.OK] * 3, results
        parts = test_dir.split("/")
        ancestors = {"/".join(parts[:depth]) or "/" for depth in range(1, len(parts))}
        for request in dav.seen:
            where = request.copy_to or request.path
            allowed = request.method in ("MKCOL", "OPTIONS") and where in ancestors
            assert inside(where, test_dir) or allowed, request
        assert not [path for path in stale if path in dav.files]
    assert all(path in dav.files for path in decoys)
