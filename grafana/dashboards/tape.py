"""Tape: the tape-recall probe's endpoints, their recall times, outstanding requests, reference
files by locality, archive lag and failures by reason (the lakeprobe_tape_* series)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .common import (
    COLOR_CELL,
    DATASOURCE,
    PanelBuilder,
    Q,
    datasource_variable,
    endpoint_link,
    label_variable,
    new_dashboard,
    override,
    sel,
    status_mappings,
    status_thresholds,
)
from .panels import graph, instant_table

UID = "lakeprobe-tape"
TARGET = (
    'site=~"$site"',
    'endpoint=~"$endpoint"',
    'probe=~"$probe"',
    'protocol=~"$protocol"',
)
LEGEND = "{{site}}/{{endpoint}}"
BUCKETS = sel("lakeprobe_tape_recall_duration_seconds_bucket", *TARGET)
# Recalls are rare (one per run that sees one complete): quantiles over time use this fixed
# window, so most points have a few recalls behind them rather than none.
WINDOW = "6h"
# Only tape targets have lakeprobe_tape_* series: the variables list tape endpoints only.
TAPE_SERIES = "lakeprobe_tape_outstanding_requests"


def _quantile(q: float, window: str) -> str:
    by = "sum by (site, endpoint, le)"
    return f"histogram_quantile({q}, {by} (increase({BUCKETS}[{window}])))"


def _status_table() -> PanelBuilder:
    """Status with the last run's reason as a column (the reason series joined by labels)."""
    labels = "job, instance, probe, site, endpoint, protocol"
    status = sel("lakeprobe_probe_status", *TARGET)
    reason = sel("lakeprobe_probe_reason", *TARGET)
    joined = f"{status} * on ({labels}) group_left (reason) ({reason} == 1)"
    queries = [
        Q(f"max by (site, endpoint, probe, protocol, reason) ({joined})"),
        Q(f"max by (site, endpoint, probe, protocol) ({sel(TAPE_SERIES, *TARGET)})"),
        Q(
            "max by (site, endpoint, probe, protocol) "
            f"({sel('lakeprobe_tape_oldest_outstanding_seconds', *TARGET)})"
        ),
    ]
    status_cell = {
        "mappings": status_mappings(),
        "thresholds": status_thresholds().build(),
        "custom.cellOptions": COLOR_CELL,
    }
    return instant_table(
        "Status, reason and outstanding requests",
        queries,
        rename={"Value #A": "Status", "Value #B": "Outstanding", "Value #C": "Oldest"},
        links=[endpoint_link()],
        span=24,
        description="The last run per tape endpoint; a row opens the endpoint detail.",
    ).overrides([override("Status", status_cell), override("Oldest", {"unit": "s"})])


def _recall_table() -> PanelBuilder:
    count = sel("lakeprobe_tape_recall_duration_seconds_count", *TARGET)
    queries = [
        Q(f"sum by (site, endpoint) (increase({count}[$__range]))"),
        *(Q(_quantile(q, "$__range")) for q in (0.5, 0.9, 0.99)),
    ]
    seconds: dict[str, object] = {"unit": "s"}
    return instant_table(
        "Recalls over the range",
        queries,
        rename={"Value #A": "Recalls", "Value #B": "p50", "Value #C": "p90", "Value #D": "p99"},
        description="Completed recalls and their time to online (quantiles from the histogram "
        "buckets: accurate to a bucket).",
    ).overrides([override(name, seconds) for name in ("p50", "p90", "p99")])


def _heatmap() -> PanelBuilder:
    target = (
        prometheus.Dataquery()
        .expr(f"sum by (le) (increase({BUCKETS}[$__interval]))")
        .legend_format("{{le}}")
        .format(PromQueryFormat.HEATMAP)
        .range()
        .ref_id("A")
        .datasource(DATASOURCE)
    )
    return (
        heatmap.Panel()
        .title("Recall time distribution")
        .description("Recalls completed per time step by time to online, selected endpoints.")
        .height(8)
        .span(12)
        .datasource(DATASOURCE)
        .targets([target])
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .color(heatmap.HeatmapColorOptions().scheme("Oranges").steps(64))
        .cell_values(heatmap.CellValues().unit("short"))
    )


def _recall_panels() -> list[PanelBuilder]:
    quantiles = [Q(_quantile(q, WINDOW), f"p{round(q * 100)} {LEGEND}") for q in (0.5, 0.9, 0.99)]
    return [
        graph(
            f"Recall time quantiles ({WINDOW} window)",
            "s",
            quantiles,
            description=f"Time to online of the recalls completed in the {WINDOW} before each "
            "point; gaps: no recall completed then.",
        ),
        _heatmap(),
        graph(
            "Last recall and its queue time",
            "s",
            [
                Q(sel("lakeprobe_tape_last_recall_seconds", *TARGET), f"recall {LEGEND}"),
                Q(sel("lakeprobe_tape_last_recall_queue_seconds", *TARGET), f"queue {LEGEND}"),
            ],
            description="Kept between recalls: the value changes when a recall completes. "
            "Queue: submitted until the server started the recall (when it says).",
        ),
        _recall_table(),
    ]


def _request_panels() -> list[PanelBuilder]:
    reason = "sum by (site, endpoint, reason)"
    failures = sel("lakeprobe_probe_failures_total", *TARGET)
    return [
        graph(
            "Outstanding stage requests",
            "short",
            [Q(sel(TAPE_SERIES, *TARGET), LEGEND)],
            description="Submitted by lakeprobe and not yet online, failed or cancelled.",
        ),
        graph(
            "Oldest outstanding request",
            "s",
            [Q(sel("lakeprobe_tape_oldest_outstanding_seconds", *TARGET), LEGEND)],
            description="Older than the endpoint's abandon limit: lakeprobe cancels and "
            "releases it.",
        ),
        graph(
            "Reference files by locality",
            "short",
            [Q(sel("lakeprobe_tape_files", *TARGET), f"{LEGEND} {{{{locality}}}}")],
            description="At the last check. lost and unavailable are faults; disk only "
            "(not on tape) means the file was never archived.",
        ),
        graph(
            "Archive lag and pending canary",
            "s",
            [
                Q(sel("lakeprobe_tape_archive_lag_seconds", *TARGET), f"lag {LEGEND}"),
                Q(sel("lakeprobe_tape_archive_pending_seconds", *TARGET), f"pending {LEGEND}"),
            ],
            description="Lag: the last canary's time from written to on tape. Pending: how "
            "long the current canary has waited (0: none).",
        ),
        graph(
            "Failures by reason",
            "short",
            [Q(f"{reason} (increase({failures}[$__rate_interval]))", f"{LEGEND} {{{{reason}}}}")],
            bars=True,
            span=24,
        ),
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: tape",
        "Tape endpoints: recall time distribution, outstanding stage requests, reference "
        "files by locality, archive lag and failures by reason.",
    )
    for variable in (
        datasource_variable(),
        label_variable("site", TAPE_SERIES),
        label_variable("endpoint", f'{TAPE_SERIES}{{site=~"$site"}}'),
        label_variable("probe", f'{TAPE_SERIES}{{site=~"$site", endpoint=~"$endpoint"}}'),
        label_variable("protocol", f'{TAPE_SERIES}{{site=~"$site", endpoint=~"$endpoint"}}'),
    ):
        board = board.with_variable(variable)
    board = board.with_row(db.Row("Now")).with_panel(_status_table())
    board = board.with_row(db.Row("Recalls"))
    for panel in _recall_panels():
        board = board.with_panel(panel)
    board = board.with_row(db.Row("Requests, files and archive"))
    for panel in _request_panels():
        board = board.with_panel(panel)
    return board
