"""Endpoint detail: one storage endpoint of one site, its probes and their steps over time."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (
    COLOR_CELL,
    PanelBuilder,
    Q,
    datasource_variable,
    label_variable,
    new_dashboard,
    override,
    sel,
    status_mappings,
    status_thresholds,
    thresholds,
)
from .panels import graph, instant_table, number_stat, status_stat, status_timeline, step_history

UID = "lakeprobe-endpoint"
TARGET = (
    'site=~"$site"',
    'endpoint=~"$endpoint"',
    'probe=~"$probe"',
    'protocol=~"$protocol"',
)
LEGEND = "{{probe}} {{protocol}}"
STEP_LEGEND = "{{probe}} {{step}}"


def _steps_table() -> PanelBuilder:
    by_step = "max by (probe, protocol, step)"
    queries = [
        Q(f"{by_step} ({sel('lakeprobe_probe_step_status', *TARGET)})"),
        Q(f"{by_step} ({sel('lakeprobe_probe_step_duration_seconds', *TARGET)})"),
    ]
    status = {
        "mappings": status_mappings(with_skipped=True),
        "thresholds": status_thresholds(with_skipped=True).build(),
        "custom.cellOptions": COLOR_CELL,
    }
    return instant_table(
        "Steps of the last run",
        queries,
        rename={"Value #A": "Status", "Value #B": "Duration"},
        description="Skipped steps (after an earlier failure) have no duration.",
    ).overrides([override("Status", status), override("Duration", {"unit": "s"})])


def _now_panels() -> list[PanelBuilder]:
    success = sel("lakeprobe_probe_success", *TARGET)
    last_success = sel("lakeprobe_probe_last_success_timestamp_seconds", *TARGET)
    return [
        status_stat("Status of the last run", [Q(sel("lakeprobe_probe_status", *TARGET), LEGEND)]),
        number_stat(
            "Availability over the range",
            [Q(f"avg_over_time({success}[$__range])", LEGEND)],
            "percentunit",
            thresholds("red", (0.9, "yellow"), (0.99, "green")),
            description="Fraction of the range during which the last run was OK or WARNING.",
        ),
        number_stat(
            "Failed runs in a row",
            [Q(sel("lakeprobe_probe_consecutive_failures", *TARGET), LEGEND)],
            "short",
            thresholds("green", (1, "orange"), (2, "red")),
        ),
        number_stat(
            "Since the last success",
            [Q(f"time() - {last_success}", LEGEND)],
            "s",
            thresholds("text"),
        ),
        _steps_table(),
        instant_table(
            "Reason of the last run",
            [Q(f"{sel('lakeprobe_probe_reason', *TARGET)} == 1")],
            rename={"Value": "Current"},
        ),
    ]


def _increase_by(label: str, metric: str) -> str:
    return f"sum by (probe, {label}) (increase({sel(metric, *TARGET)}[$__rate_interval]))"


def _history_panels() -> list[PanelBuilder]:
    read = sel("lakeprobe_probe_read_throughput_bytes_per_second", *TARGET)
    write = sel("lakeprobe_probe_write_throughput_bytes_per_second", *TARGET)
    return [
        status_timeline("Status over time", [Q(sel("lakeprobe_probe_status", *TARGET), LEGEND)]),
        step_history(
            "Step status",
            [Q(sel("lakeprobe_probe_step_status", *TARGET), STEP_LEGEND)],
            description="0 OK, 1 WARNING (e.g. slow), 2 CRITICAL, 3 UNKNOWN, 4 SKIPPED.",
        ),
        graph(
            "Step durations",
            "s",
            [Q(sel("lakeprobe_probe_step_duration_seconds", *TARGET), STEP_LEGEND)],
        ),
        graph("Run duration", "s", [Q(sel("lakeprobe_probe_duration_seconds", *TARGET), LEGEND)]),
        graph(
            "Failures by reason",
            "short",
            [Q(_increase_by("reason", "lakeprobe_probe_failures_total"), "{{probe}} {{reason}}")],
            bars=True,
        ),
        graph(
            "Runs by status",
            "short",
            [Q(_increase_by("status", "lakeprobe_probe_runs_total"), "{{probe}} {{status}}")],
            bars=True,
        ),
        graph(
            "Read and write throughput",
            "Bps",
            [Q(read, f"read {LEGEND}"), Q(write, f"write {LEGEND}")],
        ),
        graph(
            "Failed runs in a row over time",
            "short",
            [Q(sel("lakeprobe_probe_consecutive_failures", *TARGET), LEGEND)],
        ),
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: endpoint",
        "One storage endpoint: status, steps, durations, failure reasons and throughput.",
    )
    for variable in (
        datasource_variable(),
        label_variable("site", "lakeprobe_probe_status", multi=False),
        label_variable("endpoint", 'lakeprobe_probe_status{site=~"$site"}', multi=False),
        label_variable("probe", 'lakeprobe_probe_status{site=~"$site", endpoint=~"$endpoint"}'),
        label_variable("protocol", 'lakeprobe_probe_status{site=~"$site", endpoint=~"$endpoint"}'),
    ):
        board = board.with_variable(variable)
    board = board.with_row(db.Row("Now"))
    for panel in _now_panels():
        board = board.with_panel(panel)
    board = board.with_row(db.Row("Over time"))
    for history in _history_panels():
        board = board.with_panel(history)
    return board
