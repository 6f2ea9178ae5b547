"""The probes' adler32 (zlib-ng) gives the values of the reference implementation, the
standard library's zlib, whole and in chunks: every verdict on a server's checksum rests on it."""

from __future__ import annotations

import itertools
import zlib

from hypothesis import given
from hypothesis import strategies as st

from lakeprobe.probes.core.testfiles import Adler32, adler32_hex, source_adler32, source_blocks


def _reference(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


@given(st.binary(max_size=20_000), st.lists(st.integers(0, 20_000), max_size=6))
def test_whole_and_chunked_match_zlib(data: bytes, cuts: list[int]) -> None:
    expected = _reference(data)
    assert adler32_hex(data) == expected
    assert adler32_hex(bytearray(data)) == expected
    checksum = Adler32()
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(bounds):
        checksum.update(memoryview(data)[start:end])
    assert checksum.hex() == expected


def test_large_data_past_the_modulus_and_known_values() -> None:
    # Long runs of 0xff push both sums past 65521 many times: the SIMD paths' reductions.
    data = b"\xff" * (3 * 1024 * 1024 + 17)
    assert adler32_hex(data) == _reference(data)
    assert adler32_hex(b"") == "00000001"
    assert adler32_hex(b"Wikipedia") == "11e60398"  # the algorithm's textbook example


def test_source_file_checksum_matches_its_bytes() -> None:
    size = 5 * 1024 * 1024 + 3
    assert source_adler32(size) == _reference(b"".join(source_blocks(size)))
