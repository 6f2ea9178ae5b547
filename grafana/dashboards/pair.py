"""Pair detail: one ordered site pair (src_site -> dst_site) over time, per probe and mode.

The network between the two sites (the perfsonar and iperf3 probes, lakeprobe_network_*) sits
next to the copies: throughput and loss now, and the copy's throughput (converted to bits/s)
on one graph with the network's, so a slow copy on a slow network and a slow copy on a fine
network look different at a glance."""

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
NETWORK = (
    'probe=~"$network_probe"',
    'src_site=~"$src_site"',
    'dst_site=~"$dst_site"',
    'ip_version=~"$ip_version"',
)
NETWORK_LEGEND = "network {{probe}} IPv{{ip_version}}"


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


def _network_now_panels() -> list[PanelBuilder]:
    """The network's last verdict and newest measurement, under the copy's stats."""
    measured = sel("lakeprobe_network_measurement_timestamp_seconds", *NETWORK)
    return [
        status_stat(
            "Network status", [Q(sel("lakeprobe_network_status", *NETWORK), NETWORK_LEGEND)]
        ),
        number_stat(
            "Network throughput (bits/s)",
            [Q(sel("lakeprobe_network_throughput_bits_per_second", *NETWORK), NETWORK_LEGEND)],
            "bps",
            thresholds("text"),
            description="Newest measurement in the look-back window; none when it is stale.",
        ),
        number_stat(
            "Network packet loss",
            [Q(sel("lakeprobe_network_packet_loss_ratio", *NETWORK), NETWORK_LEGEND)],
            "percentunit",
            thresholds("green", (0.001, "yellow"), (0.01, "red")),
        ),
        number_stat(
            "Age of the newest network measurement",
            [Q(f"time() - {measured}", NETWORK_LEGEND)],
            "s",
            thresholds("green", (6 * 3600, "yellow"), (24 * 3600, "red")),
            description="Yellow past 6 h, the default look-back window of the network probes.",
        ),
    ]


def _network_panels() -> list[PanelBuilder]:
    """Copy and network throughput on one axis (bits/s), and the network's loss."""
    copy = sel("lakeprobe_transfer_throughput_bytes_per_second", *PAIR)
    return [
        graph(
            "Copy vs network throughput (bits/s)",
            "bps",
            [
                Q(f"8 * {copy}", f"copy {LEGEND} (bytes/s x 8)"),
                Q(sel("lakeprobe_network_throughput_bits_per_second", *NETWORK), NETWORK_LEGEND),
            ],
            description=(
                "The copy's throughput (lakeprobe_transfer_throughput_bytes_per_second, times 8) "
                "and the network's between the same sites, in bits per second. A copy far "
                "below a fine network is the storage; both low is the network."
            ),
        ),
        graph(
            "Network packet loss over time",
            "percentunit",
            [Q(sel("lakeprobe_network_packet_loss_ratio", *NETWORK), NETWORK_LEGEND)],
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
            "Copy throughput (bytes/s)",
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
        "and failure reasons over time, beside the network between the two sites (perfSONAR, "
        "iperf3): throughput and packet loss.",
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
        label_variable(
            "network_probe",
            'lakeprobe_network_status{src_site=~"$src_site", dst_site=~"$dst_site"}',
            "probe",
            text="network probe",
        ),
        label_variable("ip_version", "lakeprobe_network_status", text="IP version"),
    ):
        board = board.with_variable(variable)
    board = board.with_row(db.Row("Now"))
    for panel in _now_panels() + _network_now_panels():
        board = board.with_panel(panel)
    board = board.with_row(db.Row("Copy and network"))
    for network in _network_panels():
        board = board.with_panel(network)
    board = board.with_row(db.Row("Over time"))
    for history in _history_panels():
        board = board.with_panel(history)
    return board
