"""The `webdav` probe: the ETF/SAM check_webdav sequence over davs://, https:// and http://.

Write mode: credential, options, put, head, get, propfind, delete, head_missing,
delete_missing, sweep. Read-only mode: credential, options, head, get of the reference file.

head_missing comes after delete: the HEAD that verifies the delete asks for a name that no
longer exists, so its 404 already shows that HEAD of a missing file gives 404, and the step
passes on it without another request. Only when that HEAD did not answer 404 (the delete
failed or was not verified) does head_missing ask for a name never created. Servers that
close the connection after every 404 (XrdHttp 5.5) make the client open a new TLS connection
for the next request, so each 404 saved is a handshake saved (benchmarks/RESULTS.md).
Moving delete_missing before the delete saves nothing there: XrdHttp 5.5 answers a DELETE's
404 with `Connection: Keep-Alive` and closes anyway (libcurl's next send fails, and it
reconnects), so the run's two 404s take two connections in either order. So delete_missing,
which asks about the server's software rather than its health, runs at most once per
`delete_missing_every_seconds` per test directory, first at the directory's own point of
that period (probes/common/cadence.py: an answer other than 404 is asked again every run
until it is fixed; `lakeprobe run` always asks); the runs between make one connection
(benchmarks/RESULTS.md).

A HEAD without any adler32 digest is `checksum_unavailable` by the endpoint's `checksums`
policy (probes/core/checksums.py: WARNING by default, CRITICAL if required, not asked if
none), and never skips GET: the data path works and GET still compares the bytes. Plain web
servers and some WebDAV doors never report checksums; XrdHttp without `xrootd.chksum`
answers 405 to a HEAD carrying Want-Digest, so such a HEAD is asked again without it
(probes/common/httpdigest.py head_with_digest) and the file's size is still checked.
`delete` runs whenever a PUT was attempted, by the one rule of probes/common/cleanup.py (404,
or 401/403 after a refused PUT: pass; a refused or failed DELETE: CRITICAL `cleanup`; a 2xx
DELETE after which HEAD still finds the file: CRITICAL `delete_ineffective`).
`sweep` runs once the endpoint answered OPTIONS.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Annotated

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    Reply,
    RequestFailed,
    guarded,
    status_failure,
)
from lakeprobe.probes.common.cadence import NotDue, when_due
from lakeprobe.probes.common.cleanup import ATTEMPTED, delete_after_write
from lakeprobe.probes.common.httpdigest import head_with_digest
from lakeprobe.probes.common.sweep import http_exists, list_http_files, sweep_http
from lakeprobe.probes.core import checksums
from lakeprobe.probes.core.context import ProbeContext, ProbeType
from lakeprobe.probes.core.credential_step import load_tokens
from lakeprobe.probes.core.outcome import (
    Measurement,
    ProbeResult,
    Reason,
    Status,
    StepOutcome,
    failed,
    passed,
)
from lakeprobe.probes.core.params import MIB, TestFileParams
from lakeprobe.probes.core.paramspec import Doc, Ge, Le
from lakeprobe.probes.core.payloads import Payload
from lakeprobe.probes.core.steps import blocks_on_unreachable
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import (
    Adler32,
    adler32_hex,
    is_own_file,
    new_test_file,
    normalize_adler32,
)

PUT_OK = {200, 201, 204}
MAX_REFERENCE_BYTES = 1024 * MIB
# State scope: endpoint URL + test dir -> when DELETE of a missing file last gave 404.
DELETE_MISSING_ASKED = "delete-missing-last"


@dataclass(frozen=True, kw_only=True)
class WebdavParams(TestFileParams):
    """Parameters of the webdav probe."""

    check_missing: Annotated[
        bool, Doc("also HEAD and DELETE a file that does not exist, expecting 404")
    ] = True
    delete_missing_every_seconds: Annotated[
        float,
        Ge(0),
        Le(86400),
        Doc(
            "DELETE a missing file about this often per test directory (0: every run), the "
            "first time at the directory's own point of the period; one that did not answer "
            "404 is asked again next run; `lakeprobe run` always asks"
        ),
    ] = 900.0
    keep_alive: Annotated[
        bool, Doc("reuse connections between steps; false opens one per request")
    ] = True


def delete_missing_skipped(why: NotDue, every: float) -> str:
    if why.since is None:
        return (
            f"DELETE of a missing file not asked yet: due in {why.first_in:.0f} s"
            f" (asked at most every {every:g} s, each test directory at its own time)"
        )
    return (
        f"DELETE of a missing file gave 404 {why.since:.0f} s ago (asked at most every {every:g} s)"
    )


def _skipped(detail: str) -> StepOutcome:
    return StepOutcome(Status.SKIPPED, Reason.NONE, detail)


@dataclass(slots=True)
class _Run:
    """The state of one run: what earlier steps learned, for the later ones."""

    target: Target
    params: WebdavParams
    ctx: ProbeContext
    http: HttpClient
    path: str = ""  # our test file
    data: Payload = b""
    put_status: StepOutcome | None = None  # None: the upload was never attempted
    reachable: bool = False
    listing: list[str] | None = None
    deleted_head_404: bool = False  # the HEAD verifying our delete answered 404
    size: int | None = None  # read-only mode: reported by HEAD
    digest: str | None = None  # read-only mode: reported by HEAD
    measurements: dict[Measurement, float] = field(default_factory=dict)

    async def write_mode(self) -> None:
        steps, check_missing = self.ctx.steps, self.params.check_missing
        await self._credential_and_options(self.target.test_dir)
        await steps.run("put", guarded(self.put))
        await steps.run("head", guarded(self.head), blocks=checksums.blocks)
        await steps.run("get", guarded(self.get))
        await steps.run("propfind", guarded(self.propfind))
        # A failed delete does not hide the checks after it, which ask other names.
        delete = guarded(self.delete)
        await steps.run("delete", delete, cleanup=True, blocks=blocks_on_unreachable)
        if check_missing:
            await steps.run("head_missing", guarded(self.head_missing))
            delete_missing = guarded(self.delete_missing)
            await steps.run("delete_missing", delete_missing, critical=False)
        await steps.run("sweep", guarded(self.sweep), cleanup=True, critical=False)

    async def read_only_mode(self) -> None:
        reference = self.target.reference_file
        await self._credential_and_options(posixpath.dirname(reference or self.target.test_dir))
        await self.ctx.steps.run("head", guarded(self.head_reference), blocks=checksums.blocks)
        await self.ctx.steps.run("get", guarded(self.get_reference))

    async def _credential_and_options(self, directory: str) -> None:
        if self.target.token is not None:
            await self.ctx.steps.run("credential", self.credential)
        await self.ctx.steps.run("options", guarded(lambda: self.options(directory)))

    async def credential(self) -> StepOutcome:
        (self.http.token,), outcome = await load_tokens(self.target)
        return outcome

    async def options(self, directory: str) -> StepOutcome:
        reply = await self.http.request("OPTIONS", _as_dir(directory), expect=range(200, 300))
        self.reachable = True
        dav = ", ".join(reply.headers.getall("DAV", []))
        return passed(f"DAV: {dav}" if dav else "no DAV header")

    async def put(self) -> StepOutcome:
        self.path = new_test_file(self.target.test_dir, self.ctx.probe_host)
        self.data = self.ctx.resources.payloads.take(self.params.file_size_bytes)
        self.put_status = ATTEMPTED  # from here on delete runs (probes/common/cleanup.py)
        try:
            reply = await self.http.request("PUT", self.path, expect=PUT_OK, data=self.data)
        except RequestFailed as failure:
            self.put_status = failure.outcome
            raise
        self.put_status = passed()
        self._measure(Measurement.WRITE_BYTES, Measurement.WRITE_THROUGHPUT, reply, len(self.data))
        return passed(f"{len(self.data)} bytes in {reply.seconds:.3f} s")

    async def head(self) -> StepOutcome:
        policy = self.target.checksums
        got = await head_with_digest(self.http, self.path, digest=policy != "none")
        size = got.reply.content_length
        if size is not None and size != len(self.data):
            return failed(Reason.SIZE_MISMATCH, f"HEAD: size {size}, wrote {len(self.data)}")
        digest, local = got.adler32, adler32_hex(self.data)
        if digest is None:
            return checksums.unavailable(policy, got.missing, _size_checked(size))
        if digest != local:
            return failed(Reason.CHECKSUM_MISMATCH, f"HEAD: adler32 {digest}, wrote {local}")
        return passed(f"adler32 {digest}")

    async def get(self) -> StepOutcome:
        """Compares the answer with what was written as it arrives: no second copy."""
        limit = 2 * len(self.data) + 1024  # beyond that: protocol error, not just a mismatch
        same = _Compare(self.data)
        reply = await self.http.request(
            "GET", self.path, expect={200}, max_body=limit, sink=same.update
        )
        self._measure(Measurement.READ_BYTES, Measurement.READ_THROUGHPUT, reply, reply.length)
        if not same.equal():
            detail = f"GET: {reply.length} bytes differ from the {len(self.data)} written"
            return failed(Reason.CONTENT_MISMATCH, detail)
        return passed(f"{reply.length} bytes in {reply.seconds:.3f} s")

    async def propfind(self) -> StepOutcome:
        self.listing = await self._list()
        if posixpath.basename(self.path) not in self.listing:
            detail = f"PROPFIND: test file not among {len(self.listing)} listed files"
            return failed(Reason.NOT_FOUND, detail)
        return passed(f"{len(self.listing)} files listed")

    async def head_missing(self) -> StepOutcome:
        if self.deleted_head_404:
            return passed("HEAD of the deleted test file: 404")
        return await self.expect_missing("HEAD")

    async def delete_missing(self) -> StepOutcome:
        """Whether DELETE of a missing file gives 404 is a property of the server's software
        and configuration: asked every delete_missing_every_seconds, not every run. Against
        servers that close the connection after a 404 (XrdHttp), each run that skips it
        saves a TLS connection: a quarter of the run's CPU (benchmarks/RESULTS.md)."""
        every = 0.0 if self.ctx.on_demand else self.params.delete_missing_every_seconds
        key = self.target.url_for(self.target.test_dir)
        return await when_due(
            self.ctx.state, DELETE_MISSING_ASKED, key, every,
            lambda: self.expect_missing("DELETE"),
            lambda why: delete_missing_skipped(why, every),
            first_at_phase=True,
        )  # fmt: skip

    async def expect_missing(self, method: str) -> StepOutcome:
        """HEAD or DELETE of a name never created must give 404."""
        missing = new_test_file(self.target.test_dir, self.ctx.probe_host)
        if not is_own_file(missing, self.target.test_dir):  # DELETE: guard every delete
            return failed(Reason.INTERNAL, f"{method}: refusing a path not our own")
        reply = await self.http.request(method, missing, expect=ANY_STATUS)
        if reply.status == 404:
            return passed(f"{method} of a missing file: 404")
        server = 500 <= reply.status <= 599
        return status_failure(reply, Reason.SERVER_ERROR if server else Reason.UNEXPECTED_STATUS)

    async def delete(self) -> StepOutcome:
        return await delete_after_write(
            self.path, self.target.test_dir, self.put_status, self._delete,
            exists=self._exists, sweep_after=self.params.sweep_after_seconds,
        )  # fmt: skip

    async def _exists(self, path: str) -> bool | None:
        present = await http_exists(self.http, path)  # False: HEAD answered 404
        self.deleted_head_404 = present is False
        return present

    async def _delete(self, path: str) -> StepOutcome | None:
        try:
            reply = await self.http.request("DELETE", path, expect=ANY_STATUS)
        except RequestFailed as failure:
            return failure.outcome
        return None if reply.status in (200, 204) else status_failure(reply)

    async def sweep(self) -> StepOutcome:
        if not self.reachable:
            return _skipped("endpoint not reachable")
        names = self.listing if self.listing is not None else await self._list()
        host, params = self.ctx.probe_host, self.params
        return await sweep_http(self.http, self.target.test_dir, host, params, names)

    async def head_reference(self) -> StepOutcome:
        if self.target.reference_file is None:
            return failed(Reason.NOT_FOUND, "read-only mode needs a reference file")
        policy = self.target.checksums
        got = await head_with_digest(self.http, self.target.reference_file, digest=policy != "none")
        self.size, self.digest = got.reply.content_length, got.adler32
        expected = self.target.reference_adler32
        if self.digest is None:
            return checksums.unavailable(policy, got.missing, _size_checked(self.size))
        if expected and self.digest != normalize_adler32(expected):
            detail = f"HEAD: adler32 {self.digest}, expected {normalize_adler32(expected)}"
            return failed(Reason.CHECKSUM_MISMATCH, detail)
        return passed(f"adler32 {self.digest}")

    async def get_reference(self) -> StepOutcome:
        """Streams the file (it may be large) through adler32; nothing is kept in memory."""
        assert self.target.reference_file is not None  # head_reference passed
        checksum = Adler32()
        limit = MAX_REFERENCE_BYTES if self.size is None else self.size + 1024
        reply = await self.http.request(
            "GET", self.target.reference_file, expect={200}, max_body=limit, sink=checksum.update
        )
        self._measure(Measurement.READ_BYTES, Measurement.READ_THROUGHPUT, reply, reply.length)
        if self.size is not None and reply.length != self.size:
            return failed(Reason.SIZE_MISMATCH, f"GET: {reply.length} bytes, HEAD: {self.size}")
        local = checksum.hex()
        for source, value in (("server", self.digest), ("expected", self.target.reference_adler32)):
            if value and normalize_adler32(value) != local:
                detail = f"GET: data adler32 {local}, {source} {normalize_adler32(value)}"
                return failed(Reason.CHECKSUM_MISMATCH, detail)
        return passed(f"{reply.length} bytes, adler32 {local}")

    async def _list(self) -> list[str]:
        return await list_http_files(self.http, self.target.test_dir)

    def _measure(self, count: Measurement, rate: Measurement, reply: Reply, size: int) -> None:
        self.measurements[count] = float(size)
        self.measurements[rate] = size / max(reply.seconds, 1e-6)


def _size_checked(size: int | None) -> str:
    return f"size {size} checked" if size is not None else "no size reported"


def _as_dir(path: str) -> str:
    return path.rstrip("/") + "/"


class _Compare:
    """Whether the chunks fed to `update` are exactly `expected`."""

    def __init__(self, expected: Payload) -> None:
        self.expected = expected
        self.offset = 0
        self.same = True

    def update(self, chunk: bytes) -> None:
        # startswith at an offset compares in place: no slice copied (a memoryview's == is
        # 30x slower than either, item by item).
        self.same = self.same and self.expected.startswith(chunk, self.offset)
        self.offset += len(chunk)

    def equal(self) -> bool:
        return self.same and self.offset == len(self.expected)


class WebdavProbe:
    """One run: one HTTP session (connections reused across steps), closed at the end."""

    async def __call__(
        self, target: Target, params: WebdavParams, ctx: ProbeContext
    ) -> ProbeResult:
        run: _Run | None = None
        try:
            async with HttpClient(target, ctx, keep_alive=params.keep_alive) as http:
                run = _Run(target, params, ctx, http)
                if target.read_only:
                    await run.read_only_mode()
                else:
                    await run.write_mode()
        finally:  # the session is closed: nothing reads the payload any more
            if run is not None:
                ctx.resources.payloads.give(run.data)
        return ctx.steps.result(run.measurements)


PROBE_TYPE = ProbeType(
    name="webdav",
    description="WebDAV/HTTP storage: OPTIONS, PUT, HEAD+adler32, GET, PROPFIND, DELETE",
    schemes=frozenset({"davs", "https", "http"}),
    params_model=WebdavParams,
    factory=WebdavProbe,
)
