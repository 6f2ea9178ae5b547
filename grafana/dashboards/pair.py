"""Pair detail: one ordered site pair (src_site -> dst_site) over time, per probe and mode."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (
    PanelBuilder,
    Q,
    datasource_variable,
    label_variable,
    nan_mapping,
    new_dashboard,
    sel,
    thresholds,
)
from .panels import graph, number_stat, presence_timeline, status_stat, status_timeline

UID = "lakeprobe-pair"
PAIR = (
    'probe=~"$probe"',
    'src_site=~"$src_site"',
    'dst_site=~"$dst_site"',
    'protocol=~"$protocol"',
    'mode=~"$mode"',
)
BY = "probe, protocol, mode"
LEGEND = "{{probe}} {{protocol}} {{mode}}"


def _increase(metric: str, window: str) -> str:
    return f"sum by ({BY}) (increase({sel(metric, *PAIR)}[{window}]))"


def _now_panels() -> list[PanelBuilder]:
    failures = _increase("lakeprobe_transfer_failures_total", "$__range")
    runs = _increase("lakeprobe_transfer_runs_total", "$__range")
    last_run = sel("lakeprobe_transfer_last_run_timestamp_seconds", *PAIR)
    return [
        status_stat(
            "Status of the last copy", [Q(sel("lakeprobe_transfer_status", *PAIR), LEGEND)]
        ),
        number_stat(
            "Success rate over the range",
            [Q(f"1 - {failures} / {runs}", LEGEND)],
            "percentunit",
            thresholds("red", (0.9, "yellow"), (0.99, "green")),
            description="finished / (finished + failed) copies in the selected range (FTS).",
        ).mappings([nan_mapping("no runs")]),
        number_stat(
            "Failed runs in a row",
            [Q(sel("lakeprobe_transfer_consecutive_failures", *PAIR), LEGEND)],
            "short",
            thresholds("green", (1, "orange"), (2, "red")),
        ),
        number_stat(
            "Since the last copy started",
            [Q(f"time() - {last_run}", LEGEND)],
            "s",
            thresholds("text"),
        ),
    ]


def _history_panels() -> list[PanelBuilder]:
    reason = sel("lakeprobe_transfer_reason", *PAIR, 'reason!="none"')
    return [
        status_timeline("Status over time", [Q(sel("lakeprobe_transfer_status", *PAIR), LEGEND)]),
        graph(
            "Copy duration",
            "s",
            [Q(sel("lakeprobe_transfer_duration_seconds", *PAIR), LEGEND)],
        ),
        graph(
            "Throughput",
            "Bps",
            [Q(sel("lakeprobe_transfer_throughput_bytes_per_second", *PAIR), LEGEND)],
        ),
        graph(
            "Runs and failures",
            "short",
            [
                Q(_increase("lakeprobe_transfer_runs_total", "$__rate_interval"), f"runs {LEGEND}"),
                Q(
                    _increase("lakeprobe_transfer_failures_total", "$__rate_interval"),
                    f"failed {LEGEND}",
                ),
            ],
            bars=True,
        ),
        presence_timeline(
            "Failure reason",
            [Q(f"{reason} == 1", f"{{{{reason}}}} {LEGEND}")],
            description=(
                "The reason of the last copy while it was failing (lakeprobe_transfer_reason; "
                "pair failure counters carry no reason label)."
            ),
        ),
        graph(
            "Failed runs in a row over time",
            "short",
            [Q(sel("lakeprobe_transfer_consecutive_failures", *PAIR), LEGEND)],
            span=24,
        ),
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: site pair",
        "Third-party copies from src_site to dst_site: status, success rate, duration, throughput "
        "and failure reasons over time.",
    )
    for variable in (
        datasource_variable(),
        label_variable("probe", "lakeprobe_transfer_status"),
        label_variable(
            "src_site",
            'lakeprobe_transfer_status{probe=~"$probe"}',
            text="source site",
            multi=False,
        ),
        label_variable(
            "dst_site",
            'lakeprobe_transfer_status{probe=~"$probe", src_site=~"$src_site"}',
            text="destination site",
            multi=False,
        ),
        label_variable("protocol", 'lakeprobe_transfer_status{probe=~"$probe"}'),
        label_variable("mode", 'lakeprobe_transfer_status{probe=~"$probe"}'),
    ):
        board = board.with_variable(variable)
    board = board.with_row(db.Row("Now"))
    for panel in _now_panels():
        board = board.with_panel(panel)
    board = board.with_row(db.Row("Over time"))
    for history in _history_panels():
        board = board.with_panel(history)
    return board
