"""Payload buffers reused across runs (probes/core/payloads.py): every lease is new random
bytes; a large buffer given back serves the next lease of its size; and the webdav probe,
with the daemon's resources, reuses one buffer across runs yet uploads and verifies new
content each time against a real XRootD server."""

from __future__ import annotations

import logging

import pytest

from lakeprobe.lake import LocalLake
from lakeprobe.probes.core.payloads import POOLED_MIN, Payloads
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

LOG = logging.getLogger("test.payloads")


def test_small_payloads_are_new_bytes_never_kept() -> None:
    """Below POOLED_MIN: new bytes objects, unpredictable, nothing kept when given back."""
    payloads = Payloads()
    first, second = payloads.take(4096), payloads.take(4096)
    assert isinstance(first, bytes)
    assert len(first) == len(second) == 4096
    assert first != second
    payloads.give(first)
    assert payloads.idle_bytes == 0


def test_a_large_buffer_is_reused_with_new_content() -> None:
    """A buffer given back is the next lease of its size, refilled: same object, new bytes."""
    payloads = Payloads()
    first = payloads.take(POOLED_MIN)
    assert isinstance(first, bytearray)
    before = bytes(first[:4096]), adler32_hex(first)
    payloads.give(first)
    assert payloads.idle_bytes == POOLED_MIN
    again = payloads.take(POOLED_MIN)
    assert again is first
    assert payloads.idle_bytes == 0
    assert (bytes(again[:4096]), adler32_hex(again)) != before


def test_leases_in_flight_never_share_a_buffer() -> None:
    """Two runs at once get two buffers; a buffer is lent to one holder at a time."""
    payloads = Payloads()
    one, two = payloads.take(POOLED_MIN), payloads.take(POOLED_MIN)
    assert one is not two
    payloads.give(one)
    payloads.give(two)
    assert {id(payloads.take(POOLED_MIN)), id(payloads.take(POOLED_MIN))} == {id(one), id(two)}


def test_idle_buffers_are_capped() -> None:
    """Idle buffers beyond `keep_bytes` are dropped, not kept."""
    payloads = Payloads(keep_bytes=POOLED_MIN)
    one, two = payloads.take(POOLED_MIN), payloads.take(POOLED_MIN)
    payloads.give(one)
    payloads.give(two)
    assert payloads.idle_bytes == POOLED_MIN
    assert payloads.take(POOLED_MIN) is one
    assert payloads.take(POOLED_MIN) is not two  # dropped: a new buffer


@pytest.mark.lake
async def test_webdav_runs_reuse_one_buffer_and_verify_new_content(lake: LocalLake) -> None:
    """Two webdav runs of a POOLED_MIN file with one ProbeResources: each run's PUT, HEAD
    (adler32) and GET (byte comparison) pass with different content, and after each run the
    one buffer is idle again."""
    resources = ProbeResources()
    site = lake.sites[0]
    target = Target(site="SITE", endpoint="webdav", url=site.davs_url, test_dir=lake.test_dir,
                    ca_dir=lake.pki.ca_dir)  # fmt: skip
    params = WebdavParams(file_size_bytes=POOLED_MIN)
    checksums = []
    for _ in range(2):
        outcome = await run_probe(PROBE_TYPE, target, params, timeout=60.0, probe_host="h",
                                  log=LOG, resources=resources)  # fmt: skip
        assert outcome.result.success, outcome.result
        head = next(step for step in outcome.result.steps if step.name == "head")
        checksums.append(head.detail)
        assert resources.payloads.idle_bytes == POOLED_MIN
    assert checksums[0] != checksums[1]
    resources.close()
