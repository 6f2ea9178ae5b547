"""The local lake's network layer: real iperf3 servers (lakeprobe/lake/iperf3.py, started by
LocalLake) and a perfSONAR archive DOUBLE (lakeprobe/lake/psarchive.py) that stands for every
site's archive, since OpenSearch cannot be installed here.

The double holds synthetic perfSONAR results, not measurements: `feed_archive` writes, for
every ordered pair of the lake's perfSONAR sites and both IP versions, a throughput, a
latencybg and a trace document in the real schema, between node names that exist only in
those documents (`ps-bw.<site>.lake.invalid`, never resolved). The perfsonar probe reads
them as it would a site's archive; iperf3 measures loopback for real.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import Any

from lakeprobe.lake.psarchive import PsArchiveDouble

IP_VERSIONS = (4, 6)
# Synthetic but plausible: 10 Gbit/s paths, a few ms apart, per pair a little different.
_BASE_BPS = 9.0e9
_BASE_LATENCY = 0.004


def perfsonar_hosts(site: str) -> tuple[str, str]:
    """The site's bandwidth and latency node names, as the archive's documents name them."""
    domain = f"{site.lower()}.lake.invalid"
    return f"ps-bw.{domain}", f"ps-lat.{domain}"


def feed_archive(archive: PsArchiveDouble, sites: Sequence[str], at: float | None = None) -> int:
    """Fresh results for every ordered pair of `sites` and both IP versions, dated `at` (now);
    the number of documents added. Values depend only on the pair: stable across feeds."""
    when = time.time() if at is None else at
    added = 0
    for src in sites:
        for dst in sites:
            if src == dst:
                continue
            spread = zlib.crc32(f"{src}->{dst}".encode()) % 100 / 100  # 0.00 .. 0.99
            (src_bw, src_lat), (dst_bw, dst_lat) = perfsonar_hosts(src), perfsonar_hosts(dst)
            for version in IP_VERSIONS:
                archive.add_throughput(src_bw, dst_bw, at=when, ip_version=version,
                                       bps=_BASE_BPS * (1 - spread / 10),
                                       retransmits=int(spread * 20))  # fmt: skip
                archive.add_latency(src_lat, dst_lat, at=when, ip_version=version,
                                    median_seconds=_BASE_LATENCY * (1 + spread))  # fmt: skip
                archive.add_trace(src_lat, dst_lat, at=when, ip_version=version,
                                  hops=5 + int(spread * 5))  # fmt: skip
                added += 3
    return added


def network_endpoints(
    archive: PsArchiveDouble | None, iperf3_url: str | None, site: str
) -> list[dict[str, Any]]:
    """The site's network endpoints in a lakeprobe config: its perfSONAR archive (the
    double) and its iperf3 server, where the lake runs them."""
    endpoints: list[dict[str, Any]] = []
    if archive is not None:
        bandwidth, latency = perfsonar_hosts(site)
        endpoints.append(
            {
                "name": "perfsonar",
                "url": archive.url,
                "perfsonar": {"bandwidth_hosts": [bandwidth], "latency_hosts": [latency]},
            }
        )
    if iperf3_url is not None:
        endpoints.append({"name": "iperf3", "url": iperf3_url})
    return endpoints


# The network probes' pace: iperf3 fills loopback for `seconds` per pair and IP version.
IPERF3_INTERVAL = 300.0
IPERF3_SECONDS = 1
PERFSONAR_INTERVAL = 300.0


def network_probes(
    interval: float, timeout: float, perfsonar: bool, iperf3: bool, iperf3_ipv6: bool
) -> list[dict[str, Any]]:
    """The perfsonar and iperf3 probes for the lake's network endpoints."""
    probes: list[dict[str, Any]] = []
    if perfsonar:
        every = min(interval, PERFSONAR_INTERVAL)
        probes.append({"name": "perfsonar", "type": "perfsonar", "interval": every,
                       "timeout": min(timeout, every)})  # fmt: skip
    if iperf3:
        every = min(interval * 4, IPERF3_INTERVAL)
        probes.append(
            {
                "name": "iperf3",
                "type": "iperf3",
                "interval": every,
                "timeout": min(every, max(timeout, 4 * IPERF3_SECONDS + 6)),
                "params": {
                    "seconds": IPERF3_SECONDS,
                    "modes": ["ipv4", "ipv6"] if iperf3_ipv6 else ["ipv4"],
                },
            }
        )
    return probes
