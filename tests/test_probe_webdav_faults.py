"""The webdav probe against a loopback WebDAV server that misbehaves on purpose: answers XRootD
never gives (no digest, wrong bytes, 5xx, DTDs, cut-off bodies, lies about missing files)."""

from __future__ import annotations

import base64
import logging
import posixpath
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from http_helpers import serve_handler
from state_helpers import CadenceClock

from lakeprobe.probes.clients.httpparse import MAX_LISTING_ENTRIES
from lakeprobe.probes.common import cadence
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex
from lakeprobe.probes.credentials.tokens import FileToken
from lakeprobe.probes.storage.webdav import DELETE_MISSING_ASKED, PROBE_TYPE, WebdavParams

TEST_DIR = "/lakeprobe"
SMALL = WebdavParams(file_size_bytes=4096)
EVERY_RUN = WebdavParams(file_size_bytes=4096, delete_missing_every_seconds=0)


@dataclass
class FakeDav:
    """An in-memory WebDAV server. `fault` names one misbehaviour (see `handle`)."""

    fault: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    authorization: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    deleted: set[str] = field(default_factory=set)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.authorization.add(request.headers.get("Authorization", ""))
        method, path = request.method, request.path
        self.requests.append((method, path))
        if self.fault == "deleted_head_200" and method == "HEAD" and path in self.deleted:
            return web.Response(status=200)  # a stale cache: what was deleted still "exists"
        injected = {"put_500": "PUT", "put_507": "PUT", "delete_403": "DELETE",
                    "propfind_403": "PROPFIND"}  # fmt: skip
        if injected.get(self.fault) == method:
            return web.Response(status=int(self.fault[-3:]), text="injected failure\nmore")
        if method == "OPTIONS":
            return web.Response(headers={"DAV": "1,2"})
        if method == "PUT":
            self.files[path] = await request.read()
            return web.Response(status=201)
        if method == "PROPFIND":
            return web.Response(status=207, body=self.listing(path), content_type="text/xml")
        if path not in self.files:
            lies = {("head_missing_200", "HEAD"): 200, ("delete_missing_204", "DELETE"): 204}
            return web.Response(status=lies.get((self.fault, method), 404))
        if method == "DELETE":
            del self.files[path]
            self.deleted.add(path)
            return web.Response(status=204)
        return await self.read(request, self.files[path])

    async def read(self, request: web.Request, data: bytes) -> web.StreamResponse:
        if request.method == "GET" and self.fault == "get_cut":
            response = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if request.method == "GET" and self.fault == "get_flipped":
            data = bytes([data[0] ^ 1]) + data[1:]
        return web.Response(body=data, headers=self.digest(data))

    def digest(self, data: bytes) -> dict[str, str]:
        value = adler32_hex(data)
        raw = base64.b64encode(bytes.fromhex(value)).decode()
        return {
            "": {"Digest": f"adler32={value}"},
            "no_digest": {},
            "content_digest": {"Content-Digest": f"sha-256=:AAAA:, adler=:{raw}:"},
            "wrong_digest": {"Digest": "adler32=00000001"},
            "bad_digest": {"Digest": "adler32=not-hex"},
            "non_ascii_digest": {"Content-Digest": "adler=:\u00e9\u00e9\u00e9\u00e9:"},
        }.get(self.fault, {"Digest": f"adler32={value}"})

    def listing(self, directory: str) -> bytes:
        if self.fault == "propfind_dtd":
            return b'<!DOCTYPE d [<!ENTITY a "b">]><d:multistatus xmlns:d="DAV:"/>'
        names = [p for p in self.files if posixpath.dirname(p) == directory.rstrip("/")]
        if self.fault == "propfind_bad_href":
            names.append("http://[::1")  # urlsplit: ValueError (an unclosed IPv6 address)
        if self.fault == "propfind_huge":
            names += (f"{directory}f{i}" for i in range(MAX_LISTING_ENTRIES))
        entries = "".join(f"<d:response><d:href>{p}</d:href></d:response>" for p in names)
        return f'<d:multistatus xmlns:d="DAV:">{entries}</d:multistatus>'.encode()


@pytest.fixture
async def dav() -> AsyncIterator[FakeDav]:
    fake = FakeDav()
    async with serve_handler(fake.handle) as fake.url:
        yield fake


async def probe(
    dav: FakeDav,
    *,
    params: WebdavParams = SMALL,
    state: StateStore | None = None,
    on_demand: bool = False,
    test_dir: str = TEST_DIR,
    **kw: Any,
) -> ProbeResult:
    target = Target("SITE", "fake", dav.url, test_dir, **kw)
    outcome = await run_probe(
        PROBE_TYPE, target, params, timeout=5, probe_host="h", log=logging.getLogger("test"),
        state=state, on_demand=on_demand,
    )  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def missing_deletes(dav: FakeDav) -> int:
    """DELETEs of names never written (the delete_missing step's requests)."""
    return sum(1 for m, p in dav.requests if m == "DELETE" and p not in dav.deleted)


@pytest.mark.parametrize(
    ("fault", "status", "reason", "step"),
    [
        ("", Status.OK, Reason.NONE, None),
        ("content_digest", Status.OK, Reason.NONE, None),
        ("no_digest", Status.WARNING, Reason.CHECKSUM_UNAVAILABLE, "head"),
        ("wrong_digest", Status.CRITICAL, Reason.CHECKSUM_MISMATCH, "head"),
        ("bad_digest", Status.CRITICAL, Reason.PROTOCOL_ERROR, "head"),
        ("non_ascii_digest", Status.CRITICAL, Reason.PROTOCOL_ERROR, "head"),
        ("put_500", Status.CRITICAL, Reason.SERVER_ERROR, "put"),
        ("put_507", Status.CRITICAL, Reason.NO_SPACE, "put"),
        ("get_flipped", Status.CRITICAL, Reason.CONTENT_MISMATCH, "get"),
        ("get_cut", Status.CRITICAL, Reason.PROTOCOL_ERROR, "get"),
        ("propfind_dtd", Status.CRITICAL, Reason.PROTOCOL_ERROR, "propfind"),
        ("propfind_bad_href", Status.CRITICAL, Reason.PROTOCOL_ERROR, "propfind"),
        ("propfind_huge", Status.CRITICAL, Reason.PROTOCOL_ERROR, "propfind"),
        ("propfind_403", Status.CRITICAL, Reason.AUTH, "propfind"),
        ("head_missing_200", Status.CRITICAL, Reason.UNEXPECTED_STATUS, "head_missing"),
        ("delete_missing_204", Status.WARNING, Reason.UNEXPECTED_STATUS, "delete_missing"),
        ("delete_403", Status.CRITICAL, Reason.CLEANUP, "delete"),
    ],
)
async def test_faults(
    dav: FakeDav, fault: str, status: Status, reason: Reason, step: str | None
) -> None:
    """Each misbehaviour gives its own status and reason, at the step that saw it; the test
    file is deleted whatever failed (except when DELETE itself is refused)."""
    dav.fault = fault
    result = await probe(dav)  # no state: the run's own store, so delete_missing is asked
    assert (result.status, result.reason) == (status, reason), result.steps
    by_name = {s.name: s for s in result.steps}
    if step is not None:
        assert by_name[step].reason is reason
    assert by_name["delete"].status is (Status.CRITICAL if fault == "delete_403" else Status.OK)
    assert (dav.files == {}) is (fault != "delete_403")


async def test_status_detail_names_method_and_body(dav: FakeDav) -> None:
    """A refused request's detail reads `PUT: 500 Internal Server Error (<first body line>)`."""
    dav.fault = "put_500"
    result = await probe(dav)
    put = next(s for s in result.steps if s.name == "put")
    assert put.detail == "PUT: 500 Internal Server Error (injected failure)"


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("propfind_403", "PROPFIND: 403 Forbidden (injected failure)"),
        ("propfind_bad_href", "PROPFIND: malformed DAV:href 'http://[::1'"),
        ("propfind_huge", f"PROPFIND: listing has more than {MAX_LISTING_ENTRIES} entries"),
    ],
)
async def test_propfind_detail(dav: FakeDav, fault: str, detail: str) -> None:
    """The listing is parsed as it streams in, yet a refused PROPFIND still shows the first
    line of its body, and a malformed listing says what is wrong with it."""
    dav.fault = fault
    result = await probe(dav)
    propfind = next(s for s in result.steps if s.name == "propfind")
    assert propfind.detail == detail


async def test_bearer_token_is_sent(dav: FakeDav, tmp_path: Path) -> None:
    """The token from the file goes into every request's Authorization header, only there."""
    (tmp_path / "tok").write_text("tok-0123456789abcdef\n")
    # The double speaks plain http: the test opts in, as an operator would have to.
    result = await probe(dav, token=FileToken(tmp_path / "tok"), insecure_token_transport=True)
    assert result.status is Status.OK, result.steps
    assert dav.authorization == {"Bearer tok-0123456789abcdef"}
    assert "tok-0123456789abcdef" not in repr(result)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("tok-0123456789\r\nX-Injected: 1\n", "contains control characters"),
        ("tok-0123456789\x00", "contains control characters"),
        ("Bearer tok-0123456789", "has characters not allowed in a token (RFC 6750)"),
        ("tok-0123456789\u00e9", "has characters not allowed in a token (RFC 6750)"),
    ],
)
async def test_unusable_token_file_is_unknown_credential(
    tmp_path: Path, content: str, problem: str
) -> None:
    """A token file whose content is no RFC 6750 bearer token (a CR/LF would make aiohttp
    raise while building the header): UNKNOWN credential before anything is sent, the detail
    names the file and what is wrong, never the value."""
    path = tmp_path / "tok"
    path.write_text(content)
    target = Target("SITE", "fake", "davs://127.0.0.1:1", TEST_DIR, token=FileToken(path))
    params = WebdavParams(file_size_bytes=4096)
    outcome = await run_probe(
        PROBE_TYPE, target, params, timeout=5, probe_host="h", log=logging.getLogger("test")
    )
    assert outcome.exception is None
    result = outcome.result
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert result.steps[0].detail == f"SITE/fake: token file {path} {problem}"
    assert {s.status for s in result.steps[1:]} == {Status.SKIPPED}


def _heads_of_missing(dav: FakeDav) -> list[str]:
    written = {path for method, path in dav.requests if method == "PUT"}
    return [path for method, path in dav.requests if method == "HEAD" and path not in written]


async def test_head_missing_counts_the_delete_check(dav: FakeDav) -> None:
    """On a healthy server the HEAD that verifies the delete got the 404 head_missing looks
    for: no HEAD of a name never created is sent (each 404 costs XrdHttp a connection)."""
    result = await probe(dav)
    assert result.status is Status.OK, result.steps
    head_missing = next(s for s in result.steps if s.name == "head_missing")
    assert head_missing.detail == "HEAD of the deleted test file: 404"
    written = [path for method, path in dav.requests if method == "PUT"]
    assert len(written) == 1
    heads = [(m, p) for m, p in dav.requests if m == "HEAD"]
    assert heads == [("HEAD", written[0]), ("HEAD", written[0])]  # the checksum, the delete


async def test_head_missing_asks_a_new_name_when_the_delete_check_saw_no_404(
    dav: FakeDav,
) -> None:
    """A deleted file that HEAD still finds is the delete's fault (delete_ineffective), not
    proof about missing names: head_missing then asks a name never created, and passes on
    its 404."""
    dav.fault = "deleted_head_200"
    result = await probe(dav)
    by_name = {s.name: s for s in result.steps}
    assert by_name["delete"].reason is Reason.DELETE_INEFFECTIVE, result.steps
    assert by_name["head_missing"].status is Status.OK
    assert by_name["head_missing"].detail == "HEAD of a missing file: 404"
    # Besides the delete check's own names (the file, its `.absent-` control name): one.
    others = [p for p in _heads_of_missing(dav) if p not in dav.deleted and ".absent-" not in p]
    assert len(others) == 1


def delete_missing(result: ProbeResult) -> tuple[Status, str]:
    step = next(s for s in result.steps if s.name == "delete_missing")
    return step.status, step.detail


def share_of(dav: FakeDav) -> float:
    """The test directory's own point of the period (probes/common/cadence.py)."""
    key = Target("SITE", "fake", dav.url, TEST_DIR).url_for(TEST_DIR)
    return cadence.share(DELETE_MISSING_ASKED, key)


async def test_delete_missing_asked_once_per_period(
    dav: FakeDav, cadence_clock: CadenceClock
) -> None:
    """A server's answer to DELETE of a missing file is asked once per period per test
    directory, each directory at its own point of the period: a daemon starting with
    thousands of targets does not ask them all in its first minute. Runs before that point
    say when it is due; later runs say when it last gave 404; an on-demand run (`lakeprobe
    run`) and a period of 0 ask every time."""
    state, share = StateStore.memory(), share_of(dav)
    before = await probe(dav, state=state)
    assert (before.status, delete_missing(before)[0]) == (Status.OK, Status.SKIPPED)
    not_yet = f"DELETE of a missing file not asked yet: due in {900 * share:.0f} s"
    assert delete_missing(before)[1].startswith(not_yet)
    assert missing_deletes(dav) == 0
    cadence_clock.now += 900 * share
    first = await probe(dav, state=state)
    later = await probe(dav, state=state)
    assert delete_missing(first) == (Status.OK, "DELETE of a missing file: 404")
    assert (later.status, delete_missing(later)[0]) == (Status.OK, Status.SKIPPED)
    assert delete_missing(later)[1].startswith("DELETE of a missing file gave 404 0 s ago")
    assert "(asked at most every 900 s)" in delete_missing(later)[1]
    assert missing_deletes(dav) == 1
    # The next time: after 900 s plus up to half of it, by the same share.
    cadence_clock.now += 900 * (1 + cadence.SPREAD * share) - 1
    await probe(dav, state=state)
    assert missing_deletes(dav) == 1
    cadence_clock.now += 2
    await probe(dav, state=state)
    assert missing_deletes(dav) == 2
    await probe(dav, state=state, on_demand=True)
    await probe(dav, state=state, params=EVERY_RUN)
    assert missing_deletes(dav) == 4


def test_test_directories_spread_over_the_period() -> None:
    """10,000 test directories' first checks fall evenly over the period: none of its tenths
    holds more than 12 % of them."""
    shares = [cadence.share(DELETE_MISSING_ASKED, f"davs://h:1/d{n}") for n in range(10_000)]
    tenths = [sum(1 for s in shares if k / 10 <= s < (k + 1) / 10) for k in range(10)]
    assert max(tenths) < 1_200, tenths


async def test_wrong_delete_missing_answer_asked_every_run(
    dav: FakeDav, cadence_clock: CadenceClock
) -> None:
    """A server that answers 204 to DELETE of a missing file is asked, and warned about,
    every run from its first check until it answers 404: a fault never shows only once per
    period."""
    state, dav.fault = StateStore.memory(), "delete_missing_204"
    await probe(dav, state=state)  # sets the directory's first check
    cadence_clock.now += 900
    for _ in range(3):
        result = await probe(dav, state=state)
        assert (result.status, result.reason) == (Status.WARNING, Reason.UNEXPECTED_STATUS)
    assert missing_deletes(dav) == 3
    dav.fault = ""
    for _ in range(2):
        assert (await probe(dav, state=state)).status is Status.OK
    assert missing_deletes(dav) == 4
