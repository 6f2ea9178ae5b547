"""The `xrootd` probe: a storage endpoint over root:// and roots://, with the XRootD client.

Write mode: credential, ping, stat_dir, write, stat_file, checksum, read, delete, sweep (at
most once per sweep_after_seconds / 4 per test directory: probes/common/sweep.py).
Read-only mode: credential, ping, stat_file, checksum, read of the reference file.

A token (target.token) travels as CGI `?authz=<token>` on every path; it is revealed only at
the XrdCl call and never reaches a detail or a log line (XRootD messages are redacted).

roots:// and the CA directory: XrdCl takes its trust anchors from the process environment
variable X509_CERT_DIR (default /etc/grid-security/certificates), read once, when the
process makes its first TLS connection; there is no XrdCl setting (EnvPutString key) for
it and no per-connection choice. So `target.ca_dir` cannot be applied per probe: the daemon
must be started with X509_CERT_DIR pointing at the CA directory (this probe never changes
os.environ). A different target.ca_dir is reported in the log; a wrong or missing CA
directory fails the first step with reason `tls`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from lakeprobe.probes.clients.xrdasync import (
    KXR_UNSUPPORTED,
    XrdError,
    XrdFileSystem,
    download,
    guarded,
    upload,
)
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.common.cleanup import ATTEMPTED, delete_after_write
from lakeprobe.probes.common.sweep import sweep_when_due, sweep_xrootd, xrootd_exists
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
from lakeprobe.probes.core.params import TestFileParams
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import (
    adler32_hex,
    new_test_file,
    normalize_adler32,
    payload,
)
from lakeprobe.probes.credentials.secrets import Secret

# What the server answered when _server_adler32 found nothing (kXR_Unsupported: no
# `xrootd.chksum`), for a detail.
NO_ADLER32 = "checksum query unsupported, or not adler32"


@dataclass(frozen=True, kw_only=True)
class XrootdParams(TestFileParams):
    """No parameters beyond the test-file ones: client timeouts follow the run's deadline."""


def _skipped(detail: str) -> StepOutcome:
    return StepOutcome(Status.SKIPPED, Reason.NONE, detail)


@dataclass(slots=True)
class _Run:
    """The state of one run: what earlier steps learned, for the later ones."""

    target: Target
    params: XrootdParams
    ctx: ProbeContext
    step_deadline: float  # event-loop time; cleanup steps may go on to ctx.deadline
    token: Secret | None = None
    fs: XrdFileSystem | None = None
    dir_ok: bool = False  # the test directory exists
    path: str = ""  # our test file
    data: bytes = b""
    write: StepOutcome | None = None  # None: never attempted
    server_adler32: str | None = None  # read-only mode
    size: int | None = None  # read-only mode
    measurements: dict[Measurement, float] = field(default_factory=dict)

    def _fs(self) -> XrdFileSystem:
        if self.fs is None:
            self.fs = XrdFileSystem(self.target.url, self.token)
        return self.fs

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def write_mode(self) -> None:
        steps = self.ctx.steps
        await self._credential_and_ping()
        await steps.run("stat_dir", guarded(self.stat_dir))
        await steps.run("write", self.write_file)
        await steps.run("stat_file", guarded(self.stat_file))
        await steps.run("checksum", guarded(self.checksum), blocks=checksums.blocks)
        await steps.run("read", guarded(self.read))
        await steps.run("delete", self.delete, cleanup=True)
        await steps.run("sweep", guarded(self.sweep), cleanup=True, critical=False)

    async def read_only_mode(self) -> None:
        steps = self.ctx.steps
        await self._credential_and_ping()
        await steps.run("stat_file", guarded(self.stat_reference))
        await steps.run("checksum", guarded(self.checksum_reference), blocks=checksums.blocks)
        await steps.run("read", guarded(self.read_reference))

    async def _credential_and_ping(self) -> None:
        if self.target.token is not None:
            await self.ctx.steps.run("credential", self.credential)
        await self.ctx.steps.run("ping", guarded(self.ping))

    async def credential(self) -> StepOutcome:
        (self.token,), outcome = await load_tokens(self.target)
        return outcome

    async def ping(self) -> StepOutcome:
        # XrdCl allocates whatever a peer's headers claim: it talks only to a proven XRootD.
        checked = await check_xrootd(self.target.url, self.step_deadline, self.target.ca_dir)
        if not checked.ok:
            return checked
        await self._fs().ping(self.step_deadline)
        return passed(checked.detail)

    async def stat_dir(self) -> StepOutcome:
        info = await self._fs().stat(self.target.test_dir, self.step_deadline)
        if not info.is_dir:
            return failed(Reason.NOT_FOUND, f"test directory {self.target.test_dir}: not a dir")
        self.dir_ok = True
        return passed()

    async def write_file(self) -> StepOutcome:
        self.path = new_test_file(self.target.test_dir, self.ctx.probe_host)
        self.data = payload(self.params.file_size_bytes)
        self.write = ATTEMPTED  # from here on a timeout may leave a partial file: delete runs
        started = self._now()
        try:
            await upload(self.target.url_for(self.path), self.data, self.step_deadline, self.token)
        except XrdError as error:
            self.write = failed(error.reason, str(error))
            return self.write
        self.write = passed()
        seconds = self._measure(Measurement.WRITE_BYTES, Measurement.WRITE_THROUGHPUT, started)
        return passed(f"{len(self.data)} bytes in {seconds:.3f} s")

    async def stat_file(self) -> StepOutcome:
        info = await self._fs().stat(self.path, self.step_deadline)
        if info.size != len(self.data):
            return failed(Reason.SIZE_MISMATCH, f"stat: size {info.size}, wrote {len(self.data)}")
        return passed()

    async def checksum(self) -> StepOutcome:
        if self.target.checksums == "none":
            return checksums.not_asked()
        server = await self._server_adler32(self.path)
        if server is None:
            return checksums.unavailable(self.target.checksums, NO_ADLER32)
        local = adler32_hex(self.data)
        if server != local:
            return failed(Reason.CHECKSUM_MISMATCH, f"server adler32 {server}, wrote {local}")
        return passed(f"adler32 {server}")

    async def read(self) -> StepOutcome:
        started, url = self._now(), self.target.url_for(self.path)
        data = await download(url, len(self.data), self.step_deadline, self.token)
        seconds = self._measure(Measurement.READ_BYTES, Measurement.READ_THROUGHPUT, started, data)
        if data != self.data:
            detail = f"read: {len(data)} bytes differ from the {len(self.data)} written"
            return failed(Reason.CONTENT_MISMATCH, detail)
        return passed(f"{len(data)} bytes in {seconds:.3f} s")

    async def delete(self) -> StepOutcome:
        return await delete_after_write(
            self.path, self.target.test_dir, self.write, self._rm,
            exists=lambda path: xrootd_exists(self._fs(), path, self.ctx.deadline),
            sweep_after=self.params.sweep_after_seconds,
        )  # fmt: skip

    async def _rm(self, path: str) -> StepOutcome | None:
        try:
            await self._fs().rm(path, self.ctx.deadline)  # cleanup: up to the run's deadline
        except XrdError as error:
            return failed(error.reason, str(error))
        return None

    async def sweep(self) -> StepOutcome:
        if not self.dir_ok:
            return _skipped("test directory not reachable")
        if self.ctx.remaining() <= 0:
            return _skipped("no time left before the deadline")
        host, params, test_dir = self.ctx.probe_host, self.params, self.target.test_dir
        return await sweep_when_due(
            self.ctx.state, self.target.url_for(test_dir), params.sweep_after_seconds / 4,
            lambda: sweep_xrootd(self._fs(), test_dir, host, params, self.ctx.deadline),
            "test directory",
        )  # fmt: skip

    async def stat_reference(self) -> StepOutcome:
        reference = self.target.reference_file
        if reference is None:
            return failed(Reason.NOT_FOUND, "read-only mode needs a reference file")
        info = await self._fs().stat(reference, self.step_deadline)
        if info.is_dir:
            return failed(Reason.NOT_FOUND, f"reference {reference}: a directory")
        self.size = info.size
        return passed(f"{info.size} bytes")

    async def checksum_reference(self) -> StepOutcome:
        assert self.target.reference_file is not None  # stat_reference passed
        if self.target.checksums == "none":  # read still checks reference_adler32
            return checksums.not_asked()
        self.server_adler32 = await self._server_adler32(self.target.reference_file)
        expected = self.target.reference_adler32
        if self.server_adler32 is None:
            return checksums.unavailable(self.target.checksums, NO_ADLER32)
        if expected and self.server_adler32 != normalize_adler32(expected):
            detail = f"server adler32 {self.server_adler32}, expected {normalize_adler32(expected)}"
            return failed(Reason.CHECKSUM_MISMATCH, detail)
        return passed(f"adler32 {self.server_adler32}")

    async def read_reference(self) -> StepOutcome:
        assert self.target.reference_file is not None
        assert self.size is not None
        started = self._now()
        url = self.target.url_for(self.target.reference_file)
        data = await download(url, self.size, self.step_deadline, self.token)
        self._measure(Measurement.READ_BYTES, Measurement.READ_THROUGHPUT, started, data)
        if len(data) != self.size:
            return failed(Reason.SIZE_MISMATCH, f"read {len(data)} bytes, stat: {self.size}")
        local = adler32_hex(data)
        expected = self.target.reference_adler32
        for source, value in (("server", self.server_adler32), ("expected", expected)):
            if value and normalize_adler32(value) != local:
                detail = f"data adler32 {local}, {source} {normalize_adler32(value)}"
                return failed(Reason.CHECKSUM_MISMATCH, detail)
        return passed(f"{len(data)} bytes, adler32 {local}")

    async def _server_adler32(self, path: str) -> str | None:
        """The server's adler32 of `path`; None when it reports none (or another algorithm)."""
        try:
            algorithm, value = await self._fs().checksum(path, self.step_deadline)
        except XrdError as error:
            if error.status.errno == KXR_UNSUPPORTED:  # no `xrootd.chksum` on the server
                return None
            raise
        return normalize_adler32(value) if algorithm == "adler32" and value else None

    def _measure(
        self, count: Measurement, rate: Measurement, started: float, data: bytes | None = None
    ) -> float:
        size = len(self.data if data is None else data)
        seconds = max(self._now() - started, 1e-6)
        self.measurements[count] = float(size)
        self.measurements[rate] = size / seconds
        return seconds


class XrootdProbe:
    """One run: one XrdCl FileSystem for the endpoint (XrdCl shares connections per host)."""

    async def __call__(
        self, target: Target, params: XrootdParams, ctx: ProbeContext
    ) -> ProbeResult:
        _check_ca_dir(target, ctx)
        step_deadline = ctx.step_deadline
        run = _Run(target, params, ctx, step_deadline)
        if target.read_only:
            await run.read_only_mode()
        else:
            await run.write_mode()
        return ctx.steps.result(run.measurements)


def _check_ca_dir(target: Target, ctx: ProbeContext) -> None:
    if target.protocol != "roots" or target.ca_dir is None:
        return
    process_wide = os.environ.get("X509_CERT_DIR")
    if process_wide is None or os.path.realpath(process_wide) != os.path.realpath(target.ca_dir):
        ctx.log.warning(
            "%s/%s: ca_dir %s is not applied to roots:// (XrdCl uses X509_CERT_DIR=%s, "
            "process-wide); start the daemon with X509_CERT_DIR=%s",
            target.site, target.endpoint, target.ca_dir, process_wide, target.ca_dir,
        )  # fmt: skip


PROBE_TYPE = ProbeType(
    name="xrootd",
    description="XRootD storage: ping, stat, write, stat+adler32, read back, delete, sweep",
    schemes=frozenset({"root", "roots"}),
    params_model=XrootdParams,
    factory=XrootdProbe,
)
