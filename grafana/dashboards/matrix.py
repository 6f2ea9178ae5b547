"""Site transfer matrix: source site x destination site, per pair probe and mode.

One repeated row per mode (pull, push: lakeprobe.probes.core.target.MODES), repeated over the pair
probes that run in that mode (a hidden variable per mode, so xrootd-tpc gets no empty push row).
Each row holds three matrices (Grafana tables with the groupingToMatrix transformation):
status now, FTS-style success rate over the range, throughput of the last copy. Clicking a cell
opens the pair detail for that source, destination, probe and mode.

Below them, the network matrix (the perfsonar and iperf3 probes, lakeprobe_network_*), one row
per IP version: throughput, packet loss and the age of the newest measurement, over the same
sites (every pair the transfer matrix has is a cell, "no network data" when nothing measures it).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from lakeprobe.probes.core.target import MODES

from .common import (
    Q,
    dashboard_url,
    data_link,
    datasource_variable,
    grouping_to_matrix,
    label_variable,
    nan_mapping,
    new_dashboard,
    override,
    sel,
    status_mappings,
    status_thresholds,
    thresholds,
    with_queries,
)

UID = "lakeprobe-matrix"
ROW_FIELD = "src_site"
COLUMN_FIELD = "dst_site"
# The first column groupingToMatrix makes is named "<rowField>\<columnField>".
CORNER = f"{ROW_FIELD}\\{COLUMN_FIELD}"
BY_PAIR = f"sum by ({ROW_FIELD}, {COLUMN_FIELD})"


def probe_variable(mode: str) -> str:
    return f"{mode}_probe"


def pair_selection(metric: str, mode: str, around: str = "{}") -> str:
    """Pairs with either end in $site, so one chosen site shows its row and its column
    (matching both ends would leave nothing: a site never copies to itself). `around` wraps
    each half, for range functions that cannot take an `or`."""
    common = (f'probe=~"${probe_variable(mode)}"', f'mode="{mode}"', 'protocol=~"$protocol"')
    src, dst = (
        around.format(sel(metric, *common, f'{end}=~"$site"')) for end in ("src_site", "dst_site")
    )
    return f"({src} or {dst})"


def cell_link(mode: str) -> db.DashboardLink:
    """The row header is the source site (field 0), the column name the destination."""
    url = dashboard_url(
        "lakeprobe-pair",
        "var-src_site=${__data.fields[0]}",
        "var-dst_site=${__field.name}",
        f"var-probe=${{{probe_variable(mode)}}}",
        f"var-mode={mode}",
        "${protocol:queryparam}",
    )
    return data_link("Pair detail: ${__data.fields[0]} -> ${__field.name}", url)


def matrix(title: str, mode: str, expr: str, description: str) -> table.Panel:
    return site_matrix(
        f"{title}: ${probe_variable(mode)} {mode}", expr, description, cell_link(mode)
    )


def site_matrix(title: str, expr: str, description: str, link: db.DashboardLink) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .height(12)
        .span(8)
        .with_transformation(grouping_to_matrix(ROW_FIELD, COLUMN_FIELD))
        .cell_options(common.TableColoredBackgroundCellOptions())
        .data_links([link])
        .overrides(
            [
                override(
                    CORNER,
                    {
                        "displayName": "source \\ destination",
                        "links": [],
                        "custom.cellOptions": {"type": "auto"},
                    },
                )
            ]
        )
    )
    return with_queries(panel, [Q(expr)], table=True)


def status_matrix(mode: str) -> table.Panel:
    status = pair_selection("lakeprobe_transfer_status", mode)
    expr = f"max by ({ROW_FIELD}, {COLUMN_FIELD}) ({status})"
    panel = matrix(
        "Status now",
        mode,
        expr,
        "Status of the last copy of each ordered pair (worst over the selected protocols).",
    )
    return panel.mappings(status_mappings()).thresholds(status_thresholds())


def success_matrix(mode: str) -> table.Panel:
    increase = "increase({}[$__range])"
    failures = pair_selection("lakeprobe_transfer_failures_total", mode, increase)
    runs = pair_selection("lakeprobe_transfer_runs_total", mode, increase)
    rate = f"1 - {BY_PAIR} {failures} / {BY_PAIR} {runs}"
    panel = matrix(
        "Success rate over the range",
        mode,
        f"clamp({rate}, 0, 1)",
        "FTS semantics: finished / (finished + failed) copies over the selected time range. "
        "'no runs' when the pair did not run in the range.",
    )
    return (
        panel.unit("percentunit")
        .decimals(0)
        .thresholds(thresholds("red", (0.9, "yellow"), (0.99, "green")))
        .mappings([nan_mapping("no runs")])
    )


def throughput_matrix(mode: str) -> table.Panel:
    value = pair_selection("lakeprobe_transfer_throughput_bytes_per_second", mode)
    panel = matrix(
        "Throughput of the last copy",
        mode,
        f"max by ({ROW_FIELD}, {COLUMN_FIELD}) ({value})",
        "Bytes per second of the last copy (empty when the last copy measured none).",
    )
    colour = db.FieldColor().mode(dm.FieldColorModeId.CONTINUOUS_BL_PU)
    return panel.unit("Bps").decimals(1).color_scheme(colour)


# --- The network matrix (lakeprobe_network_*: the perfsonar and iperf3 probes) -------------
# A cell is -1 when the pair's newest result found no measurement in its look-back window
# (reason measurement_stale: shown "stale", never as 0), NaN for a pair only the transfer
# matrix has ("no network data"), so both matrices list the same sites.
NETWORK = ('probe=~"$network_probe"', 'ip_version=~"$ip_version"')
NETWORK_KEY = "probe, src_site, dst_site, ip_version"
STALE, MISSING = "stale", "no network data"


def network_selection(metric: str, *matchers: str) -> str:
    """Network series with either end in $site (as pair_selection)."""
    src, dst = (
        sel(metric, *NETWORK, *matchers, f'{end}=~"$site"') for end in ("src_site", "dst_site")
    )
    return f"({src} or {dst})"


def _transfer_pairs() -> str:
    """The transfer matrix's pairs as NaN cells: same sites in both matrices."""
    status = (
        sel("lakeprobe_transfer_status", f'{end}=~"$site"') for end in ("src_site", "dst_site")
    )
    return "NaN * group by ({}, {}) ({} or {})".format(ROW_FIELD, COLUMN_FIELD, *status)


def _stale_pairs() -> str:
    stale = network_selection("lakeprobe_network_reason", 'reason="measurement_stale"')
    return f"-1 * group by ({ROW_FIELD}, {COLUMN_FIELD}) ({stale} == 1)"


def network_cells(metric: str, newest: str = "max") -> str:
    """`newest` of the pair's measured values over the selected probes, else stale, else NaN.
    A stale result's series are left out even if one lingered: stale never shows a number."""
    stale = network_selection("lakeprobe_network_reason", 'reason="measurement_stale"')
    fresh = f"{network_selection(metric)} unless on({NETWORK_KEY}) ({stale} == 1)"
    value = f"{newest} by ({ROW_FIELD}, {COLUMN_FIELD}) ({fresh})"
    return f"{value}\nor\n{_stale_pairs()}\nor\n{_transfer_pairs()}"


def network_link() -> db.DashboardLink:
    url = dashboard_url(
        "lakeprobe-pair",
        "var-src_site=${__data.fields[0]}",
        "var-dst_site=${__field.name}",
        "${network_probe:queryparam}",
        "var-ip_version=${ip_version}",
    )
    return data_link("Pair detail: ${__data.fields[0]} -> ${__field.name}", url)


def network_mappings(stale: str = STALE) -> list[dm.ValueMapping]:
    grey = dm.ValueMappingResult(text=stale, color="#8e8e8e", index=0)
    return [dm.ValueMap(options={"-1": grey}), nan_mapping(MISSING)]


def network_throughput_matrix() -> table.Panel:
    panel = site_matrix(
        "Network throughput: $network_probe IPv$ip_version",
        network_cells("lakeprobe_network_throughput_bits_per_second"),
        "Bits per second (not bytes: the copy matrix above is in bytes/s) of the newest "
        "measurement src_site -> dst_site in the probe's look-back window (the best of the "
        "selected probes). 'stale': no measurement in the window.",
        network_link(),
    )
    colour = db.FieldColor().mode(dm.FieldColorModeId.CONTINUOUS_BL_PU)
    return panel.unit("bps").decimals(1).color_scheme(colour).mappings(network_mappings())


def network_loss_matrix() -> table.Panel:
    panel = site_matrix(
        "Network packet loss: $network_probe IPv$ip_version",
        network_cells("lakeprobe_network_packet_loss_ratio"),
        "Packet loss ratio of the newest measurement (perfSONAR latency tests), "
        "the worst of the selected probes. Colours at the default thresholds (0.1 %, 1 %).",
        network_link(),
    )
    colours = thresholds("green", (0.001, "yellow"), (0.01, "red"))
    return panel.unit("percentunit").decimals(2).thresholds(colours).mappings(network_mappings())


def network_age_matrix() -> table.Panel:
    measured = network_selection("lakeprobe_network_measurement_timestamp_seconds")
    newest = f"time() - max by ({ROW_FIELD}, {COLUMN_FIELD}) ({measured})"
    panel = site_matrix(
        "Network measurement age: $network_probe IPv$ip_version",
        f"{newest}\nor\n{_stale_pairs()}\nor\n{_transfer_pairs()}",
        "Time since the newest measurement of the pair (the freshest of the selected "
        "probes). 'none in window': the last run found none in its look-back window (reason "
        "measurement_stale). Yellow past 6 h (the default window), red past 24 h.",
        network_link(),
    )
    colours = thresholds("green", (6 * 3600, "yellow"), (24 * 3600, "red"))
    return panel.unit("s").thresholds(colours).mappings(network_mappings("none in window"))


def network_variables() -> list[db.QueryVariable]:
    return [
        label_variable("network_probe", "lakeprobe_network_status", "probe", text="network probe"),
        label_variable("ip_version", "lakeprobe_network_status", text="IP version", all_value=None),
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: site transfer matrix",
        "Third-party copies between every ordered pair of sites: status, success rate over the "
        "range and throughput. Rows are sources, columns destinations; click a cell for the pair.",
    )
    variables = [
        datasource_variable(),
        label_variable("site", "lakeprobe_transfer_status", "src_site"),
        label_variable("probe", "lakeprobe_transfer_status"),
        label_variable("protocol", 'lakeprobe_transfer_status{probe=~"$probe"}'),
    ]
    for mode in MODES:
        selector = f'lakeprobe_transfer_status{{probe=~"$probe", mode="{mode}"}}'
        variables.append(label_variable(probe_variable(mode), selector, "probe", hide=True))
    for variable in variables:
        board = board.with_variable(variable)
    for mode in MODES:
        row = db.Row(f"{mode}: ${probe_variable(mode)}").repeat(probe_variable(mode))
        board = board.with_row(row)
        for panel in (status_matrix(mode), success_matrix(mode), throughput_matrix(mode)):
            board = board.with_panel(panel)
    for variable in network_variables():
        board = board.with_variable(variable)
    board = board.with_row(db.Row("network: IPv$ip_version, $network_probe").repeat("ip_version"))
    for panel in (network_throughput_matrix(), network_loss_matrix(), network_age_matrix()):
        board = board.with_panel(panel)
    return board
