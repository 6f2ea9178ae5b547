"""The tape-recall probe's series (exporter/families.py TAPE_FAMILIES): a recall-time histogram
valid in Prometheus' text format, last-seen gauges kept between the runs that report them,
reference files by locality, and nothing of it on other probe types' targets."""

from __future__ import annotations

import yaml
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import parse_config
from lakeprobe.config.plan import ProbeJob, TargetKey, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import ENDPOINT_ROW, OWN_ROWS, TAPE_FAMILIES
from lakeprobe.exporter.store import HISTOGRAMS, ResultsStore
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status

M = Measurement
TAPE = TargetKey("xrootd", "SITE-T", "tape", "root")
DISK = TargetKey("webdav", "SITE-D", "disk", "davs")
LABELS = {"probe": "xrootd", "site": "SITE-T", "endpoint": "tape", "protocol": "root"}
CONFIG = {
    "sites": [
        {"name": "SITE-T", "endpoints": [{"name": "tape", "url": "root://127.0.0.1:1094"}]},
        {"name": "SITE-D", "endpoints": [{"name": "disk", "url": "davs://127.0.0.1:8443"}]},
    ],
    "probes": [{"name": "xrootd", "type": "xrootd"}, {"name": "webdav", "type": "webdav"}],
}
# The tape row for the xrootd type: the table works whether or not tape-recall is registered.
TABLE = {"xrootd": OWN_ROWS["tape-recall"], "webdav": ENDPOINT_ROW}
BUCKETS = HISTOGRAMS[M.TAPE_RECALL]
RECALL = "lakeprobe_tape_recall_duration_seconds"


def plan() -> list[ProbeJob]:
    jobs = build_plan(parse_config(yaml.safe_dump(CONFIG)))
    assert {job.key for job in jobs} == {TAPE, DISK}
    return jobs


def run(measurements: dict[Measurement, float], started: float = 1000.0) -> ProbeResult:
    return ProbeResult(Status.OK, Reason.NONE, (), 0.5, started, measurements)


def scrape(store: ResultsStore) -> str:
    exposition = Exposition(store, TABLE)
    exposition.set_plan(plan())
    return exposition.render().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed by prometheus_client's own text parser: this fails on invalid exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    data: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **extra: str
) -> float:
    return data[(name, tuple(sorted({**LABELS, **extra}.items())))]


def store_with(*results: ProbeResult) -> ResultsStore:
    store = ResultsStore()
    store.set_targets([TAPE, DISK])
    for result in results:
        store.record(TAPE, result)
    store.record(DISK, run({M.WRITE_BYTES: 10.0}))
    return store


def test_recall_histogram_is_valid_and_cumulative() -> None:
    """Three recalls (4 s, 100 s, 2 days) give cumulative buckets up to +Inf, the sum and the
    count; the parser reads the family back as a histogram with the recall buckets."""
    recalls = (4.0, 100.0, 172800.0)
    text = scrape(store_with(*(run({M.TAPE_RECALL: seconds}) for seconds in recalls)))
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == RECALL]
    assert family.type == "histogram"
    data = samples(text)
    les = [*(repr(float(b)) for b in BUCKETS), "+Inf"]
    counts = [value(data, f"{RECALL}_bucket", le=le) for le in les]
    assert counts == sorted(counts)  # cumulative
    assert value(data, f"{RECALL}_bucket", le="1.0") == 0
    assert value(data, f"{RECALL}_bucket", le="5.0") == 1
    assert value(data, f"{RECALL}_bucket", le="120.0") == 2
    assert value(data, f"{RECALL}_bucket", le="86400.0") == 2
    assert value(data, f"{RECALL}_bucket", le="+Inf") == 3
    assert value(data, f"{RECALL}_count") == 3
    assert value(data, f"{RECALL}_sum") == sum(recalls)


def test_a_bound_is_inclusive() -> None:
    """A recall of exactly 60 s is in the le="60.0" bucket (Prometheus' le: <=)."""
    data = samples(scrape(store_with(run({M.TAPE_RECALL: 60.0}))))
    assert value(data, f"{RECALL}_bucket", le="60.0") == 1
    assert value(data, f"{RECALL}_bucket", le="30.0") == 0


def test_histogram_is_zero_before_the_first_recall() -> None:
    """A tape target without a completed recall exports the histogram at zero, so the first
    recall is an increase rate() sees, and no last-recall gauge yet."""
    data = samples(scrape(store_with(run({M.TAPE_OUTSTANDING: 1.0}))))
    assert value(data, f"{RECALL}_bucket", le="+Inf") == 0
    assert value(data, f"{RECALL}_count") == 0
    assert value(data, f"{RECALL}_sum") == 0
    assert not any(name == "lakeprobe_tape_last_recall_seconds" for name, _ in data)


def test_last_seen_gauges_survive_runs_without_a_recall() -> None:
    """Recall and queue time, and the archive lag, keep their last value through runs that
    report only the outstanding requests; per-run gauges follow the last run."""
    text = scrape(
        store_with(
            run({M.TAPE_RECALL: 900.0, M.TAPE_QUEUE: 30.0, M.TAPE_OUTSTANDING: 0.0}),
            run({M.TAPE_ARCHIVE_LAG: 7200.0, M.TAPE_ARCHIVE_PENDING: 0.0}),
            run({M.TAPE_OUTSTANDING: 2.0, M.TAPE_OLDEST_OUTSTANDING: 45.0}, started=3000.0),
        )
    )
    data = samples(text)
    assert value(data, "lakeprobe_tape_last_recall_seconds") == 900
    assert value(data, "lakeprobe_tape_last_recall_queue_seconds") == 30
    assert value(data, "lakeprobe_tape_archive_lag_seconds") == 7200
    assert value(data, "lakeprobe_tape_outstanding_requests") == 2
    assert value(data, "lakeprobe_tape_oldest_outstanding_seconds") == 45
    assert not any(name == "lakeprobe_tape_archive_pending_seconds" for name, _ in data)
    assert value(data, f"{RECALL}_count") == 1


def test_a_new_recall_replaces_the_last_one() -> None:
    data = samples(scrape(store_with(run({M.TAPE_RECALL: 900.0}), run({M.TAPE_RECALL: 60.0}))))
    assert value(data, "lakeprobe_tape_last_recall_seconds") == 60
    assert value(data, f"{RECALL}_count") == 2


def test_files_by_locality_are_the_last_check() -> None:
    """Counts are labelled by locality; a later check replaces the whole set (a locality
    missing from it is gone), and a run without a check keeps the last one."""
    first = {M.TAPE_FILES_TAPE: 3.0, M.TAPE_FILES_LOST: 1.0}
    second = {M.TAPE_FILES_TAPE: 2.0, M.TAPE_FILES_DISK_AND_TAPE: 1.0}
    data = samples(scrape(store_with(run(first), run(second), run({M.TAPE_OUTSTANDING: 0.0}))))
    files = {
        dict(labels)["locality"]: number
        for (name, labels), number in data.items()
        if name == "lakeprobe_tape_files"
    }
    assert files == {"tape": 2, "disk_and_tape": 1}
    every = [m for m in Measurement if m.name.startswith("TAPE_FILES_")]
    data = samples(scrape(store_with(run(dict.fromkeys(every, 1.0)))))
    localities = {
        dict(labels)["locality"] for name, labels in data if name == "lakeprobe_tape_files"
    }
    assert localities == {"disk", "tape", "disk_and_tape", "lost", "none", "unavailable"}


def test_other_probe_types_export_no_tape_series() -> None:
    """Only the tape row's targets carry tape series; a non-tape target tracks nothing."""
    store = store_with(run({M.TAPE_RECALL: 10.0}))
    text = scrape(store)
    disk_lines = [line for line in text.splitlines() if "SITE-D" in line]
    assert disk_lines
    assert not [line for line in disk_lines if line.startswith("lakeprobe_tape_")]
    state = store.get(DISK)
    assert state is not None
    assert (state.kept, state.histograms) == (None, None)


def test_tape_family_names_carry_units() -> None:
    """Names end in a unit or count what they say (the histogram's suffixes are added on
    rendering)."""
    for family in TAPE_FAMILIES:
        assert family.name.startswith("lakeprobe_tape_")
        assert family.name.endswith(("_seconds", "_requests", "_files")), family.name
