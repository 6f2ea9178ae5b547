"""Test-file payloads: new unpredictable bytes for every run, in buffers reused across runs.

A large PUT sent from a newly allocated object ran at 0.3-0.5x of curl's rate on the same
endpoint, the same PUT from a buffer that had been sent before, refilled with new random
bytes, at curl's rate (benchmarks/RESULTS.md, "Reused payload buffers"; reading either with
adler32 is equally fast: the cost is in sending freshly mapped memory). So payloads of
POOLED_MIN bytes and more are leased from the process's Payloads (ProbeResources) and given
back when the run is over; smaller ones are new bytes each time, which costs nothing
measurable. The content is always new: a server or a cache in between never sees the same
bytes twice.

Only code on the event loop may lease a buffer: a buffer given back is refilled by the next
lease, so nothing may still be reading it (a worker thread abandoned at a timeout could).
"""

from __future__ import annotations

import ssl

from lakeprobe.probes.core.testfiles import payload

Payload = bytes | bytearray
POOLED_MIN = 16 * 1024 * 1024  # below this a payload is new bytes, not a pooled buffer
KEEP_BYTES = 2 * 1024 * 1024 * 1024  # idle buffers kept for reuse, in all
_FILL_CHUNK = 1024 * 1024


class Payloads:
    """Idle buffers by size. Not thread-safe: the event loop's only."""

    def __init__(self, keep_bytes: int = KEEP_BYTES) -> None:
        self._keep_bytes = keep_bytes
        self._idle: dict[int, list[bytearray]] = {}
        self._kept = 0

    def take(self, size: int) -> Payload:
        """`size` new unpredictable bytes: an idle buffer of that size refilled, or a new
        one; new bytes below POOLED_MIN."""
        if size < POOLED_MIN:
            return payload(size)
        idle = self._idle.get(size)
        if idle:
            buffer = idle.pop()
            self._kept -= size
        else:
            buffer = bytearray(size)
        _refill(buffer)
        return buffer

    def give(self, data: Payload | None) -> None:
        """A leased buffer back, kept for the next lease of its size while the idle buffers
        stay within `keep_bytes` (else left to the garbage collector)."""
        if not isinstance(data, bytearray) or len(data) < POOLED_MIN:
            return
        if self._kept + len(data) > self._keep_bytes:
            return
        self._idle.setdefault(len(data), []).append(data)
        self._kept += len(data)

    @property
    def idle_bytes(self) -> int:
        return self._kept


def _refill(buffer: bytearray) -> None:
    """New random bytes from OpenSSL's DRBG, a chunk at a time (RAND_bytes makes new
    objects only: this copies each chunk in, ~0.1 s a GiB on top of generating it)."""
    view = memoryview(buffer)
    for start in range(0, len(buffer), _FILL_CHUNK):
        view[start : start + _FILL_CHUNK] = ssl.RAND_bytes(min(_FILL_CHUNK, len(buffer) - start))
