"""The `fixity` probe: are the files an endpoint holds still intact?

Per endpoint a few canary files (`sizes`, from zero bytes to a few MiB) are written once, with
their size and adler32 kept in the state store (probes/integrity/canaries.py). Each run reads
a rotating subset fully (`per_run`, plus every canary not verified yet or found bad), computes
adler32 on the client and compares it with the truth (`read`: `canary_lost`,
`size_mismatch`, `canary_corrupted`) and with the server's stored checksum (`checksum`:
`checksum_stale`, XRootD's cached-xattr case; a server without checksums is a capability
note under the endpoint's `checksums` policy). A lost canary is reported once, then
re-created by the next run's `create` step; a corrupted one stays, as evidence, until
someone deletes it. Read-only endpoints verify their `reference_file` instead (against
`reference_adler32`, else against the checksum of its first read), reported lost every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from lakeprobe.probes.common.storage import Storage, StorageError, storage_for
from lakeprobe.probes.core import checksums
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
from lakeprobe.probes.core.paramspec import Check, Doc, Ge, Gt, Le, MaxLen, MinLen
from lakeprobe.probes.core.steps import StepAction, blocks_on_unreachable
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex, payload
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.integrity import canaries as ledgers
from lakeprobe.probes.integrity.canaries import Canary, CanaryState, Ledger

MIB = 1024 * 1024
MAX_CANARY_BYTES = 64 * MIB  # a canary is held in memory while it is checked
_COUNTS = {
    CanaryState.OK: Measurement.FIXITY_CANARIES_OK,
    CanaryState.CORRUPTED: Measurement.FIXITY_CANARIES_CORRUPTED,
    CanaryState.STALE: Measurement.FIXITY_CANARIES_STALE,
    CanaryState.LOST: Measurement.FIXITY_CANARIES_LOST,
    CanaryState.UNVERIFIED: Measurement.FIXITY_CANARIES_UNVERIFIED,
}
# The read step's findings, worst first: the step reports the first present.
_READ_ORDER = (Reason.CANARY_LOST, Reason.SIZE_MISMATCH, Reason.CANARY_CORRUPTED)


def _bounded(sizes: tuple[int, ...]) -> tuple[int, ...]:
    if any(not 0 <= size <= MAX_CANARY_BYTES for size in sizes):
        raise ValueError(f"canary sizes must be 0..{MAX_CANARY_BYTES} bytes: {sizes}")
    return sizes


@dataclass(frozen=True, kw_only=True)
class FixityParams(ProbeParams):
    sizes: Annotated[
        tuple[int, ...], MinLen(1), MaxLen(16), Check(_bounded), Doc("canary sizes, bytes")
    ] = (0, 1024, MIB, 4 * MIB)
    per_run: Annotated[int, Ge(1), Le(16), Doc("canaries verified per run, in rotation")] = 2
    slow_step_seconds: Annotated[float, Gt(0), Doc("a slower step gives WARNING")] = 30.0


@dataclass(slots=True)
class FixityRun:
    target: Target
    params: FixityParams
    ctx: ProbeContext
    ledger: Ledger
    storage: Storage | None = None
    token: Secret | None = None
    data: dict[str, bytes] = field(default_factory=dict)  # this run's reads, by path
    found: dict[str, CanaryState] = field(default_factory=dict)  # this run's verdicts

    @property
    def store(self) -> Storage:
        assert self.storage is not None
        return self.storage

    async def step(
        self,
        name: str,
        action: StepAction,
        blocks: Callable[[StepOutcome], bool] = blocks_on_unreachable,
    ) -> StepOutcome:
        """A step whose StorageError is its outcome; only a dead or refusing endpoint skips
        the steps after it."""

        async def run() -> StepOutcome:
            try:
                return await action()
            except StorageError as error:
                return failed(error.reason, error.outcome.detail)

        return await self.ctx.steps.run(name, run, blocks=blocks)

    async def credential(self) -> StepOutcome:
        (self.token,), outcome = await load_tokens(self.target)
        return outcome

    # --- create: canaries never written, or reported lost by an earlier run -----------
    async def create(self) -> StepOutcome:
        written = []
        for index, canary in enumerate(self.ledger.canaries):
            if _needs_write(canary):
                data = payload(canary.size or 0)
                await self.store.write(canary.path, data, overwrite=True)
                fresh = Canary(canary.path, len(data), adler32_hex(data), time.time())
                self.ledger.canaries[index] = fresh
                written.append(f"{canary.path} ({len(data)} bytes)")
        return passed(f"wrote {', '.join(written)}")

    # --- read: the bytes against the truth ---------------------------------------------
    async def read(self) -> StepOutcome:
        findings: dict[Reason, list[str]] = {}
        chosen = _choose(self.ledger, self.params.per_run)
        for index in chosen:
            reason, note = await self._read_one(index)
            if reason is not Reason.NONE:
                findings.setdefault(reason, []).append(note)
        worst = next((r for r in _READ_ORDER if r in findings), None)
        if worst is not None:
            notes = [note for reason in _READ_ORDER for note in findings.get(reason, [])]
            return failed(worst, "; ".join(notes))
        return passed(f"{len(chosen)} canaries read, bytes intact")

    async def _read_one(self, index: int) -> tuple[Reason, str]:
        canary, now = self.ledger.canaries[index], time.time()
        try:
            stat = await self.store.stat(canary.path)
            limit = max(canary.size or 0, stat.size or 0, 1)
            data = await self.store.read(canary.path, max_bytes=limit)
        except StorageError as error:
            if error.reason is not Reason.NOT_FOUND:
                raise
            self._verdict(index, CanaryState.LOST, now)
            return Reason.CANARY_LOST, f"{canary.path} lost"
        self.data[canary.path] = data
        actual = adler32_hex(data)
        if canary.adler32 is None:  # a reference file without a configured checksum
            canary = self.ledger.canaries[index] = Canary(
                canary.path, len(data), actual, canary.written_at, reference=True
            )
        if canary.size is not None and len(data) != canary.size:
            self._verdict(index, CanaryState.CORRUPTED, now)
            return Reason.SIZE_MISMATCH, f"{canary.path}: {len(data)} bytes, not {canary.size}"
        if actual != canary.adler32:
            self._verdict(index, CanaryState.CORRUPTED, now)
            return Reason.CANARY_CORRUPTED, f"{canary.path}: adler32 {actual}, not {canary.adler32}"
        self._verdict(index, CanaryState.OK, now)
        return Reason.NONE, ""

    def _verdict(self, index: int, state: CanaryState, now: float) -> None:
        canary = self.ledger.canaries[index]
        self.ledger.canaries[index] = canary.checked(state, now)
        self.found[canary.path] = state

    # --- checksum: the server's stored adler32 against the bytes read -----------------
    async def checksum(self) -> StepOutcome:
        policy = self.target.checksums
        if policy == "none":
            return checksums.not_asked()
        stale, missing = [], []
        for path, data in self.data.items():
            server = await self.store.checksum(path)
            if server is None:
                missing.append(path)
            elif server != adler32_hex(data):
                stale.append(f"{path}: server says {server}, the bytes are {adler32_hex(data)}")
                self._stale(path)
        if stale:
            return failed(Reason.CHECKSUM_STALE, "; ".join(stale))
        if missing:
            return checksums.unavailable(policy, f"for {len(missing)} canaries", "bytes checked")
        return passed(f"{len(self.data)} server checksums agree with the bytes")

    def _stale(self, path: str) -> None:
        """Intact bytes under a wrong server checksum: `stale` (worse findings stand)."""
        if self.found.get(path) is CanaryState.OK:
            index = next(i for i, c in enumerate(self.ledger.canaries) if c.path == path)
            self._verdict(index, CanaryState.STALE, time.time())

    def measurements(self) -> dict[Measurement, float]:
        counts = self.ledger.counts()
        numbers = {m: float(counts[state]) for state, m in _COUNTS.items()}
        oldest = self.ledger.oldest_verification()
        if oldest is not None:
            numbers[Measurement.FIXITY_OLDEST_VERIFIED] = oldest
        return numbers

    def labelled(self) -> dict[Measurement, tuple[tuple[str, float], ...]]:
        """Each canary's last verification (its writing, if never), labelled by its index
        and size ("<index>-reference" for a reference file, whose size is learned)."""
        times = tuple(
            (_label(index, c), c.verified_at or c.written_at)
            for index, c in enumerate(self.ledger.canaries)
        )
        return {Measurement.FIXITY_CANARY_VERIFIED: times} if times else {}


def _label(index: int, canary: Canary) -> str:
    return f"{index}-{'reference' if canary.reference else canary.size}"


def _needs_write(canary: Canary) -> bool:
    """Never written, or reported lost by an earlier run: (re-)create it."""
    return not canary.reference and (canary.adler32 is None or canary.state is CanaryState.LOST)


def _choose(ledger: Ledger, per_run: int) -> list[int]:
    """This run's canaries: every one not verified yet or found bad (so its state is always
    this run's), and the next `per_run` of the rest in rotation."""
    count = len(ledger.canaries)
    due = {i for i, c in enumerate(ledger.canaries) if c.state is not CanaryState.OK}
    start = ledger.next_index % count if count else 0
    order = [(start + k) % count for k in range(count)]
    picked = [i for i in order if i not in due][:per_run]
    if picked:
        ledger.next_index = (picked[-1] + 1) % count
    return sorted(due.union(picked))


def _wanted(target: Target, params: FixityParams, probe_host: str, now: float) -> list[Canary]:
    """The canaries this endpoint should have: the configured reference file on a
    read-only endpoint, else one written canary per configured size."""
    if target.read_only:
        if target.reference_file is None:
            return []
        adler32 = target.reference_adler32
        return [Canary(target.reference_file, None, adler32, now, reference=True)]
    return [
        Canary(
            ledgers.canary_path(target.test_dir, probe_host, target.endpoint, index, size),
            size,
            None,
            now,
        )
        for index, size in enumerate(params.sizes)
    ]


class FixityProbe:
    async def __call__(self, target: Target, params: FixityParams, ctx: ProbeContext
                       ) -> ProbeResult:  # fmt: skip
        async with ctx.state.lock(f"fixity:{ledgers.ledger_key(target)}"):
            ledger = ledgers.load(ctx.state, target)
            ledger.canaries = ledgers.reconcile(
                ledger, _wanted(target, params, ctx.probe_host, time.time())
            )
            run = FixityRun(target, params, ctx, ledger)
            try:
                await _steps(run)
            finally:
                ledgers.save(ctx.state, target, run.ledger)
        return ctx.steps.result(run.measurements(), run.labelled())


async def _steps(run: FixityRun) -> None:
    if not run.ledger.canaries:
        detail = "read-only endpoint without a reference_file: nothing to verify"
        run.ctx.steps.abort(Status.UNKNOWN, Reason.NOT_FOUND, detail)
        return
    if run.target.token is not None:
        await run.ctx.steps.run("credential", run.credential)
        if run.ctx.steps.failed:
            return
    async with storage_for(run.target, run.ctx, token=run.token,
                           deadline=run.ctx.step_deadline) as storage:  # fmt: skip
        run.storage = storage
        if any(_needs_write(c) for c in run.ledger.canaries):
            await run.step("create", run.create)
        await run.step("read", run.read)
        if run.data:
            await run.step("checksum", run.checksum, checksums.blocks)


PROBE_TYPE = ProbeType(
    name="fixity",
    description="fixity canaries: written once, read back in rotation, adler32 vs truth and server",
    schemes=frozenset({"root", "roots", "davs", "https", "http"}),
    params_model=FixityParams,
    factory=FixityProbe,
)
