"""The results store and its exposition: series per target, counters, removal on reload, and
the families each probe type exports, from the one table (exporter/families.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config import parse_config
from lakeprobe.config.plan import ProbeJob, TargetKey, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.families import (
    ENDPOINT_FAMILIES,
    ENDPOINT_ROW,
    FAMILIES_BY_PROBE_TYPE,
    OWN_ROWS,
    PAIR_ROW,
    Family,
    Row,
)
from lakeprobe.exporter.store import ResultsStore, TargetState
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.registry import ENDPOINT_PROBE_TYPES, PAIR_PROBE_TYPES, PROBE_TYPES

KEY_A = TargetKey("xrootd", "SITE-A", "xrootd", "root")
KEY_B = TargetKey("webdav", "SITE-B", "webdav", "davs")
CONFIG = {
    "sites": [
        {"name": "SITE-A", "endpoints": [{"name": "xrootd", "url": "root://127.0.0.1:1094"}]},
        {"name": "SITE-B", "endpoints": [{"name": "webdav", "url": "davs://127.0.0.1:8443"}]},
    ],
    "probes": [{"name": "xrootd", "type": "xrootd"}, {"name": "webdav", "type": "webdav"}],
}
# A family only some probe types export, as a tape or integrity family would.
EXTRA: Family[TargetState] = Family(
    "lakeprobe_probe_extra", "gauge", "A test family", lambda state: ((None, 7.0),)
)


def plan() -> list[ProbeJob]:
    """The jobs of KEY_A (type xrootd) and KEY_B (type webdav)."""
    jobs = build_plan(parse_config(yaml.safe_dump(CONFIG)))
    assert [job.key for job in jobs] == [KEY_A, KEY_B]
    return jobs


def result(status: Status, reason: Reason = Reason.NONE, started: float = 1000.0) -> ProbeResult:
    steps = (
        StepResult("ping", status, 0.5, reason, "detail text"),
        StepResult("write", Status.SKIPPED if status is Status.CRITICAL else Status.OK, 0.25),
    )
    return ProbeResult(status, reason, steps, 1.5, started, {Measurement.WRITE_BYTES: 1024.0})


def samples(store: ResultsStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    exposition = Exposition(store)
    exposition.set_plan(plan())
    return parse(exposition.render().decode())


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    data: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    key: TargetKey,
    **extra: str,
) -> float:
    labels = {
        "probe": key.probe,
        "site": key.site,
        "endpoint": key.endpoint,
        "protocol": key.protocol,
        **extra,
    }
    return data[(name, tuple(sorted(labels.items())))]


def test_results_become_series() -> None:
    """Success, status, reason, counters, steps and measurements are exported per target."""
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B])
    store.record(KEY_A, result(Status.OK))
    store.record(KEY_A, result(Status.CRITICAL, Reason.CONNECT, started=2000.0))
    store.record(KEY_A, result(Status.CRITICAL, Reason.CONNECT, started=3000.0))
    data = samples(store)
    assert value(data, "lakeprobe_probe_success", KEY_A) == 0
    assert value(data, "lakeprobe_probe_status", KEY_A) == 2
    assert value(data, "lakeprobe_probe_reason", KEY_A, reason="connect") == 1
    assert value(data, "lakeprobe_probe_consecutive_failures", KEY_A) == 2
    assert value(data, "lakeprobe_probe_runs_total", KEY_A, status="critical") == 2
    assert value(data, "lakeprobe_probe_runs_total", KEY_A, status="ok") == 1
    assert value(data, "lakeprobe_probe_failures_total", KEY_A, reason="connect") == 2
    assert value(data, "lakeprobe_probe_last_run_timestamp_seconds", KEY_A) == 3000.0
    assert value(data, "lakeprobe_probe_last_success_timestamp_seconds", KEY_A) == 1001.5
    assert value(data, "lakeprobe_probe_step_success", KEY_A, step="ping") == 0
    assert value(data, "lakeprobe_probe_step_status", KEY_A, step="write") == 4  # skipped
    skipped_success = [
        labels
        for name, labels in data
        if name == "lakeprobe_probe_step_success" and ("step", "write") in labels
    ]
    assert skipped_success == []  # a skipped step has no success value
    assert value(data, "lakeprobe_probe_write_bytes", KEY_A) == 1024
    # A configured target that has not run yet shows counters but no status.
    assert value(data, "lakeprobe_probe_runs_total", KEY_B, status="ok") == 0
    assert not any(
        name == "lakeprobe_probe_status" and ("site", "SITE-B") in labels for name, labels in data
    )


def test_success_resets_consecutive_failures() -> None:
    store = ResultsStore()
    store.set_targets([KEY_A])
    store.record(KEY_A, result(Status.CRITICAL, Reason.TIMEOUT))
    store.record(KEY_A, result(Status.WARNING, Reason.SLOW))
    data = samples(store)
    assert value(data, "lakeprobe_probe_consecutive_failures", KEY_A) == 0
    assert value(data, "lakeprobe_probe_success", KEY_A) == 1


def test_removed_target_series_disappear_and_late_results_are_dropped() -> None:
    """After a reload drops a target, its series vanish and an in-flight result is ignored."""
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B])
    store.record(KEY_B, result(Status.OK))
    store.set_targets([KEY_A])
    assert not store.record(KEY_B, result(Status.OK))
    assert not any(("site", "SITE-B") in labels for _, labels in samples(store))


def test_surviving_targets_keep_their_counters() -> None:
    store = ResultsStore()
    store.set_targets([KEY_A])
    store.record(KEY_A, result(Status.OK))
    store.set_targets([KEY_A, KEY_B])
    assert value(samples(store), "lakeprobe_probe_runs_total", KEY_A, status="ok") == 1


def test_free_text_never_becomes_a_label() -> None:
    """Step detail text is not exported."""
    store = ResultsStore()
    store.set_targets([KEY_A])
    store.record(KEY_A, result(Status.CRITICAL, Reason.CONNECT))
    assert not any("detail text" in str(labels) for _, labels in samples(store))


def test_every_probe_type_has_the_row_of_its_kind() -> None:
    """The table has a row per registered probe type: endpoint types export the endpoint
    families, pair types the pair families (the network types the network families), and
    all the token expiry."""
    assert set(FAMILIES_BY_PROBE_TYPE) == set(PROBE_TYPES)
    for name in ENDPOINT_PROBE_TYPES:
        assert FAMILIES_BY_PROBE_TYPE[name] is OWN_ROWS.get(name, ENDPOINT_ROW)
    for name in PAIR_PROBE_TYPES:
        assert FAMILIES_BY_PROBE_TYPE[name] is OWN_ROWS.get(name, PAIR_ROW)
    assert ENDPOINT_ROW.tokens == PAIR_ROW.tokens != ()


def test_families_follow_the_probe_type_row() -> None:
    """A row of its own adds a family to its probe type's targets only; families two rows
    share keep one HELP/TYPE header with both targets' series; a target the plan does not
    list is not exported."""
    table = {"xrootd": ENDPOINT_ROW, "webdav": Row((*ENDPOINT_FAMILIES, EXTRA))}
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B, TargetKey("other", "SITE-C", "x", "root")])
    exposition = Exposition(store, table)
    exposition.set_plan(plan())
    text = exposition.render().decode()
    data = parse(text)
    assert value(data, "lakeprobe_probe_extra", KEY_B) == 7
    assert [n for n, labels in data if n == "lakeprobe_probe_extra"] == ["lakeprobe_probe_extra"]
    assert text.count("# HELP lakeprobe_probe_consecutive_failures ") == 1
    assert text.count("lakeprobe_probe_runs_total{") == 8  # two targets, four statuses
    assert "SITE-C" not in text


def test_a_changed_probe_type_rerenders_the_cached_text() -> None:
    """A reload that gives a configured name another probe type (same series key) exports
    the new type's families at once, though the target has no new result."""
    table = {**FAMILIES_BY_PROBE_TYPE, "token-authz": Row((*ENDPOINT_FAMILIES, EXTRA))}
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B])
    exposition = Exposition(store, table)
    jobs = plan()
    exposition.set_plan(jobs)
    assert "lakeprobe_probe_extra" not in exposition.render().decode()
    retyped = dataclasses.replace(jobs[1], probe_type=PROBE_TYPES["token-authz"])
    exposition.set_plan([jobs[0], retyped])
    assert value(parse(exposition.render().decode()), "lakeprobe_probe_extra", KEY_B) == 7


def test_two_families_of_one_name_are_refused() -> None:
    """/metrics would carry two headers for the name: the table is rejected up front."""
    twin = dataclasses.replace(EXTRA, help="another")
    table = {"xrootd": Row((EXTRA,)), "webdav": Row((twin,))}
    with pytest.raises(ValueError, match="share a name: lakeprobe_probe_extra"):
        Exposition(ResultsStore(), table)


def test_a_new_result_rerenders_in_place_and_matches_a_fresh_render() -> None:
    """A target's text is updated in place on its next result: the scrape after it is what a
    fresh exposition renders, and the text of the other target is kept as it was."""
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B])
    store.record(KEY_A, result(Status.OK))
    store.record(KEY_B, result(Status.CRITICAL, Reason.CONNECT))
    exposition = Exposition(store)
    exposition.set_plan(plan())
    exposition.render()
    store.record(KEY_A, result(Status.CRITICAL, Reason.TIMEOUT, started=2000.0))
    fresh = Exposition(store)
    fresh.set_plan(plan())
    assert exposition.render() == fresh.render()
    data = parse(exposition.render().decode())
    assert value(data, "lakeprobe_probe_reason", KEY_A, reason="timeout") == 1
    assert value(data, "lakeprobe_probe_last_run_timestamp_seconds", KEY_A) == 2000.0
    assert value(data, "lakeprobe_probe_reason", KEY_B, reason="connect") == 1


def test_a_scrape_in_flight_keeps_what_it_began_with() -> None:
    """A second scrape that re-renders a target while the first is still streaming does not
    change the first one's text: each scrape is one consistent snapshot."""
    store = ResultsStore()
    store.set_targets([KEY_A, KEY_B])
    store.record(KEY_A, result(Status.OK))
    exposition = Exposition(store)
    exposition.set_plan(plan())
    before = exposition.render()
    first = exposition.chunks()
    head = [next(first)]  # the first scrape has taken its snapshot and is mid-stream
    store.record(KEY_A, result(Status.CRITICAL, Reason.TIMEOUT, started=2000.0))
    after = exposition.render()
    assert after != before
    assert b"".join([*head, *first]) == before
    assert exposition.render() == after


def test_a_sample_missing_for_one_target_of_a_row_leaves_no_partial_line() -> None:
    """A one-sample family's line is put together at the scrape (name, the target's labels,
    its cached line end): a target of the same row without that sample gets no line at all,
    not a name and labels without a value, and the text stays parseable."""
    config = {
        "sites": [
            {"name": name, "endpoints": [{"name": "webdav", "url": f"davs://127.0.0.{n}:8443"}]}
            for n, name in enumerate(("SITE-B", "SITE-C", "SITE-D"), start=1)
        ],
        "probes": [{"name": "webdav", "type": "webdav"}],
    }
    jobs = build_plan(parse_config(yaml.safe_dump(config)))
    keys = [job.key for job in jobs if isinstance(job.key, TargetKey)]
    assert len(keys) == 3
    store = ResultsStore()
    store.set_targets(keys)
    with_bytes = result(Status.OK)
    without = dataclasses.replace(with_bytes, measurements={})
    for key, run in zip(keys, (without, with_bytes, without), strict=True):
        store.record(key, run)
    exposition = Exposition(store)
    exposition.set_plan(jobs)
    text = exposition.render().decode()
    lines = [line for line in text.splitlines() if line.startswith("lakeprobe_probe_write_bytes")]
    assert lines == [
        'lakeprobe_probe_write_bytes{probe="webdav",site="SITE-C",endpoint="webdav",'
        'protocol="davs"} 1024.0'
    ]
    data = parse(text)
    assert value(data, "lakeprobe_probe_write_bytes", keys[1]) == 1024
    assert all(value(data, "lakeprobe_probe_success", key) == 1 for key in keys)
