"""The `http-tpc` probe: one HTTP third-party copy (WebDAV COPY) between two endpoints.

Steps: credential (when either side has a token), source, mkcol, copy, verify, delete.
`source` keeps one reusable, deterministic file per source endpoint and size: HEAD with
Want-Digest, PUT only when it is missing, of the wrong size or checksum, or when an earlier
run's `verify` found its copy corrupt (silent corruption keeps a stale checksum at the
source, so only the copy shows it). `copy` sends COPY to the active side (pull: the
destination, with `Source:`; push: the source, with `Destination:`); the passive side's
token goes in `TransferHeaderAuthorization`. The 201 only means the copy started: the body's
perf markers are watched for progress (STALL) and its last line decides. `delete` removes the
copy whenever a COPY was sent: XrdHttp leaves an empty destination file after a failed pull.
`sweep` (non-critical) deletes stale test files at the destination once it answered this
run's DELETE, at most once per destination per `sweep_after_seconds / 4` (probes/common/sweep.py).

Endpoints without checksums (XrdHttp without `xrootd.chksum` answers 405 to a HEAD carrying
Want-Digest): every digest HEAD is asked again without it (probes/common/storage.py), so such
a source is reused by its size, never called missing. `verify` then checks the copy's size
and reports `checksum_unavailable` by the destination's `checksums` policy
(probes/core/checksums.py). It does not read the copy back to checksum it here: that would
double the bytes every pair moves at the destination (docs/transfer-matrix.md), and the
webdav probe of that endpoint already compares the bytes it reads back on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from lakeprobe.probes.clients.copyjob import CopyEnd, CopyError
from lakeprobe.probes.clients.gfalcopy import gfal_copy
from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    RequestFailed,
    Timeouts,
    guarded,
    status_failure,
)
from lakeprobe.probes.clients.httpcopy import CopyOutcome, ensure_collection, stream_copy
from lakeprobe.probes.common.cleanup import verify_deleted
from lakeprobe.probes.common.httpdigest import head_with_digest
from lakeprobe.probes.common.sweep import http_exists, sweep_http, sweep_when_due
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
from lakeprobe.probes.core.paramspec import Check, Doc, Gt, Le, MinLen
from lakeprobe.probes.core.target import PairTarget
from lakeprobe.probes.core.testfiles import (
    SUSPECT_SOURCES,
    is_own_file,
    is_own_source,
    new_test_file,
    source_adler32,
    source_file,
    source_lock_key,
    source_payload,
)

PUT_OK = frozenset({200, 201, 204})
# The HTTP client's own stall timeout on the active side is only a backstop: the stall watch
# decides.
STALL_BACKSTOP_SECONDS = 30.0

BeforeCopy = Callable[[PairTarget, str, str], Awaitable[None]]


# How a push that the destination broke off shows at the source, whichever engine.
_PUSH_UNEXPLAINED = frozenset({Reason.DESTINATION_ERROR, Reason.TPC_FAILURE})


@dataclass(frozen=True, kw_only=True)
class HttpTpcParams(PairParams, SweepParams):
    modes: Annotated[tuple[str, ...], MinLen(1), Check(copy_modes), Doc("pull, push or both")] = (
        "pull",
        "push",
    )
    # Up to 1 GiB, as xrootd-tpc: the upload holds the source once (testfiles.source_payload).
    file_size_bytes: Annotated[int, Gt(0), Le(1024 * MIB), Doc("source file size")] = MIB
    stall_seconds: Annotated[
        float, Gt(0), Doc("abort with `stall` after this long without byte progress")
    ] = 60.0
    min_rate_bytes_per_second: Annotated[
        Annotated[float, Gt(0)] | None, Doc("progress slower than this counts as no progress")
    ] = None
    engine: Annotated[
        Literal["native", "gfal2"],
        Doc("native: lakeprobe sends the COPY; gfal2: gfal2 does, as FTS"),
    ] = "native"


@dataclass(slots=True)
class _Run:
    pair: PairTarget
    params: HttpTpcParams
    ctx: ProbeContext
    src: HttpClient
    dst: HttpClient
    step_deadline: float  # event-loop time by which normal steps must end
    before_copy: BeforeCopy | None = None
    expected: str = ""  # adler32 of the source data, known locally
    dst_path: str = ""
    copied: bool = False  # a COPY was sent: the destination may hold (part of) a file
    dst_answered: bool = False  # the destination answered the DELETE: it may be swept
    measurements: dict[Measurement, float] = field(default_factory=dict)

    @property
    def src_path(self) -> str:
        size = self.params.file_size_bytes
        return source_file(self.pair.source.test_dir, self.ctx.probe_host, size)

    @property
    def src_key(self) -> str:
        return str(self.src.url_of(self.src_path))

    async def run(self) -> None:
        steps = self.ctx.steps
        if self.pair.source.token is not None or self.pair.destination.token is not None:
            await steps.run("credential", self.credential)
        await steps.run("source", guarded(self.source))
        await steps.run("mkcol", guarded(self.mkcol))
        await steps.run("copy", guarded(self.copy))
        await steps.run("verify", guarded(self.verify), blocks=checksums.blocks)
        await steps.run("delete", guarded(self.delete), cleanup=True)
        await steps.run("sweep", guarded(self.sweep), cleanup=True, critical=False)

    async def credential(self) -> StepOutcome:
        (self.src.token, self.dst.token), outcome = await load_tokens(
            self.pair.source, self.pair.destination
        )
        return outcome

    async def source(self) -> StepOutcome:
        size = self.params.file_size_bytes
        self.expected = await asyncio.to_thread(source_adler32, size)
        async with self.ctx.state.lock(source_lock_key(self.src_key)):
            problem = await self._source_problem()
            if problem is None:
                return passed(f"reused {self.src_path} (adler32 {self.expected})")
            host = self.ctx.probe_host
            if not is_own_source(self.src_path, self.pair.source.test_dir, host, size):
                return failed(Reason.INTERNAL, f"PUT: refusing to replace {self.src_path}")
            data = await asyncio.to_thread(source_payload, size)
            reply = await self.src.request("PUT", self.src_path, expect=ANY_STATUS, data=data)
            if reply.status not in PUT_OK:
                return status_failure(reply, Reason.SOURCE_MISSING)
            self.ctx.state.delete(SUSPECT_SOURCES, self.src_key)
            return passed(f"uploaded {len(data)} bytes to {self.src_path} ({problem})")

    async def _source_problem(self) -> str | None:
        """Why the source file must be (re-)uploaded; None when it can be used as it is."""
        ask = self.pair.source.checksums != "none"
        got = await head_with_digest(self.src, self.src_path, expect=ANY_STATUS, digest=ask)
        reply = got.reply
        if reply.status == 404:
            return "missing"
        if reply.status != 200:
            raise RequestFailed(status_failure(reply, Reason.SOURCE_MISSING))
        if self.ctx.state.get(SUSPECT_SOURCES, self.src_key):
            return "an earlier copy of it failed verification"
        if reply.content_length not in (None, self.params.file_size_bytes):
            return f"size {reply.content_length}"
        # No adler32 here: reused by its size; verify checks the copy at the destination.
        if got.adler32 is not None and got.adler32 != self.expected:
            return f"adler32 {got.adler32}, expected {self.expected}"
        return None

    async def mkcol(self) -> StepOutcome:
        return await ensure_collection(self.dst, self.pair.destination.test_dir)

    async def copy(self) -> StepOutcome:
        self.dst_path = new_test_file(self.pair.destination.test_dir, self.ctx.probe_host)
        if self.before_copy is not None:
            await self.before_copy(self.pair, self.src_path, self.dst_path)
        self.copied = True
        step = await (self._gfal2_copy() if self.params.engine == "gfal2" else self._copy())
        if self.pair.mode == "push" and step.reason in _PUSH_UNEXPLAINED:
            return await self._ask_destination(step)
        return step

    async def _ask_destination(self, step: StepOutcome) -> StepOutcome:
        """A push's source sees only that the destination hung up on its upload ("Server
        returned nothing"). The destination is asked itself with a small PUT of a new test
        file, deleted at once: a server that breaks that off too while it answers, or refuses
        it for space, is full (HttpClient's broken-upload rule). Not the copy's own path: the
        destination may still hold the broken upload open there (XrdHttp then refuses a
        second writer, which says nothing about space)."""
        probe_path = new_test_file(self.pair.destination.test_dir, self.ctx.probe_host)
        try:
            await self.dst.request("PUT", probe_path, expect={200, 201, 204}, data=b"\0\0")
        except RequestFailed as refused:
            if refused.outcome.reason is Reason.NO_SPACE:
                step = failed(Reason.NO_SPACE, f"{step.detail}; the destination itself: "
                                               f"{refused.outcome.detail}")  # fmt: skip
        finally:
            if is_own_file(probe_path, self.pair.destination.test_dir):  # guard every delete
                with contextlib.suppress(RequestFailed):  # left over: the sweep's to delete
                    await self.dst.request("DELETE", probe_path, expect=ANY_STATUS)
        return step

    async def _copy(self) -> StepOutcome:
        pull = self.pair.mode == "pull"
        if pull:  # the remote side's URL, encoded as HttpClient encodes a path
            headers = {"Source": str(self.src.url_of(self.src_path))}
        else:
            headers = {"Destination": str(self.dst.url_of(self.dst_path))}
        passive = self.src if pull else self.dst
        if passive.token is not None:
            headers["TransferHeaderAuthorization"] = f"Bearer {passive.token.reveal()}"
        outcome = await stream_copy(
            self.dst if pull else self.src,
            self.dst_path if pull else self.src_path,
            headers,
            self.pair.mode,
            self.params.stall_seconds,
            self.params.min_rate_bytes_per_second,
        )
        self._measure(outcome)
        return outcome.step

    async def _gfal2_copy(self) -> StepOutcome:
        """The same copy through gfal2 (probes/clients/gfalcopy.py), as FTS would send it;
        gfal2 also compares the adler32 of both ends, unless one is `checksums: none` or
        lacks checksums (checksums.engine_compares). min_rate_bytes_per_second does not
        apply."""
        source = CopyEnd(self.pair.source, self.src_path, self.src.token)
        destination = CopyEnd(self.pair.destination, self.dst_path, self.dst.token)
        compare = checksums.engine_compares(self.ctx.state, self.pair.endpoints)
        adler32 = self.expected if compare else None
        try:
            stats = await gfal_copy(
                source, destination, resources=self.ctx.resources,
                deadline=self.step_deadline, mode=self.pair.mode,
                stall_seconds=self.params.stall_seconds, adler32=adler32,
                size=self.params.file_size_bytes,
            )  # fmt: skip
        except CopyError as error:
            if error.reason is Reason.CHECKSUM_MISMATCH:
                self.ctx.state.put(SUSPECT_SOURCES, self.src_key, True)
            return failed(error.reason, error.detail)
        if stats.note:
            checksums.engine_found_none(self.ctx.state, self.pair.endpoints)
        self.measurements[Measurement.TRANSFER_BYTES] = float(stats.transferred)
        self.measurements[Measurement.TRANSFER_THROUGHPUT] = stats.transferred / stats.seconds
        if stats.first_marker is not None:
            self.measurements[Measurement.FIRST_MARKER] = stats.first_marker
        note = f"; {stats.note}" if stats.note else ""
        return passed(f"gfal2 {stats.transfer_type}: {stats.transferred} bytes in "
                      f"{stats.seconds:.3f} s{note}")  # fmt: skip

    def _measure(self, outcome: CopyOutcome) -> None:
        if outcome.first_marker_seconds is not None:
            self.measurements[Measurement.FIRST_MARKER] = outcome.first_marker_seconds
        if outcome.answered:
            moved = outcome.bytes_transferred
            if outcome.step.ok:  # XrdHttp sends no final marker: a success moved the file
                moved = max(moved, self.params.file_size_bytes)
                throughput = moved / max(outcome.seconds, 1e-6)
                self.measurements[Measurement.TRANSFER_THROUGHPUT] = throughput
            self.measurements[Measurement.TRANSFER_BYTES] = float(moved)

    async def verify(self) -> StepOutcome:
        policy = self.pair.destination.checksums
        got = await head_with_digest(self.dst, self.dst_path, digest=policy != "none")
        size, expected_size = got.reply.content_length, self.params.file_size_bytes
        if size is not None and size != expected_size:
            self.ctx.state.put(SUSPECT_SOURCES, self.src_key, True)
            return failed(Reason.SIZE_MISMATCH, f"HEAD: size {size}, source {expected_size}")
        digest = got.adler32
        if digest is None:
            checked = f"size {size} checked" if size is not None else "no size reported"
            return checksums.unavailable(policy, got.missing, checked)
        if digest != self.expected:
            self.ctx.state.put(
                SUSPECT_SOURCES, self.src_key, True
            )  # the next run re-uploads the source
            detail = f"HEAD: adler32 {digest}, source data {self.expected}"
            return failed(Reason.CHECKSUM_MISMATCH, detail)
        return passed(f"adler32 {digest}")

    async def delete(self) -> StepOutcome:
        if not self.copied:
            return StepOutcome(Status.SKIPPED, Reason.NONE, "no copy was attempted")
        if not is_own_file(self.dst_path, self.pair.destination.test_dir):
            return failed(Reason.INTERNAL, "DELETE: refusing a path not our own")
        reply = await self.dst.request("DELETE", self.dst_path, expect=ANY_STATUS)
        self.dst_answered = reply.status in (200, 204, 404)
        if reply.status in (200, 204):  # verified: a DELETE may answer 204 and keep the file
            return await verify_deleted(
                self.dst_path,
                lambda path: http_exists(self.dst, path),
                self.params.sweep_after_seconds,
            )
        if reply.status == 404:
            return passed("DELETE: 404, no copy was left behind")
        return status_failure(reply, Reason.CLEANUP)

    async def sweep(self) -> StepOutcome:
        if not self.dst_answered:
            return StepOutcome(Status.SKIPPED, Reason.NONE, "the destination did not answer")
        destination, every = self.pair.destination, self.params.sweep_after_seconds / 4
        return await sweep_when_due(
            self.ctx.state, str(self.dst.url_of(destination.test_dir)), every,
            lambda: sweep_http(self.dst, destination.test_dir, self.ctx.probe_host, self.params),
            "destination",
        )  # fmt: skip


class HttpTpcProbe:
    """One run = one copy of one PairTarget (one mode). `before_copy` is a test seam: awaited
    after `source` and `mkcol`, just before the COPY is sent (tests remove the source file or
    stop the passive site there, to see what the active side then reports)."""

    def __init__(self, before_copy: BeforeCopy | None = None) -> None:
        self._before_copy = before_copy

    async def __call__(
        self, target: PairTarget, params: HttpTpcParams, ctx: ProbeContext
    ) -> ProbeResult:
        backstop = Timeouts(stall=params.stall_seconds + STALL_BACKSTOP_SECONDS)
        src_timeouts = backstop if target.mode == "push" else None
        dst_timeouts = backstop if target.mode == "pull" else None
        async with (
            HttpClient(target.source, ctx, src_timeouts) as src,
            HttpClient(target.destination, ctx, dst_timeouts) as dst,
        ):
            step_deadline = ctx.step_deadline
            run = _Run(target, params, ctx, src, dst, step_deadline, self._before_copy)
            await run.run()
        return ctx.steps.result(run.measurements)


PROBE_TYPE = ProbeType(
    name="http-tpc",
    description="HTTP third-party copy (WebDAV COPY, pull or push) between two endpoints",
    schemes=frozenset({"davs", "https", "http"}),
    params_model=HttpTpcParams,
    factory=HttpTpcProbe,
    modes=("pull", "push"),
)
