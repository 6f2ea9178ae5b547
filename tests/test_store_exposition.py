"""The results store and its exposition: series per target, counters, removal on reload."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.config.plan import TargetKey
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult

KEY_A = TargetKey("xrootd", "SITE-A", "xrootd", "root")
KEY_B = TargetKey("webdav", "SITE-B", "webdav", "davs")


def result(status: Status, reason: Reason = Reason.NONE, started: float = 1000.0) -> ProbeResult:
    steps = (
        StepResult("ping", status, 0.5, reason, "detail text"),
        StepResult("write", Status.SKIPPED if status is Status.CRITICAL else Status.OK, 0.25),
    )
    return ProbeResult(status, reason, steps, 1.5, started, {Measurement.WRITE_BYTES: 1024.0})


def samples(store: ResultsStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = Exposition(store).render().decode()
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
