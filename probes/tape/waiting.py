"""The tape-recall probe's `wait` mode (`lakeprobe run tape-recall`): one run stages a file,
waits for it within the run's timeout, reads, verifies and releases it. A recall still
pending when the timeout comes is cancelled and released (the CLI leaves nothing pinned)
and, unless already past the endpoint's promise, not judged: UNKNOWN, `timeout`.

On a terminal, a progress line on stderr says how long the recall has been waiting."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, passed
from lakeprobe.probes.tape.backends import Locality

if TYPE_CHECKING:
    from lakeprobe.probes.tape.recall import RecallRun

MARGIN = 1.0  # seconds kept before the step deadline for the last poll's answer


def _left(run: RecallRun) -> float:
    return run.ctx.step_deadline - asyncio.get_running_loop().time() - MARGIN


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()


async def stage_and_wait(run: RecallRun) -> None:
    await run.step("stage", run.stage)
    if run.ledger.request is None and run.ledger.evicted:
        await run.step("offline", lambda: _until_offline(run))
        if run.localities.get(run.ledger.evicted[-1]) is Locality.TAPE:
            await run.step("stage", run.stage)
    if run.ledger.request is None:
        return
    await run.step("poll", lambda: _until_done(run))
    _progress("")
    if run.online is not None:
        await run.step("read", run.read)
        await run.step("release", run.release, cleanup=True)
    elif run.ledger.request is not None:
        request = run.ledger.request
        await run.step("cancel", lambda: _cancel(run), cleanup=True)
        run.ctx.log.info("cancelled %s (request %s)", request.path, request.request_id)


async def _until_offline(run: RecallRun) -> StepOutcome:
    """After our evict: until the file shows offline (XRootD evicts after answering)."""
    path = run.ledger.evicted[-1]
    delay = 0.2
    while _left(run) > 0:
        run.localities.update(await run.tape.locality([path]))
        if run.localities[path] is Locality.TAPE:
            return passed(f"{path} offline")
        await asyncio.sleep(min(delay, max(_left(run), 0.0)))
        delay = min(delay * 2, 5.0)
    return StepOutcome(Status.UNKNOWN, Reason.TIMEOUT, f"{path} still on disk after the evict")


async def _until_done(run: RecallRun) -> StepOutcome:
    outcome = await run.poll()
    while run.ledger.request is not None and run.online is None:
        request, now = run.ledger.request, time.time()
        # Within the 2 s doubling backoff, at most a tenth of the wait so far: a recall time
        # the CLI prints is late by at most ~10 % (or 0.5 s), not by up to its double.
        wait = min(request.next_poll_at - now, max(0.5, 0.1 * request.age(now)))
        if wait > _left(run):
            return _timed_out(run, outcome)
        _progress(f"{request.path}: waiting {request.age(time.time()):.0f} s for the recall")
        await asyncio.sleep(max(wait, 0.0))
        outcome = await run.poll()
    if run.online is not None:
        return StepOutcome(outcome.status, outcome.reason, f"{outcome.detail}; {_timeline(run)}")
    return outcome


def _timed_out(run: RecallRun, pending: StepOutcome) -> StepOutcome:
    if pending.status is not Status.OK:
        return pending  # past the promise: judged as such
    detail = f"{pending.detail}; still pending when the run's timeout came: not judged"
    return StepOutcome(Status.UNKNOWN, Reason.TIMEOUT, detail)


async def _cancel(run: RecallRun) -> StepOutcome:
    request = run.ledger.request
    assert request is not None
    await run.drop(request)
    return passed(f"cancelled and released request {request.request_id}")


def _timeline(run: RecallRun) -> str:
    assert run.online is not None
    request, recall = run.online
    start = request.submitted_at
    marks = [f"submitted {time.strftime('%H:%M:%S', time.localtime(start))}"]
    if request.started_at is not None:
        marks.append(f"started +{request.started_at - start:.1f} s")
    online = recall.finished_at if recall.finished_at is not None else time.time()
    marks.append(f"online +{online - start:.1f} s")
    return ", ".join(marks)
