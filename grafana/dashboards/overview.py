"""Overview: every endpoint and site pair at a glance, current failures, stale probes, daemon."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table
from grafana_foundation_sdk.models import common

from .common import (
    COLOR_CELL,
    ENDPOINT_LABELS,
    PAIR_LABELS,
    PanelBuilder,
    Q,
    dashboard_url,
    data_link,
    datasource_variable,
    endpoint_link,
    label_variable,
    last_value,
    new_dashboard,
    override,
    pair_link,
    sel,
    status_mappings,
    status_thresholds,
    thresholds,
    with_queries,
)
from .daemon import daemon_row
from .panels import instant_table, status_timeline

UID = "lakeprobe-overview"
TARGET = ('site=~"$site"', 'probe=~"$probe"', 'protocol=~"$protocol"')
BY_TARGET = ", ".join(ENDPOINT_LABELS)
BY_PAIR = ", ".join(PAIR_LABELS)
STATES = (("OK", "green"), ("WARNING", "yellow"), ("CRITICAL", "red"), ("UNKNOWN", "purple"))
# Endpoint and pair series together, for the probe and protocol variables.
ANY_STATUS = '{__name__=~"lakeprobe_probe_status|lakeprobe_transfer_status"}'
STALE = (
    "Targets whose last run started more than twice their interval ago: the daemon is stuck, "
    "overloaded or not scraped."
)


def pair_sel(metric: str, *matchers: str) -> str:
    """Pairs with either end in $site (with All, both halves are the same set)."""
    common_matchers = ('probe=~"$probe"', 'protocol=~"$protocol"', *matchers)
    src = sel(metric, 'src_site=~"$site"', *common_matchers)
    dst = sel(metric, 'dst_site=~"$site"', *common_matchers)
    return f"({src} or {dst})"


def counts_by_status(title: str, status: str) -> stat.Panel:
    """How many endpoints (or pairs) are in each status now; a status turns its colour from 1."""
    queries = [
        Q(f"count({status} == {value}) or vector(0)", name)
        for value, (name, _) in enumerate(STATES)
    ]
    overrides = [
        override(
            name, {"thresholds": thresholds("green" if value else colour, (1, colour)).build()}
        )
        for value, (name, colour) in enumerate(STATES)
    ]
    panel = (
        stat.Panel()
        .reduce_options(last_value())
        .title(title)
        .height(4)
        .span(12)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .overrides(overrides)
    )
    return with_queries(panel, queries, instant=True)


def endpoint_table() -> table.Panel:
    """One row per target: status now, availability over the range, failures in a row."""
    success = sel("lakeprobe_probe_success", *TARGET)
    last_success = sel("lakeprobe_probe_last_success_timestamp_seconds", *TARGET)
    queries = [
        Q(f"max by ({BY_TARGET}) ({sel('lakeprobe_probe_status', *TARGET)})"),
        Q(f"avg by ({BY_TARGET}) (avg_over_time({success}[$__range]))"),
        Q(f"max by ({BY_TARGET}) ({sel('lakeprobe_probe_consecutive_failures', *TARGET)})"),
        Q(f"max by ({BY_TARGET}) (time() - {last_success})"),
    ]
    names = {"Value #A": "Status", "Value #B": "Availability", "Value #C": "Failed runs in a row"}
    names["Value #D"] = "Since last success"
    status = {
        "mappings": status_mappings(),
        "custom.cellOptions": COLOR_CELL,
        "thresholds": status_thresholds().build(),
    }
    availability = {
        "unit": "percentunit",
        "decimals": 2,
        "custom.cellOptions": {"type": "color-text"},
        "thresholds": thresholds("red", (0.9, "yellow"), (0.99, "green")).build(),
    }
    return instant_table(
        "Endpoint status",
        queries,
        rename=names,
        links=[endpoint_link()],
        span=24,
        height=10,
        description=(
            "The last run of every (site, endpoint, probe). Availability: the fraction of the "
            "selected range during which the last run was OK or WARNING. Click for the detail."
        ),
    ).overrides(
        [
            override("Status", status),
            override("Availability", availability),
            override("Since last success", {"unit": "s"}),
        ]
    )


def endpoint_timeline() -> statetimeline.Panel:
    expr = f"max by (site, endpoint, probe) ({sel('lakeprobe_probe_status', *TARGET)})"
    params = [f"var-{label}=${{__field.labels.{label}}}" for label in ENDPOINT_LABELS[:3]]
    link = data_link("Endpoint detail", dashboard_url("lakeprobe-endpoint", *params))
    panel = status_timeline(
        "Endpoint status over time", [Q(expr, "{{site}} {{endpoint}} {{probe}}")], height=10
    )
    return panel.data_links([link])


def failures() -> list[PanelBuilder]:
    reason = sel("lakeprobe_probe_reason", *TARGET, 'reason!="none"')
    in_a_row = sel("lakeprobe_probe_consecutive_failures", *TARGET)
    pair_reason = pair_sel("lakeprobe_transfer_reason", 'reason!="none"')
    pair_in_a_row = "lakeprobe_transfer_consecutive_failures"
    rename = {"Value": "Failed runs in a row"}
    return [
        instant_table(
            "Endpoint failures and warnings now",
            [Q(f"({reason} == 1) * on ({BY_TARGET}) group_left {in_a_row}")],
            rename=rename,
            links=[endpoint_link()],
            description="The reason of every last run that was not OK. Click for the detail.",
        ),
        instant_table(
            "Transfer failures now",
            [Q(f"({pair_reason} == 1) * on ({BY_PAIR}) group_left {pair_in_a_row}")],
            rename=rename,
            links=[pair_link()],
            description="Site pairs (either end in $site) whose last copy failed, and why.",
        ),
    ]


def stale() -> list[PanelBuilder]:
    last = sel("lakeprobe_probe_last_run_timestamp_seconds", *TARGET)
    interval = sel("lakeprobe_probe_interval_seconds", *TARGET)
    pair_last = pair_sel("lakeprobe_transfer_last_run_timestamp_seconds")
    pair_interval = "lakeprobe_transfer_interval_seconds"
    queries = (
        ("Stale endpoint probes", f"time() - {last} > 2 * {interval}", endpoint_link()),
        ("Stale transfer tests", f"time() - {pair_last} > 2 * {pair_interval}", pair_link()),
    )
    return [
        instant_table(
            title,
            [Q(expr)],
            rename={"Value": "Since last run"},
            links=[link],
            height=6,
            description=STALE,
        ).overrides([override("Since last run", {"unit": "s"})])
        for title, expr, link in queries
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: overview",
        "Status of every storage endpoint and site pair, current failures, stale probes and the "
        "health of the lakeprobe daemons.",
    )
    for variable in (
        datasource_variable(),
        label_variable("site", "lakeprobe_probe_status"),
        label_variable("probe", ANY_STATUS),
        label_variable("protocol", ANY_STATUS),
        # All expands to the jobs found, never `.*`: `up{job=~".*"}` would list every target.
        label_variable("job", "lakeprobe_build_info", all_value=None),
    ):
        board = board.with_variable(variable)
    sections: tuple[tuple[str, list[PanelBuilder]], ...] = (
        (
            "Status now",
            [
                counts_by_status("Endpoints by status", sel("lakeprobe_probe_status", *TARGET)),
                counts_by_status("Site pairs by status", pair_sel("lakeprobe_transfer_status")),
                endpoint_table(),
                endpoint_timeline(),
            ],
        ),
        ("Failures", failures() + stale()),
    )
    for title, panels in sections:
        board = board.with_row(db.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return daemon_row(board)
