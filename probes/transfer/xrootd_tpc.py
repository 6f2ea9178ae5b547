"""The `xrootd-tpc` probe: an XRootD third-party copy between two sites (root://, roots://).

Steps: credential (when either side has a token), source, copy, verify, delete.

- source: the reusable source file (testfiles.source_file) must be on the source endpoint with
  the right size and adler32 (its bytes are deterministic, so the expected adler32 is known
  here); it is uploaded when missing, wrong, or marked corrupt by an earlier run.
- copy: source -> a new test file on the destination, driven by the destination (pull), with
  the XRootD client's CopyProcess (engine "xrootd", probes/clients/xrdcopy.py: >= 2.5 s per
  copy, but timed to the destination holding every byte, not to XrdCl's 2.5 s checks) or
  with gfal2 as FTS does it (engine "gfal2", probes/clients/gfalcopy.py, checksums checked by
  gfal2).
- verify: the destination's size and adler32 must be the source file's. A mismatch also marks
  the source file for re-upload: a silently corrupted source (the server still reports the
  checksum of the intact file) is replaced by the next run. A destination without adler32 is
  `checksum_unavailable` by its `checksums` policy (probes/core/checksums.py), checked by size.
- delete: the destination copy, guarded by is_own_file; runs even after a failed copy.
- sweep (non-critical): stale test files at the destination, once it answered this run's
  delete, at most once per destination per `sweep_after_seconds / 4` (probes/common/sweep.py).

Tokens travel per side as `?authz=` CGI (see probes/clients/xrdcopy.py for what XRootD TPC does with
them); they never reach a detail or a log line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Literal

from lakeprobe.probes.clients.copyjob import CopyEnd, CopyError, CopyStats, warn_unapplied_ca_dir
from lakeprobe.probes.clients.gfalcopy import gfal_copy
from lakeprobe.probes.clients.xrdasync import (
    KXR_UNSUPPORTED,
    XrdError,
    XrdFileSystem,
    guarded,
    upload,
)
from lakeprobe.probes.clients.xrdcopy import xrootd_copy
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.common.cleanup import verify_deleted
from lakeprobe.probes.common.sweep import sweep_when_due, sweep_xrootd, xrootd_exists
from lakeprobe.probes.core import checksums
from lakeprobe.probes.core.context import PairParams, ProbeContext, ProbeType, copy_modes
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
from lakeprobe.probes.core.params import MIB, SweepParams
from lakeprobe.probes.core.paramspec import Check, Doc, Ge, Gt, Le, MinLen
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import (
    SUSPECT_SOURCES,
    is_own_file,
    is_own_source,
    new_test_file,
    normalize_adler32,
    source_adler32,
    source_file,
    source_lock_key,
    source_payload,
)
from lakeprobe.probes.credentials.secrets import Secret

_NETWORK = {Reason.CONNECT, Reason.DNS, Reason.TLS, Reason.TIMEOUT}
_MISSING = "missing"  # why the source file is uploaded: it is not there at all


def _pull_only(modes: tuple[str, ...]) -> tuple[str, ...]:
    if modes != ("pull",):
        raise ValueError("xrootd-tpc copies are always driven by the destination: pull only")
    return modes


@dataclass(frozen=True, kw_only=True)
class XrootdTpcParams(PairParams, SweepParams):
    modes: Annotated[
        tuple[str, ...], MinLen(1), Check(copy_modes), Check(_pull_only), Doc("pull only")
    ] = ("pull",)
    file_size_bytes: Annotated[int, Gt(0), Le(1024 * MIB), Doc("source file size")] = MIB
    engine: Annotated[
        Literal["xrootd", "gfal2"],
        Doc("copy with the XRootD client (xrdcp --tpc only) or with gfal2"),
    ] = "xrootd"
    stall_seconds: Annotated[
        float,
        Ge(5.0),
        Doc("abort the copy after this long without progress (XrdCl reports progress every 2.5 s)"),
    ] = 60.0


@dataclass(slots=True)
class _Run:
    pair: PairTarget
    params: XrootdTpcParams
    ctx: ProbeContext
    step_deadline: float  # event-loop time; cleanup steps may go on to ctx.deadline
    tokens: dict[str, Secret | None] = field(default_factory=dict)  # "source"/"destination"
    source_path: str = ""
    expected: str = ""  # adler32 of the source file
    path: str = ""  # the copy on the destination
    copy: StepOutcome | None = None  # None: never attempted
    dst_answered: bool = False  # the destination answered the delete: it may be swept
    measurements: dict[Measurement, float] = field(default_factory=dict)

    @property
    def src(self) -> Target:
        return self.pair.source

    @property
    def dst(self) -> Target:
        return self.pair.destination

    def _fs(self, side: str) -> XrdFileSystem:
        target = self.src if side == "source" else self.dst
        return XrdFileSystem(target.url, self.tokens.get(side))

    async def run(self) -> None:
        steps = self.ctx.steps
        if self.src.token is not None or self.dst.token is not None:
            await steps.run("credential", self.credential)
        await steps.run("source", self.source)
        await steps.run("copy", self.copy_file)
        await steps.run("verify", guarded(self.verify), blocks=checksums.blocks)
        await steps.run("delete", self.delete, cleanup=True)
        await steps.run("sweep", guarded(self.sweep), cleanup=True, critical=False)

    async def credential(self) -> StepOutcome:
        (source, destination), outcome = await load_tokens(self.src, self.dst)
        self.tokens.update(
            {side: t for side, t in (("source", source), ("destination", destination)) if t}
        )
        return outcome

    async def source(self) -> StepOutcome:
        problem = await self._check_ends()
        if problem is not None:
            return problem
        size = self.params.file_size_bytes
        self.source_path = source_file(self.src.test_dir, self.ctx.probe_host, size)
        self.expected = await asyncio.to_thread(source_adler32, size)
        key = self.src.url_for(self.source_path)
        async with self.ctx.state.lock(source_lock_key(key)):
            try:
                why = await self._source_problem(key)
            except XrdError as error:
                reason = error.reason if error.reason in _NETWORK else Reason.SOURCE_MISSING
                return failed(reason, f"source file {self.source_path}: {error}")
            if why is None:
                return passed(f"reused {self.source_path} ({size} bytes, adler32 {self.expected})")
            return await self._upload_source(key, why)

    async def _check_ends(self) -> StepOutcome | None:
        """Both ends must prove to be XRootD servers before XrdCl (allocating whatever a
        peer's headers claim) talks to them; the first failure, else None."""
        ends = {"source": self.src, "destination": self.dst}
        checks = await asyncio.gather(
            *(check_xrootd(end.url, self.step_deadline, end.ca_dir) for end in ends.values())
        )
        for side, checked in zip(ends, checks, strict=True):
            if not checked.ok:
                return failed(checked.reason, f"{side}: {checked.detail}")
        return None

    async def _source_problem(self, key: str) -> str | None:
        """Why the source file must be (re-)uploaded; None when it is fine as it is."""
        if self.ctx.state.get(SUSPECT_SOURCES, key):
            return "a copy of it had a wrong adler32"
        fs, size = self._fs("source"), self.params.file_size_bytes
        try:
            info = await fs.stat(self.source_path, self.step_deadline)
        except XrdError as error:
            if error.reason is Reason.NOT_FOUND:
                return _MISSING
            raise
        if info.is_dir or info.size != size:
            return f"size {info.size}, expected {size}"
        if self.pair.source.checksums == "none":  # reused by its size; verify checks the copy
            return None
        try:
            algorithm, value = await fs.checksum(self.source_path, self.step_deadline)
        except XrdError as error:
            if error.status.errno == KXR_UNSUPPORTED:  # no adler32 there: verify will tell
                return None
            raise
        if algorithm == "adler32" and value and normalize_adler32(value) != self.expected:
            return f"adler32 {normalize_adler32(value)}, expected {self.expected}"
        return None

    async def _upload_source(self, key: str, why: str) -> StepOutcome:
        """Replace the source file; only ever deletes that one exact name."""
        size = self.params.file_size_bytes
        if not is_own_source(self.source_path, self.src.test_dir, self.ctx.probe_host, size):
            return failed(Reason.INTERNAL, f"refusing to replace {self.source_path}")
        fs, token = self._fs("source"), self.tokens.get("source")
        try:
            if why != _MISSING:
                try:
                    await fs.rm(self.source_path, self.step_deadline)
                except XrdError as error:
                    if error.reason is not Reason.NOT_FOUND:
                        raise
            data = await asyncio.to_thread(source_payload, size)
            await upload(self.src.url_for(self.source_path), data, self.step_deadline, token)
        except XrdError as error:
            reason = error.reason if error.reason in _NETWORK else Reason.SOURCE_MISSING
            return failed(reason, f"source file {self.source_path} {why}; upload failed: {error}")
        self.ctx.state.delete(SUSPECT_SOURCES, key)
        return passed(f"uploaded {self.source_path} ({why}): {size} bytes, adler32 {self.expected}")

    async def copy_file(self) -> StepOutcome:
        if self.pair.mode != "pull":
            return failed(Reason.INTERNAL, f"xrootd-tpc cannot copy in {self.pair.mode} mode")
        self.path = new_test_file(self.dst.test_dir, self.ctx.probe_host)
        self.copy = failed(Reason.TIMEOUT, "unfinished")  # attempted: delete must run
        source = CopyEnd(self.src, self.source_path, self.tokens.get("source"))
        destination = CopyEnd(self.dst, self.path, self.tokens.get("destination"))
        try:
            stats = await self._engine_copy(source, destination)
        except CopyError as error:
            if error.reason is Reason.CHECKSUM_MISMATCH:
                self.ctx.state.put(SUSPECT_SOURCES, self.src.url_for(self.source_path), True)
            self.copy = StepOutcome(error.status, error.reason, error.detail)
            return self.copy
        self.copy = passed()
        self.measurements[Measurement.TRANSFER_BYTES] = float(stats.transferred)
        self.measurements[Measurement.TRANSFER_THROUGHPUT] = stats.transferred / stats.seconds
        how = f"{self.params.engine}, {stats.transfer_type}"
        detail = f"{stats.transferred} bytes in {stats.seconds:.2f} s ({how})"
        if stats.first_marker is not None:
            self.measurements[Measurement.FIRST_MARKER] = stats.first_marker
            detail += f", first marker after {stats.first_marker:.2f} s"
        if stats.queued >= 0.1:
            detail += f", waited {stats.queued:.1f} s for a copy thread"
        if stats.note:
            detail += f"; {stats.note}"
        return passed(detail)

    async def _engine_copy(self, source: CopyEnd, destination: CopyEnd) -> CopyStats:
        deadline, stall = self.step_deadline, self.params.stall_seconds
        size = self.params.file_size_bytes
        if self.params.engine == "xrootd":  # timed to the destination holding every byte
            return await xrootd_copy(source, destination, threads=self.ctx.resources.threads,
                                     deadline=deadline, stall_seconds=stall, size=size)  # fmt: skip
        compare = checksums.engine_compares(self.ctx.state, self.pair.endpoints)
        stats = await gfal_copy(
            source, destination, resources=self.ctx.resources, deadline=deadline,
            stall_seconds=stall, adler32=self.expected if compare else None, size=size,
        )  # fmt: skip
        if stats.note:
            checksums.engine_found_none(self.ctx.state, self.pair.endpoints)
        return stats

    async def verify(self) -> StepOutcome:
        fs, size = self._fs("destination"), self.params.file_size_bytes
        info = await fs.stat(self.path, self.step_deadline)
        if info.size != size:
            self.ctx.state.put(SUSPECT_SOURCES, self.src.url_for(self.source_path), True)
            return failed(Reason.SIZE_MISMATCH, f"destination size {info.size}, source {size}")
        policy = self.pair.destination.checksums
        if policy == "none":
            return checksums.unavailable(policy, "", f"size {size} checked")
        try:
            algorithm, value = await fs.checksum(self.path, self.step_deadline)
        except XrdError as error:
            if error.status.errno != KXR_UNSUPPORTED:
                raise
            algorithm, value = "", ""
        if algorithm != "adler32" or not value:
            how = "checksum query unsupported" if not algorithm else f"{algorithm}, not adler32"
            return checksums.unavailable(policy, how, f"size {size} checked")
        if normalize_adler32(value) != self.expected:
            self.ctx.state.put(SUSPECT_SOURCES, self.src.url_for(self.source_path), True)
            detail = f"destination adler32 {normalize_adler32(value)}, source {self.expected}"
            return failed(Reason.CHECKSUM_MISMATCH, f"{detail}: source re-uploaded next run")
        return passed(f"adler32 {self.expected}")

    async def delete(self) -> StepOutcome:
        if self.copy is None:
            return StepOutcome(Status.SKIPPED, Reason.NONE, "nothing was copied")
        if not is_own_file(self.path, self.dst.test_dir):
            return failed(Reason.INTERNAL, f"refusing to delete {self.path}: not our own file")
        try:
            await self._fs("destination").rm(self.path, self.ctx.deadline)
        except XrdError as error:
            self.dst_answered = error.reason in (Reason.NOT_FOUND, Reason.AUTH)
            if not self.copy.ok and self.dst_answered:
                return passed("nothing to delete after the failed copy")
            return failed(Reason.CLEANUP, f"{error.reason}: {error}")
        self.dst_answered = True
        fs, deadline = self._fs("destination"), self.ctx.deadline
        return await verify_deleted(
            self.path,
            lambda path: xrootd_exists(fs, path, deadline),
            self.params.sweep_after_seconds,
        )

    async def sweep(self) -> StepOutcome:
        if not self.dst_answered:
            return StepOutcome(Status.SKIPPED, Reason.NONE, "the destination did not answer")
        every = self.params.sweep_after_seconds / 4
        fs, host = self._fs("destination"), self.ctx.probe_host
        return await sweep_when_due(
            self.ctx.state, self.dst.url_for(self.dst.test_dir), every,
            lambda: sweep_xrootd(fs, self.dst.test_dir, host, self.params, self.ctx.deadline),
            "destination",
        )  # fmt: skip


class XrootdTpcProbe:
    async def __call__(
        self, target: PairTarget, params: XrootdTpcParams, ctx: ProbeContext
    ) -> ProbeResult:
        library = "gfal2" if params.engine == "gfal2" else "XrdCl"
        for side in (target.source, target.destination):
            warn_unapplied_ca_dir(side, ctx.log, library, ctx.resources.notices)
        step_deadline = ctx.step_deadline
        run = _Run(target, params, ctx, step_deadline)
        await run.run()
        return ctx.steps.result(run.measurements)


PROBE_TYPE = ProbeType(
    name="xrootd-tpc",
    description="XRootD third-party copy (pull) between two sites: source file, copy, "
    "adler32 at the destination, delete",
    schemes=frozenset({"root", "roots"}),
    params_model=XrootdTpcParams,
    factory=XrootdTpcProbe,
    modes=("pull",),
)
