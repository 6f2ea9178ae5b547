"""The site transfer matrix through the real daemon on a 3-site lake: every ordered pair
copies; stopping a site fails exactly its row and column."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from crash_retry import once_more_if_xrootd_crashed

from daemon_helpers import Samples, pick, running_daemon, scrape, wait_for
from lakeprobe.lake import LocalLake, free_ports

pytestmark = pytest.mark.lake

SERIES = [("http-tpc", "pull"), ("http-tpc", "push"), ("xrootd-tpc", "pull")]


def matrix_config(lake: LocalLake, path: Path) -> Path:
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    config = lake.config_dict(listen, interval=8, timeout=7)
    config["defaults"]["max_concurrent_per_endpoint"] = 6
    config["probes"] = [
        {
            "name": "http-tpc",
            "type": "http-tpc",
            "params": {"modes": ["pull", "push"], "file_size_bytes": 65536},
        },
        {"name": "xrootd-tpc", "type": "xrootd-tpc", "params": {"file_size_bytes": 65536}},
    ]
    path.write_text(yaml.safe_dump(config))
    return path


def matrix(samples: Samples) -> dict[tuple[str, str, str, str], float]:
    """(probe, mode, src, dst) -> success of the last run."""
    cells = {}
    for labels, value in pick(samples, "lakeprobe_transfer_success").items():
        d = dict(labels)
        cells[(d["probe"], d["mode"], d["src_site"], d["dst_site"])] = value
    return cells


async def _full(lake: LocalLake, base: str, expect: dict[tuple[str, str, str, str], float]) -> bool:
    """Whether every cell is as expected; a site whose server crashed ends the wait."""
    crashed = [site.name for site in lake.sites if site.crashed]
    assert not crashed, f"xrootd crashed on {', '.join(crashed)}"
    cells = matrix(await scrape(base))
    return all(cells.get(cell) == value for cell, value in expect.items())


async def test_matrix_row_and_column_of_a_stopped_site(lake3: LocalLake, tmp_path: Path) -> None:
    """All 18 cells (6 pairs x {http pull, http push, xrootd pull}) succeed; after SITE-C
    stops, exactly the 12 cells with SITE-C as source or destination fail, with a bounded
    reason, and the other 6 keep succeeding on later runs.

    XRootD 5.5.3 itself occasionally segfaults (in libssl, seen in the kernel log) while
    its HTTP-TPC handler copies from the stopped site. Only then, every site is started
    again and the test runs once more with a new daemon; a failure with no site crashed is
    never retried (tests/crash_retry.py)."""
    await once_more_if_xrootd_crashed(
        lake3, lambda attempt: _stopped_site(lake3, tmp_path / f"matrix-{attempt}.yaml")
    )


async def _stopped_site(lake3: LocalLake, config_path: Path) -> None:
    sites = [s.name for s in lake3.sites]
    cells = [(p, m, a, b) for p, m in SERIES for a in sites for b in sites if a != b]
    config = matrix_config(lake3, config_path)
    async with running_daemon(config) as (_, base):
        healthy = dict.fromkeys(cells, 1.0)
        await wait_for(lambda: _full(lake3, base, healthy), timeout=60, what="all 18 cells OK")
        samples = await scrape(base)
        assert len(matrix(samples)) == 18
        throughput = pick(samples, "lakeprobe_transfer_throughput_bytes_per_second")
        assert len(throughput) == 18
        assert all(v > 0 for v in throughput.values())

        lake3.site("SITE-C").stop()
        broken = {c: 0.0 if "SITE-C" in c[2:] else 1.0 for c in cells}
        await wait_for(lambda: _full(lake3, base, broken), timeout=60, what="SITE-C row and column")
        samples = await scrape(base)
    reasons = {
        dict(labels)["reason"]
        for labels in pick(samples, "lakeprobe_transfer_reason")
        if "SITE-C" in (dict(labels)["src_site"], dict(labels)["dst_site"])
    }
    assert reasons <= {"connect", "source_missing", "destination_error", "tpc_failure"}, reasons
    failing = pick(samples, "lakeprobe_transfer_consecutive_failures")
    assert all(
        (v >= 1) == ("SITE-C" in (dict(k)["src_site"], dict(k)["dst_site"]))
        for k, v in failing.items()
    )
