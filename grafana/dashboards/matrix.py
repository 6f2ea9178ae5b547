"""Site transfer matrix: source site x destination site, per pair probe and mode.

One repeated row per mode (pull, push: lakeprobe.probes.core.target.MODES), repeated over the pair
probes that run in that mode (a hidden variable per mode, so xrootd-tpc gets no empty push row).
Each row holds three matrices (Grafana tables with the groupingToMatrix transformation):
status now, FTS-style success rate over the range, throughput of the last copy. Clicking a cell
opens the pair detail for that source, destination, probe and mode.
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
    panel = (
        table.Panel()
        .title(f"{title}: ${probe_variable(mode)} {mode}")
        .description(description)
        .height(12)
        .span(8)
        .with_transformation(grouping_to_matrix(ROW_FIELD, COLUMN_FIELD))
        .cell_options(common.TableColoredBackgroundCellOptions())
        .data_links([cell_link(mode)])
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
    return board
