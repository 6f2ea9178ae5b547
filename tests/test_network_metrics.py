"""The network probes' series (exporter/families.py NETWORK_FAMILIES): per site pair and IP
version, labelled probe, src_site, dst_site, ip_version; each measurement only when the last
run measured it, so a stale pair exports no throughput; valid for prometheus_client's parser."""

from __future__ import annotations

import yaml
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import parse_config
from lakeprobe.config.pairs import NetworkKey
from lakeprobe.config.plan import ProbeJob, SeriesKey, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import FAMILIES_BY_PROBE_TYPE, NETWORK_FAMILIES, NETWORK_ROW
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status

M = Measurement
IPERF_4 = NetworkKey("bw", "A", "B", "4")
IPERF_6 = NetworkKey("bw", "A", "B", "6")
CONFIG = {
    "sites": [
        {"name": name, "endpoints": [{"name": "iperf", "url": f"iperf3://127.0.0.1:{port}"}]}
        for name, port in (("A", 5201), ("B", 5202))
    ],
    "probes": [{"name": "bw", "type": "iperf3", "targets": {"pairs": ["A->B"]}}],
}
THROUGHPUT = "lakeprobe_network_throughput_bits_per_second"
MEASURED = {
    M.NETWORK_THROUGHPUT: 9.4e9,
    M.NETWORK_RETRANSMITS: 12.0,
    M.NETWORK_LOSS: 0.0005,
    M.NETWORK_LATENCY: 0.0123,
    M.NETWORK_HOPS: 7.0,
    M.NETWORK_MEASURED_AT: 1_700_000_000.0,
}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def plan() -> list[ProbeJob]:
    jobs = build_plan(parse_config(yaml.safe_dump(CONFIG)))
    assert {job.key for job in jobs} == {IPERF_4, IPERF_6}
    return jobs


def result(
    status: Status, reason: Reason, measurements: dict[Measurement, float] | None = None
) -> ProbeResult:
    return ProbeResult(status, reason, (), 5.2, 1_700_000_100.0, measurements or {})


def scrape(*records: tuple[SeriesKey, ProbeResult]) -> Samples:
    """(sample name, sorted labels) -> value, through the real store and exposition, parsed
    by prometheus_client's own parser (which fails on an invalid exposition)."""
    jobs = plan()
    store = ResultsStore()
    store.set_targets([job.key for job in jobs], {job.key.job_id: job.interval for job in jobs})
    for key, recorded in records:
        store.record(key, recorded)
    exposition = Exposition(store, FAMILIES_BY_PROBE_TYPE)
    exposition.set_plan(jobs)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition.render().decode())
        for s in family.samples
        if s.name.startswith("lakeprobe_network_")
    }


def labels(key: NetworkKey, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**key.labels(), **extra}.items()))


def test_both_network_types_export_the_network_row() -> None:
    """perfsonar and iperf3 export the network families, and no transfer or probe ones."""
    assert FAMILIES_BY_PROBE_TYPE["perfsonar"] is NETWORK_ROW
    assert FAMILIES_BY_PROBE_TYPE["iperf3"] is NETWORK_ROW
    assert all(f.name.startswith("lakeprobe_network_") for f in NETWORK_FAMILIES)


def test_a_measured_pair_exports_every_number_with_its_labels() -> None:
    """An OK run with every measurement: each network family once, labelled by the pair and
    the bare IP version; the other IP version, not yet run, has only its interval."""
    found = scrape((IPERF_4, result(Status.OK, Reason.NONE, MEASURED)))
    assert labels(IPERF_4) == (
        ("dst_site", "B"), ("ip_version", "4"), ("probe", "bw"), ("src_site", "A"),
    )  # fmt: skip
    for measurement, value in MEASURED.items():
        assert found[(f"lakeprobe_{measurement.value}", labels(IPERF_4))] == value
    assert found[("lakeprobe_network_status", labels(IPERF_4))] == 0.0
    assert found[("lakeprobe_network_duration_seconds", labels(IPERF_4))] == 5.2
    assert found[("lakeprobe_network_last_run_timestamp_seconds", labels(IPERF_4))] == 1.7000001e9
    assert found[("lakeprobe_network_consecutive_failures", labels(IPERF_4))] == 0.0
    assert found[("lakeprobe_network_reason", labels(IPERF_4, reason="none"))] == 1.0
    six = {name for name, sample_labels in found if sample_labels == labels(IPERF_6)}
    assert six == {"lakeprobe_network_interval_seconds", "lakeprobe_network_consecutive_failures"}


def test_a_stale_pair_exports_no_throughput() -> None:
    """A pair measured once, then stale: WARNING measurement_stale, no throughput (neither
    zero nor the older value), no measurement age; the status and reason say why."""
    stale = result(Status.WARNING, Reason.MEASUREMENT_STALE)
    found = scrape((IPERF_4, result(Status.OK, Reason.NONE, MEASURED)), (IPERF_4, stale))
    assert not [name for name, _ in found if name.removeprefix("lakeprobe_") in MEASURED]
    assert found[("lakeprobe_network_status", labels(IPERF_4))] == 1.0
    assert found[("lakeprobe_network_reason", labels(IPERF_4, reason="measurement_stale"))] == 1.0


def test_only_what_was_measured_is_exported() -> None:
    """An iperf3-like run (throughput and retransmits only) exports those two numbers and no
    latency, loss or hops."""
    partial = {M.NETWORK_THROUGHPUT: 1.5e9, M.NETWORK_RETRANSMITS: 0.0}
    found = scrape((IPERF_6, result(Status.OK, Reason.NONE, partial)))
    numbers = {
        name: value
        for (name, sample_labels), value in found.items()
        if name.removeprefix("lakeprobe_") in MEASURED
    }
    assert numbers == {THROUGHPUT: 1.5e9, "lakeprobe_network_retransmits": 0.0}
    assert (THROUGHPUT, labels(IPERF_6)) in found
