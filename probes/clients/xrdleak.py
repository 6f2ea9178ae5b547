"""Containment of the XRootD 5.5 Python binding's leaks on the callback path.

Read in the binding's source at v5.5.3; fixed upstream by xrootd/xrootd#2324 ("Fix some
memory leaks in python bindings", commit 3a2411e2e, first released in 5.7.1). Every answer to
a call made with `callback=` goes through AsyncResponseHandler::HandleResponseWithHosts, which:

1. creates `PyList_New(0)` for the host list, then overwrites the pointer with the converted
   host list: one empty list per callback, never freed;
2. builds each host's URL object from `Py_BuildValue("(s)", url)` and never frees that
   argument: a 1-tuple and the URL string per host. For File.open the string is the whole
   URL, `?authz=<token>` included: tokens stayed in memory for the life of the daemon;
3. (sync calls too) converts a StatInfo with `{sO...}` of new references: each of its values
   keeps one extra reference.

benchmarks/xrootd_leak.py measures it: 3 pymalloc blocks (~180 bytes) per callback, 4 more
per stat. Containment, done by `release` in the callback, on the XrdCl thread holding the GIL:

- (3) the values are in the dict we receive: drop the one extra reference of each value
  that shows it (its reference count is one more than the dict explains).
- (1, 2) nothing refers to these objects, but they are still in the cyclic GC's youngest
  generation, which CPython keeps in the order objects were tracked: the empty list was
  tracked just before the host list the callback receives, each 1-tuple just after it. The
  host list is found there by identity among the newest young objects; an object next to it
  is released only if it matches exactly (an empty list; a 1-tuple holding a string equal to
  one of the received hosts' URLs) and holds exactly one reference, the leaked one.

The order is what identifies them, so it must hold: nothing else may be tracked between them
and the host list. In that stretch the binding runs C code only, holding the GIL; the one
thing that could run Python code there (finalizers, other threads) is a collection, and a
`gc.callbacks` hook notes every collection by thread. `release` acts only if no collection
ran on its thread since its previous call there, and only when called first thing in a
callback the binding made (no Python frame below the callback): otherwise it frees nothing
and that call's ~180 bytes stay, as before. Measured: of 650 callbacks of 50 xrootd probe
runs none was skipped; a listing of hundreds of entries always is (converting it allocates
enough to start a collection), which the sweep's small test directories never reach.

Enabled only for binding versions that leak (5.5.0-5.7.0) on CPython 3.11-3.13, whose
generational GC keeps generation 0 in tracking order (measured on 3.11; 3.14's incremental
GC is excluded); elsewhere both functions do nothing. A binding patched without a version
change leaves no empty list next to the host list and no StatInfo value with an extra
reference, so nothing matches. tests/test_xrdleak.py counts against a real server.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import re
import sys
import threading
from typing import Any

STATINFO_KEYS = ("id", "size", "flags", "modtime", "modtimestr")
# Host list, its tuples (one per host), a dict per host: the newest young objects to search.
_SEARCH = 64
_ORPHAN_REFS = 3  # sys.getrefcount of an orphan read as young[i]: its leak, `young`, the call
_LEAKING = re.compile(r"v?5\.(5|6)\.\d+|v?5\.7\.0")
# Per thread: did a collection start on it since its last `release`? Thread-local, not a set
# of thread ids: a finished thread's id is reused by the next one, which must start clean.
_collections = threading.local()


def _note_collection(phase: str, _info: dict[str, int]) -> None:
    if phase == "start":
        _collections.since_release = True


SWITCH = "LAKEPROBE_XRD_LEAK_CONTAINMENT"  # "off": leave the binding's leak as it is


@functools.cache
def enabled() -> bool:
    """True for the binding and CPython versions where containment was verified, unless the
    environment variable SWITCH is "off" (the escape hatch if a binding or interpreter
    behaves otherwise than measured: memory then grows as before, nothing else changes)."""
    if os.environ.get(SWITCH, "").lower() == "off":
        return False
    from pyxrootd import client  # type: ignore[import-untyped]

    version = str(client.XrdVersion_cpp()).split("-")[0]
    verified = bool(_LEAKING.fullmatch(version)) and (3, 11) <= sys.version_info[:2] <= (3, 13)
    if verified:
        gc.callbacks.append(_note_collection)
    return verified


def _decref(obj: object) -> None:
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(obj))


def release_statinfo(info: Any) -> None:
    """Drop the extra reference a value of a StatInfo dict the binding returned holds (leak
    3): only a value nothing but the dict and the leak refers to. Shared values (small ints,
    one-character strings) are left: a count too many on them keeps no memory, and a binding
    without the leak (a patched 5.5) leaves no value with that count."""
    if enabled() and isinstance(info, dict):
        for key in STATINFO_KEYS:
            if key in info and sys.getrefcount(info[key]) == _ORPHAN_REFS:  # dict, leak, call
                _decref(info[key])


def _orphans(young: list[Any], at: int, hosts: int, urls: set[str]) -> list[int]:
    """Indexes in `young` of the leaked empty list before `at` and 1-tuples after it."""
    found = []
    # Objects are read as young[i], never bound to a name: the reference counts stay exact.
    before = at - 1
    if before >= 0 and type(young[before]) is list and not young[before]:
        found += [before] if sys.getrefcount(young[before]) == _ORPHAN_REFS else []
    for index in range(at + 1, min(len(young), at + 1 + 3 * hosts + 2)):
        is_str_tuple = type(young[index]) is tuple and len(young[index]) == 1
        if is_str_tuple and type(young[index][0]) is str and young[index][0] in urls:
            found += [index] if sys.getrefcount(young[index]) == _ORPHAN_REFS else []
    return found


def release(hosts: Any) -> int:
    """Free the empty list and URL tuples leaked while `hosts` (the raw host list a callback
    received) was built (leaks 1 and 2). Call it first thing in a callback the binding calls,
    never elsewhere. Returns how many objects were freed."""
    if not enabled() or type(hosts) is not list:
        return 0
    try:
        in_binding_callback = sys._getframe(1).f_back is None  # the callback's caller is C
        if getattr(_collections, "since_release", False) or not in_binding_callback:
            return 0
        return _release(hosts)
    finally:
        _collections.since_release = False  # collections so far no longer matter


def _release(hosts: list[Any]) -> int:
    young = gc.get_objects(generation=0)
    for at in range(len(young) - 1, max(-1, len(young) - 1 - _SEARCH), -1):
        if young[at] is hosts:
            break
    else:
        return 0
    urls = {str(host["url"]) for host in hosts if isinstance(host, dict) and "url" in host}
    found = _orphans(young, at, len(hosts), urls)
    for index in found:
        _decref(young[index])  # `young` now holds the last reference
    young.clear()  # frees them
    return len(found)
