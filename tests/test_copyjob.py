"""The copy-thread bridge (probes/clients/copyjob.py) with a fake blocking engine: no servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from lakeprobe.probes.clients.copyjob import CopyError, CopyWatch, run_copy
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.threads import BlockingThreads


class FakeEngine:
    """Blocks its copy thread until released, like a copy on a hung endpoint; `cancel()` is
    what gfal2's ctx.cancel() would be (here it only records the call)."""

    def __init__(self, progress: list[int] | None = None) -> None:
        self.release = threading.Event()
        self.cancelled = threading.Event()
        self.progress = progress or []

    def work(self, watch: CopyWatch) -> str:
        for count in self.progress:
            watch.progress(count)
        self.release.wait(10)
        return "done"

    def cancel(self) -> None:
        self.cancelled.set()


@pytest.fixture
def engines() -> Iterator[list[FakeEngine]]:
    """Engines made by a test; all released at teardown, so no thread outlives the test."""
    made: list[FakeEngine] = []
    yield made
    for engine in made:
        engine.release.set()


@pytest.fixture
def threads() -> Iterator[BlockingThreads]:
    """The copy threads a daemon would own; shut down at teardown."""
    pool = BlockingThreads()
    yield pool
    pool.shutdown()


async def settle(threads: BlockingThreads) -> None:
    for _ in range(100):
        if not threads.running:
            return
        await asyncio.sleep(0.02)


async def test_result_and_stats(threads: BlockingThreads, engines: list[FakeEngine]) -> None:
    """The engine's result comes back; progress gives the bytes and the first marker."""
    engine = FakeEngine(progress=[0, 500, 1000])
    engines.append(engine)
    watch = CopyWatch(asyncio.get_running_loop().time() + 5)
    engine.release.set()
    assert await run_copy(threads, lambda: engine.work(watch), watch, stall_seconds=5) == "done"
    stats = watch.stats()
    assert stats.transferred == 1000
    assert stats.first_marker is not None
    assert stats.first_marker < 0.5
    assert 1 <= watch.timeout_seconds() <= 5


async def test_landing_ends_the_transfer(
    threads: BlockingThreads, engines: list[FakeEngine]
) -> None:
    """Seen at the destination (data_landed) while the engine still runs, the transfer ends
    there: its duration is shorter than the engine's, never longer than the copy's wall time.
    A landing reported while the copy is still queued is ignored."""
    engine = FakeEngine(progress=[1000])
    engines.append(engine)
    loop = asyncio.get_running_loop()
    watch = CopyWatch(loop.time() + 5)
    watch.data_landed()  # not started yet: ignored
    assert watch.running_for() is None
    copy = asyncio.ensure_future(run_copy(threads, lambda: engine.work(watch), watch, 5))
    for _ in range(250):  # until the copy thread began
        if watch.running_for() is not None:
            break
        await asyncio.sleep(0.02)
    watch.data_landed()
    started = loop.time()
    await asyncio.sleep(0.3)  # the engine is slower to notice than the destination
    engine.release.set()
    assert await copy == "done"
    wall = loop.time() - started
    seconds = watch.stats().seconds
    assert seconds < 0.3 <= wall
    watch.data_landed()  # the first landing counts
    assert watch.stats().seconds == seconds


async def test_stall_cancels_and_counts_abandoned(
    threads: BlockingThreads, engines: list[FakeEngine]
) -> None:
    """No progress for stall_seconds: CopyError STALL, the engine is told to stop (flag and
    cancel callable), and its thread counts as abandoned until the engine lets go."""
    engine = FakeEngine()
    engines.append(engine)
    watch = CopyWatch(asyncio.get_running_loop().time() + 5)
    with pytest.raises(CopyError) as failure:
        await run_copy(threads, lambda: engine.work(watch), watch, 0.2, engine.cancel)
    assert failure.value.reason is Reason.STALL
    assert watch.cancelled
    assert engine.cancelled.is_set()
    assert threads.abandoned == 1
    engine.release.set()
    await settle(threads)
    assert (threads.running, threads.abandoned) == (0, 0)


async def test_deadline_cancels(threads: BlockingThreads, engines: list[FakeEngine]) -> None:
    """The step deadline (asyncio cancellation) also tells the engine to stop."""
    engine = FakeEngine()
    engines.append(engine)
    watch = CopyWatch(asyncio.get_running_loop().time() + 0.2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await run_copy(threads, lambda: engine.work(watch), watch, 5, engine.cancel)
    assert engine.cancelled.is_set()
    engine.release.set()
    await settle(threads)


async def test_no_free_thread(engines: list[FakeEngine]) -> None:
    """When every copy thread is held by an abandoned copy, a new copy is refused at once
    (UNKNOWN, nothing tested) instead of timing out in the queue."""
    threads = BlockingThreads(size=1)
    engine = FakeEngine()
    engines.append(engine)
    watch = CopyWatch(asyncio.get_running_loop().time() + 5)
    with pytest.raises(CopyError):
        await run_copy(threads, lambda: engine.work(watch), watch, 0.1)
    with pytest.raises(CopyError) as refused:
        await run_copy(
            threads, lambda: "never", CopyWatch(asyncio.get_running_loop().time() + 5), 1
        )
    assert (refused.value.status, refused.value.reason) == (Status.UNKNOWN, Reason.INTERNAL)
    engine.release.set()
    await settle(threads)
    assert threads.abandoned == 0
    threads.shutdown()
