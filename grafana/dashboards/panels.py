"""Panel shapes the dashboards repeat: stats, graphs, timelines, status tables."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, statushistory, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from .common import Q, last_value, merge, organize, status_mappings, status_thresholds, with_queries


def _colour_key() -> cb.VizLegendOptions:
    """A legend under timelines: the status colours and their names."""
    return cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST)


def status_stat(title: str, queries: Sequence[Q], *, span: int = 6) -> stat.Panel:
    """The last status as OK / WARNING / CRITICAL / UNKNOWN on its colour."""
    panel = (
        stat.Panel()
        .reduce_options(last_value())
        .title(title)
        .height(4)
        .span(span)
        .mappings(status_mappings())
        .thresholds(status_thresholds())
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    return with_queries(panel, queries, instant=True)


def number_stat(
    title: str,
    queries: Sequence[Q],
    unit: str,
    colours: db.ThresholdsConfig,
    *,
    description: str = "",
    span: int = 6,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .reduce_options(last_value())
        .title(title)
        .description(description)
        .height(4)
        .span(span)
        .unit(unit)
        .thresholds(colours)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    return with_queries(panel, queries, instant=True)


def graph(
    title: str,
    unit: str,
    queries: Sequence[Q],
    *,
    bars: bool = False,
    span: int = 12,
    description: str = "",
) -> timeseries.Panel:
    legend = cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST)
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .height(8)
        .span(span)
        .legend(legend)
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return with_queries(panel, queries)


def status_timeline(
    title: str, queries: Sequence[Q], *, span: int = 24, height: int = 8
) -> statetimeline.Panel:
    """Status (0..3) over time, one lane per series, equal neighbours merged."""
    panel = (
        statetimeline.Panel()
        .title(title)
        .height(height)
        .span(span)
        .mappings(status_mappings())
        .thresholds(status_thresholds())
        .merge_values(True)
        .show_value(common.VisibilityMode.NEVER)
        .legend(_colour_key())
    )
    return with_queries(panel, queries)


def presence_timeline(
    title: str, queries: Sequence[Q], *, span: int = 12, description: str = ""
) -> statetimeline.Panel:
    """Lanes coloured while a `... == 1` series exists (a reason held), empty otherwise."""
    mapping = dm.ValueMap(options={"1": dm.ValueMappingResult(text="yes", color="red", index=0)})
    panel = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .height(8)
        .span(span)
        .mappings([mapping])
        .merge_values(True)
        .show_value(common.VisibilityMode.NEVER)
    )
    return with_queries(panel, queries)


def step_history(title: str, queries: Sequence[Q], *, description: str = "") -> statushistory.Panel:
    """Step status (0..4, 4 = skipped) per scrape, one row per step."""
    panel = (
        statushistory.Panel()
        .title(title)
        .description(description)
        .height(10)
        .span(24)
        .mappings(status_mappings(with_skipped=True))
        .thresholds(status_thresholds(with_skipped=True))
        .show_value(common.VisibilityMode.NEVER)
        .legend(_colour_key())
    )
    return with_queries(panel, queries)


def instant_table(
    title: str,
    queries: Sequence[Q],
    *,
    rename: dict[str, str] | None = None,
    links: Sequence[db.DashboardLink] = (),
    span: int = 12,
    height: int = 8,
    description: str = "",
) -> table.Panel:
    """A table of instant queries, one row per series, the Time column hidden. With several
    queries their rows are merged on equal labels (columns `Value #A`, `Value #B`, ...)."""
    panel = table.Panel().title(title).description(description).height(height).span(span)
    if len(queries) > 1:
        panel = panel.with_transformation(merge())
    panel = panel.with_transformation(organize(rename=rename)).data_links(list(links))
    return with_queries(panel, queries, table=True)
