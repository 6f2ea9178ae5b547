"""The XRootD 5.5 binding's callback leaks are contained (probes/clients/xrdleak.py): counted
with the garbage collector and pymalloc, never timed."""

from __future__ import annotations

import _thread
import asyncio
import collections
import ctypes
import gc
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lakeprobe.lake import LocalLake
from lakeprobe.probes.clients import xrdleak
from lakeprobe.probes.clients.xrdasync import XrdFileSystem, download, raw_client, upload

CALLS = 200
DATA = b"leak" * 256


def lists_and_blocks() -> tuple[int, int]:
    gc.collect()
    lists = collections.Counter(type(obj) for obj in gc.get_objects())[list]
    return lists, sys.getallocatedblocks()


def growth(step: Callable[[int], Awaitable[Any]]) -> tuple[int, float]:
    """(lists, pymalloc blocks per call) left after CALLS calls, after a few warm-up calls."""

    async def calls(first: int, count: int) -> None:
        for i in range(first, first + count):
            await step(i)

    asyncio.run(calls(-5, 5))
    lists, blocks = lists_and_blocks()
    asyncio.run(calls(0, CALLS))
    after_lists, after_blocks = lists_and_blocks()
    return after_lists - lists, (after_blocks - blocks) / CALLS


needs_leaky_binding = pytest.mark.skipif(
    not xrdleak.enabled(), reason="binding without the 5.5 callback leak"
)


@needs_leaky_binding
def test_release_outside_a_binding_callback_frees_nothing() -> None:
    """Called from ordinary Python code (here, a test function), release frees nothing, even
    objects shaped and placed like the leaked ones: only the binding's callbacks qualify."""
    url = "root://127.0.0.1:1094//lakeprobe/x?authz=not-a-token"
    held_list: list[Any] = []
    hosts = [{"url": url}]
    held_tuple = (url,)
    counts = sys.getrefcount(held_list), sys.getrefcount(held_tuple)
    assert xrdleak.release(hosts) == 0
    assert (sys.getrefcount(held_list), sys.getrefcount(held_tuple)) == counts


def orphan_then_hosts(collect: bool, answer: list[tuple[int, int]], done: threading.Event
                      ) -> None:  # fmt: skip
    """Run as a binding's callback runs (`in_bare_thread`): an empty list left with one
    reference nobody holds (as the binding leaves it), then a host list, `gc.collect()`
    between them if `collect`; answers (orphan id, objects released)."""
    incref = ctypes.pythonapi.Py_IncRef  # looked up first: its first lookup tracks objects
    orphan: list[Any] = []
    incref(ctypes.py_object(orphan))  # the reference the binding leaks
    orphan_id = id(orphan)
    del orphan
    if collect:
        gc.collect()
    hosts: list[Any] = []
    answer.append((orphan_id, xrdleak.release(hosts)))
    done.set()


def in_bare_thread(collect: bool) -> tuple[int, int]:
    """orphan_then_hosts on a thread with no Python frame below it, as XrdCl's threads."""
    answer: list[tuple[int, int]] = []
    done = threading.Event()
    _thread.start_new_thread(orphan_then_hosts, (collect, answer, done))
    assert done.wait(10)
    return answer[0]


@needs_leaky_binding
def test_release_frees_the_orphan_tracked_before_the_host_list() -> None:
    """In a callback, the empty orphan tracked just before the host list is freed."""
    orphan_id, released = in_bare_thread(collect=False)
    assert released == 1
    assert orphan_id not in {id(obj) for obj in gc.get_objects()}


@needs_leaky_binding
def test_a_collection_on_a_finished_thread_does_not_bind_the_next() -> None:
    """A thread that collected and ended without a release (a worker thread) leaves nothing
    behind: the next thread, which often gets the same thread id, releases as usual."""
    done = threading.Event()

    def collect_and_end() -> None:
        gc.collect()
        done.set()

    _thread.start_new_thread(collect_and_end, ())
    assert done.wait(10)
    _orphan_id, released = in_bare_thread(collect=False)
    assert released == 1


@needs_leaky_binding
def test_release_after_a_collection_frees_nothing() -> None:
    """A collection between the orphan and the host list (order no longer proves anything):
    nothing is freed, the orphan stays leaked as without containment."""
    orphan_id, released = in_bare_thread(collect=True)
    assert released == 0
    assert orphan_id in {id(obj) for obj in gc.get_objects()}


@pytest.mark.lake
@needs_leaky_binding
def test_raw_binding_leaks_one_list_per_callback(lake: LocalLake) -> None:
    """The leak being contained is there: a callback call of the bare binding leaves one empty
    list (if this fails, the binding was fixed and xrdleak.enabled must exclude it)."""
    fs = raw_client().FileSystem(lake.sites[0].root_url)

    async def ping(_i: int) -> None:
        done = threading.Event()
        assert fs.ping(timeout=5, callback=lambda *_: done.set())["ok"]
        assert await asyncio.to_thread(done.wait, 5)

    lists, _blocks = growth(ping)
    assert lists >= CALLS


@pytest.mark.lake
@needs_leaky_binding
def test_callback_calls_leave_nothing(lake: LocalLake) -> None:
    """CALLS stats, checksums, listings, uploads and downloads through xrdasync leave at most a
    few lists behind (not one per call) and well under one pymalloc block per call (the bare
    binding: 3 per callback, 7 per stat)."""
    url = lake.sites[0].root_url
    fs = XrdFileSystem(url)
    path = f"{LocalLake.test_dir}/leak-reference"
    lake.sites[0].put_file(path, DATA)

    async def run(i: int) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        await fs.ping(deadline)
        assert (await fs.stat(path, deadline)).size == len(DATA)
        assert (await fs.checksum(path, deadline))[0] == "adler32"
        assert "leak-reference" in await fs.dirlist(LocalLake.test_dir, deadline)
        name = f"{LocalLake.test_dir}/leak-{i}"
        await upload(f"{url}/{name}", DATA, deadline, overwrite=True)
        assert await download(f"{url}/{path}", len(DATA), deadline) == DATA

    lists, blocks_per_call = growth(run)
    assert lists <= 5
    assert blocks_per_call < 1  # 11 callbacks and one stat a call: 40 blocks when leaking


def test_the_switch_turns_containment_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """LAKEPROBE_XRD_LEAK_CONTAINMENT=off: nothing is ever released (the escape hatch)."""
    monkeypatch.setenv(xrdleak.SWITCH, "off")
    xrdleak.enabled.cache_clear()
    try:
        assert not xrdleak.enabled()
        assert xrdleak.release([]) == 0
    finally:
        monkeypatch.delenv(xrdleak.SWITCH)
        xrdleak.enabled.cache_clear()
