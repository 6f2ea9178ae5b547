"""The tape-recall probe's archive check: a canary written into the tape-class directory,
looked for on tape run after run (its time to tape is the archive lag), then deleted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lakeprobe.probes.common.storage import StorageError, storage_for
from lakeprobe.probes.core.outcome import Measurement, Reason, StepOutcome, failed, passed
from lakeprobe.probes.core.testfiles import new_test_file, payload
from lakeprobe.probes.tape.backends import Locality
from lakeprobe.probes.tape.ledger import Canary
from lakeprobe.probes.tape.verdicts import ON_TAPE, by_limits

if TYPE_CHECKING:
    from lakeprobe.probes.tape.recall import RecallRun


async def archive_check(run: RecallRun) -> StepOutcome:
    canary, now, qos = run.ledger.canary, time.time(), run.qos
    if canary is None:
        return await _write_canary(run, now)
    locality = (await run.tape.locality([canary.path]))[canary.path]
    age = now - canary.written_at
    if locality in ON_TAPE:
        run.measurements[Measurement.TAPE_ARCHIVE_LAG] = age
        run.measurements[Measurement.TAPE_ARCHIVE_PENDING] = 0.0
        await _delete_canary(run, canary)
        return by_limits(
            age, qos.archive_warning, qos.archive_critical, Reason.ARCHIVE_TIMEOUT,
            f"canary on tape {age:.0f} s after it was written; deleted",
        )  # fmt: skip
    if locality is not Locality.DISK or age > qos.abandon_after:
        await _delete_canary(run, canary)
        reason = Reason.ARCHIVE_TIMEOUT if locality is Locality.DISK else Reason.LOCALITY_LOST
        return failed(reason, f"canary {canary.path} {locality} after {age:.0f} s: replaced")
    run.measurements[Measurement.TAPE_ARCHIVE_PENDING] = age
    return by_limits(
        age, qos.archive_warning, qos.archive_critical, Reason.ARCHIVE_TIMEOUT,
        f"canary {canary.path} not on tape after {age:.0f} s",
    )  # fmt: skip


async def _write_canary(run: RecallRun, now: float) -> StepOutcome:
    assert run.qos.archive_dir is not None
    path = new_test_file(run.qos.archive_dir, run.ctx.probe_host)
    data = payload(run.params.canary_bytes)
    async with storage_for(run.target, run.ctx, token=run.token) as storage:
        await storage.write(path, data, overwrite=False)
    run.ledger.canary = Canary(path, now)
    run.measurements[Measurement.TAPE_ARCHIVE_PENDING] = 0.0
    return passed(f"wrote canary {path} ({len(data)} bytes)")


async def _delete_canary(run: RecallRun, canary: Canary) -> None:
    run.ledger.canary = None
    try:
        async with storage_for(run.target, run.ctx, token=run.token) as storage:
            await storage.delete(canary.path)
    except StorageError as error:
        run.ctx.log.info("%s: delete %s: %s", run.target.describe(), canary.path, error)
