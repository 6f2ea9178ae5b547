"""The `tape-recall` probe: an endpoint's tape QoS class, checked continuously.

A run never waits for tape (the scheduler slot is held only for a few requests): it polls
the stage request the previous runs left (probes/tape/ledger.py), finishes it when the file
is online (read it whole, verify its adler32, release or evict), and submits the next one;
its archive check writes a canary into the tape-class directory and looks, run after run,
for it on tape. Recall time is the server's completion time when it reports one (Tape REST),
else the poll that saw the file online: polls back off exponentially (2 s doubling, capped
at `poll_max_interval`, 300 s by default as gfal2), so a slow recall is polled rarely.

Steps: credential, connect, locality (every reference file's), poll, read, release, stage,
archive. Limits are the endpoint's `tape:` promises: a recall or archive past the warning
limit is WARNING, past the critical one CRITICAL (`stage_timeout`, `archive_timeout`).
With `wait` (what `lakeprobe run tape-recall` sets) one run stages, waits for the file
within the run's timeout, reads, verifies and releases, and cancels what it started if the
timeout comes first: the CLI leaves nothing pinned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Annotated

from lakeprobe.probes.common.storage import StorageError
from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
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
from lakeprobe.probes.core.paramspec import Doc, Gt, Le
from lakeprobe.probes.core.steps import StepAction, blocks_on_unreachable
from lakeprobe.probes.core.tapeqos import TapeQos
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.tape import ledger as ledgers
from lakeprobe.probes.tape.archive import archive_check
from lakeprobe.probes.tape.backends import (
    FileRecall,
    Locality,
    Recall,
    TapeBackend,
    TapeFault,
    open_backend,
)
from lakeprobe.probes.tape.ledger import Ledger, Request
from lakeprobe.probes.tape.verdicts import (
    LOCALITY_COUNTS,
    by_limits,
    locality_outcome,
    online_at,
    server_time,
)
from lakeprobe.probes.tape.waiting import stage_and_wait

# A run this close before the next poll polls: with the interval near the backoff, the run
# after a stage would otherwise find it due milliseconds later and wait a whole interval.
POLL_EARLY = 0.5


@dataclass(frozen=True, kw_only=True)
class TapeRecallParams(ProbeParams):
    wait: Annotated[bool, Doc("wait in the run for the recall (the CLI does)")] = False
    canary_bytes: Annotated[int, Gt(0), Le(64 * 1024**2), Doc("archive canary")] = 64 * 1024
    slow_step_seconds: Annotated[float, Gt(0), Doc("a slower step gives WARNING")] = 60.0


@dataclass(slots=True)
class RecallRun:
    target: Target
    qos: TapeQos
    params: TapeRecallParams
    ctx: ProbeContext
    ledger: Ledger
    backend: TapeBackend | None = None
    token: Secret | None = None
    localities: dict[str, Locality] = field(default_factory=dict)
    online: tuple[Request, FileRecall] | None = None
    recalled: str | None = None  # the file this run finished recalling
    measurements: dict[Measurement, float] = field(default_factory=dict)

    @property
    def tape(self) -> TapeBackend:
        assert self.backend is not None
        return self.backend

    async def step(self, name: str, action: StepAction, *, cleanup: bool = False) -> StepOutcome:
        """A step whose expected failures (TapeFault, StorageError) are its outcome; only a
        dead or refusing endpoint skips the steps after it."""

        async def run() -> StepOutcome:
            try:
                outcome = await action()
            except TapeFault as fault:
                outcome = failed(fault.reason, fault.detail)
            except StorageError as error:
                outcome = failed(error.reason, error.outcome.detail)
            return self._placed(outcome)

        return await self.ctx.steps.run(name, run, blocks=blocks_on_unreachable, cleanup=cleanup)

    def _placed(self, outcome: StepOutcome) -> StepOutcome:
        """A finding names the tape interface it came from (API URI or endpoint URL)."""
        where = self.backend.where if self.backend is not None else self.target.url
        if outcome.status is Status.OK or where in outcome.detail:
            return outcome
        return replace(outcome, detail=f"{outcome.detail} ({where})")

    async def credential(self) -> StepOutcome:
        (self.token,), outcome = await load_tokens(self.target)
        return outcome

    # --- connect and locality -------------------------------------------------------
    async def connect(self) -> StepOutcome:
        return passed(await self.tape.connect())

    async def locality(self) -> StepOutcome:
        paths = [f.path for f in self.qos.files]
        self.localities = await self.tape.locality(paths)
        for locality, measurement in LOCALITY_COUNTS.items():
            count = sum(1 for value in self.localities.values() if value is locality)
            self.measurements[measurement] = float(count)
        return locality_outcome(self.localities)

    # --- the request in flight ------------------------------------------------------
    async def poll(self) -> StepOutcome:
        request = self.ledger.request
        assert request is not None
        now = time.time()
        if request.age(now) > self.qos.abandon_after:
            await self.drop(request)
            return failed(
                Reason.STAGE_TIMEOUT,
                f"{request.path}: request {request.request_id} abandoned after "
                f"{request.age(now):.0f} s: cancelled and released",
            )
        if now < request.next_poll_at - POLL_EARLY and not self.params.wait:
            return self._pending(request, now, f"next poll in {request.next_poll_at - now:.0f} s")
        answer = await self.tape.poll(request.request_id, [request.path])
        if answer.unexpected_paths or request.path not in answer.files:
            await self.drop(request)
            named = ", ".join(answer.unexpected_paths) or "no path at all"
            return failed(
                Reason.PATH_MISMATCH,
                f"poll of {request.request_id} for {request.path} named {named}: cancelled",
            )
        recall = answer.files[request.path]
        started = recall.started_at or answer.started_at
        if started is not None and request.started_at is None:
            request = replace(request, started_at=started)
        return await self._judge(request, recall, now)

    async def _judge(self, request: Request, recall: FileRecall, now: float) -> StepOutcome:
        if recall.state is Recall.PENDING:
            self.ledger.request = request.polled(now, self.qos.poll_max_interval)
            return self._pending(request, now, "polled")
        if recall.state is Recall.ONLINE:
            self.ledger.request = request
            self.online = (request, recall)
            return self._online(request, recall, now)
        await self.drop(request)
        reason = Reason.LOCALITY_LOST if recall.state is Recall.LOST else Reason.FILE_FAILED
        why = recall.error or recall.state.value
        return failed(reason, f"{request.path}: recall {request.request_id} failed: {why}")

    def _pending(self, request: Request, now: float, note: str) -> StepOutcome:
        age = request.age(now)
        what = f"{request.path} not online after {age:.0f} s (request {request.request_id}; {note})"
        return by_limits(
            age, self.qos.online_warning, self.qos.online_critical, Reason.STAGE_TIMEOUT, what
        )

    def _online(self, request: Request, recall: FileRecall, now: float) -> StepOutcome:
        seconds = online_at(request, recall, now) - request.submitted_at
        self.measurements[Measurement.TAPE_RECALL] = seconds
        started = server_time(request.started_at, request.submitted_at, now)
        if started is not None:
            self.measurements[Measurement.TAPE_QUEUE] = max(started - request.submitted_at, 0.0)
        what = f"{request.path} online {seconds:.1f} s after the stage"
        self.ctx.log.info("%s: recall of %s", self.target.describe(), what)
        return by_limits(
            seconds, self.qos.online_warning, self.qos.online_critical, Reason.STAGE_TIMEOUT, what
        )

    async def drop(self, request: Request) -> None:
        """Forget a request after cancelling it on the server (best effort)."""
        self.ledger.request = None
        try:
            await self.tape.cancel(request.request_id, [request.path])
        except TapeFault as fault:
            self.ctx.log.info("%s: cancel %s: %s", self.target.describe(), request.path, fault)

    # --- a file online: read, verify, release ---------------------------------------
    async def read(self) -> StepOutcome:
        assert self.online is not None
        path = self.online[0].path
        size, adler32 = await self.tape.read_adler32(path)
        expected = next((f.adler32 for f in self.qos.files if f.path == path), None)
        if expected is None:
            return passed(f"{size} bytes read, adler32 {adler32} (none configured to check)")
        if adler32 != expected:
            return failed(
                Reason.CHECKSUM_MISMATCH, f"{path}: adler32 {adler32}, expected {expected}"
            )
        return passed(f"{size} bytes read, adler32 {adler32} verified")

    async def release(self) -> StepOutcome:
        request = self.ledger.request
        assert request is not None
        try:
            if self.tape.can_evict and self.qos.may_evict:
                await self.tape.evict([request.path])
                done = f"evicted {request.path}"
            elif self.tape.can_evict:
                done = f"{request.path} left on disk (may_evict is false)"
            else:
                await self.tape.release(request.request_id, [request.path])
                done = f"released {request.path} (request {request.request_id})"
        except TapeFault as fault:
            return failed(Reason.RELEASE_FAILED, f"{request.path}: {fault.detail}")
        self.ledger.request = None
        self.recalled = request.path
        return passed(done)

    # --- the next request -----------------------------------------------------------
    async def stage(self) -> StepOutcome:
        files = [f.path for f in self.qos.files]
        start = self.ledger.next_file % len(files)
        order = files[start:] + files[:start]
        offline = [p for p in order if self.localities.get(p) is Locality.TAPE]
        if offline:
            path = offline[0]
            submitted = time.time()  # before the request: the server stamps it while handling
            request_id = await self.tape.stage([path])
            first_poll = submitted + ledgers.FIRST_POLL
            self.ledger.request = Request(request_id, path, submitted, 0, first_poll)
            self.ledger.next_file = files.index(path) + 1
            self.ledger.evicted = [p for p in self.ledger.evicted if p != path]
            return passed(f"staged {path}: request {request_id}")
        online = [p for p in order if self.localities.get(p) is Locality.DISK_AND_TAPE]
        evictable = [p for p in online if p != self.recalled]  # that one was just released
        if evictable and self.tape.can_evict and self.qos.may_evict:
            await self.tape.evict([evictable[0]])
            self.ledger.evicted = [*self.ledger.evicted, evictable[0]][-len(files) :]
            return passed(f"evicted {evictable[0]}: staged once it is offline")
        if self.recalled is not None and online == [self.recalled]:
            return passed(f"none offline: {self.recalled} was recalled in this run")
        states = ", ".join(f"{p} {self.localities.get(p, '?')}" for p in files)
        return StepOutcome(
            Status.WARNING, Reason.NO_OFFLINE_FILE, f"no reference file offline: {states}"
        )

    def finish_measurements(self) -> None:
        request, now = self.ledger.request, time.time()
        self.measurements[Measurement.TAPE_OUTSTANDING] = 0.0 if request is None else 1.0
        age = 0.0 if request is None else request.age(now)
        self.measurements[Measurement.TAPE_OLDEST_OUTSTANDING] = age


class TapeRecallProbe:
    async def __call__(
        self, target: Target, params: TapeRecallParams, ctx: ProbeContext
    ) -> ProbeResult:
        qos = target.tape
        if qos is None:
            ctx.steps.abort(Status.UNKNOWN, Reason.INTERNAL, f"{target.describe()}: no tape:")
            return ctx.steps.result()
        async with ctx.state.lock(f"tape:{ledgers.ledger_key(target)}"):
            run = RecallRun(target, qos, params, ctx, ledgers.load(ctx.state, target))
            before = run.ledger.to_json()
            try:
                await _steps(run)
            finally:
                if run.ledger.to_json() != before:  # most runs of a long recall change nothing
                    ledgers.save(ctx.state, target, run.ledger)
            run.finish_measurements()
        return ctx.steps.result(run.measurements)


async def _steps(run: RecallRun) -> None:
    if run.target.token is not None:
        await run.ctx.steps.run("credential", run.credential)
    async with open_backend(run.target, run.ctx, run.token, run.ctx.step_deadline) as backend:
        run.backend = backend
        await run.step("connect", run.connect)
        if run.qos.files:
            await run.step("locality", run.locality)
        await _recall(run)
        if run.qos.archive_dir is not None:
            await run.step("archive", lambda: archive_check(run))


async def _recall(run: RecallRun) -> None:
    if run.ledger.request is not None:
        await run.step("poll", run.poll)
    if run.params.wait and run.ledger.request is None and run.qos.files:
        await stage_and_wait(run)
        return
    if run.online is not None:
        await run.step("read", run.read)
        await run.step("release", run.release, cleanup=True)
    if run.ledger.request is None and run.qos.files:
        await run.step("stage", run.stage)


PROBE_TYPE = ProbeType(
    name="tape-recall",
    description="tape QoS: stage, poll, read and verify, release; archive lag (XRootD, Tape REST)",
    schemes=frozenset({"root", "roots", "https", "davs"}),
    params_model=TapeRecallParams,
    factory=TapeRecallProbe,
    needs="tape",
)
