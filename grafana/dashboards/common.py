"""Building blocks shared by the lakeprobe dashboards: datasource, queries, variables, colours.

Every query and variable uses the `${datasource}` variable, never a datasource uid, so the JSON
works in any Grafana whatever its Prometheus datasource is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "lakeprobe"
# The identifying labels of endpoint and pair series (exporter/families.py).
ENDPOINT_LABELS = ("site", "endpoint", "probe", "protocol")
PAIR_LABELS = ("src_site", "dst_site", "probe", "protocol", "mode")
ALL = dm.VariableOption(selected=True, text="All", value="$__all")

# Status colours (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; steps add 4 SKIPPED).
_STATES = (
    ("OK", "green"),
    ("WARNING", "yellow"),
    ("CRITICAL", "red"),
    ("UNKNOWN", "purple"),
    ("SKIPPED", "#8e8e8e"),
)


@dataclass(frozen=True, slots=True)
class Q:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""  # empty: Grafana's default (all labels); ignored by table queries


class _QueryPanel(Protocol):
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def targets(self, targets: list[cogbuilder.Builder[cogvariants.Dataquery]]) -> Self: ...


P = TypeVar("P", bound=_QueryPanel)
PanelBuilder = cogbuilder.Builder[dm.Panel]


def sel(metric: str, *matchers: str) -> str:
    """`metric{m1, m2}`: matchers are PromQL label matchers such as `site=~"$site"`."""
    return metric + "{" + ", ".join(m for m in matchers if m) + "}"


def with_queries(
    panel: P, queries: Sequence[Q], *, instant: bool = False, table: bool = False
) -> P:
    """Attach the queries (ref ids A, B, ...) and the datasource variable to a panel.

    `instant`: evaluate at the end of the range only (stats). `table`: instant, returned as a
    table with one row per series and a column per label (tables, matrices); the legend of a
    table query is ignored, so value columns are `Value` or `Value #<refId>`.
    """
    targets: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for index, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + index))
        target = target.datasource(DATASOURCE)
        if q.legend:
            target = target.legend_format(q.legend)
        if table:
            target = target.instant().format(PromQueryFormat.TABLE)
        else:
            target = target.instant() if instant else target.range()
        targets.append(target)
    return panel.datasource(DATASOURCE).targets(targets)


def last_value() -> cb.ReduceDataOptions:
    """Stats show each series' last value (the SDK otherwise writes an empty `calcs` list)."""
    return cb.ReduceDataOptions().values(False).calcs(["lastNotNull"])


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(
    name: str,
    selector: str,
    label: str | None = None,
    *,
    text: str | None = None,
    multi: bool = True,
    all_value: str | None = ".*",
    hide: bool = False,
    default: str | None = None,
) -> db.QueryVariable:
    """A `label_values(selector, label)` variable. Multi-valued ones offer All, by default as
    `.*` so a regex matcher `label=~"$name"` selects everything without a huge alternation."""
    variable = (
        db.QueryVariable(name)
        .label(text or name.replace("_", " "))
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, {label or name})")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable = variable.current(ALL)
    if multi and all_value is not None:
        variable = variable.all_value(all_value)
    if default is not None:
        variable = variable.current(dm.VariableOption(selected=True, text=default, value=default))
    if hide:
        variable = variable.hide(dm.VariableHide.HIDE_VARIABLE)
    return variable


def status_mappings(with_skipped: bool = False) -> list[dm.ValueMapping]:
    """Value mappings 0..3 (or 0..4 for steps) to their names and colours."""
    states = _STATES if with_skipped else _STATES[:4]
    options = {
        str(value): dm.ValueMappingResult(text=text, color=color, index=value)
        for value, (text, color) in enumerate(states)
    }
    return [dm.ValueMap(options=options)]


def status_thresholds(with_skipped: bool = False) -> db.ThresholdsConfig:
    states = _STATES if with_skipped else _STATES[:4]
    steps = [
        dm.Threshold(value=None if value == 0 else float(value), color=color)
        for value, (_, color) in enumerate(states)
    ]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def thresholds(base: str, *steps: tuple[float, str]) -> db.ThresholdsConfig:
    """Absolute thresholds: `base` colour below the first step."""
    points = [dm.Threshold(value=None, color=base)]
    points += [dm.Threshold(value=value, color=color) for value, color in steps]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(points)


def nan_mapping(text: str) -> dm.ValueMapping:
    return dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NA_N, result=dm.ValueMappingResult(text=text)
        )
    )


def dashboard_url(uid: str, *params: str) -> str:
    """A link to another lakeprobe dashboard keeping the datasource and the time range."""
    query = "&".join([*params, "${datasource:queryparam}", "${__url_time_range}"])
    return f"/d/{uid}?{query}"


def data_link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).url(url)


def _row_link(title: str, uid: str, fields: Sequence[str]) -> db.DashboardLink:
    params = [f"var-{field}=${{__data.fields.{field}}}" for field in fields]
    return data_link(title, dashboard_url(uid, *params))


def endpoint_link() -> db.DashboardLink:
    """From a table row with site, endpoint, probe, protocol columns to the endpoint detail."""
    return _row_link("Endpoint detail", "lakeprobe-endpoint", ENDPOINT_LABELS)


def pair_link() -> db.DashboardLink:
    """From a table row with the pair label columns to the pair detail."""
    return _row_link("Pair detail", "lakeprobe-pair", PAIR_LABELS)


# A table cell coloured by its value's mapping or threshold (field override value).
COLOR_CELL = {"type": "color-background"}


def override(
    name: str, properties: dict[str, object]
) -> cogbuilder.Builder[dm.DashboardFieldConfigSourceOverrides]:
    """A by-name field override: {"unit": "s", "custom.width": 90, ...}."""
    values = [dm.DynamicConfigValue(id_val=key, value=value) for key, value in properties.items()]
    matcher = dm.MatcherConfig(id_val="byName", options=name)
    return db.DashboardFieldConfigSourceOverrides().matcher(matcher).properties(values)


def organize(rename: dict[str, str] | None = None) -> dm.DataTransformerConfig:
    """Hide the columns nobody needs in a table of series (the Time of an instant query, the
    metric name, Prometheus' job and instance) and rename the value columns."""
    hidden = ("Time", "__name__", "job", "instance")
    options = {"excludeByName": dict.fromkeys(hidden, True), "renameByName": rename or {}}
    return dm.DataTransformerConfig(id_val="organize", options=options)


def grouping_to_matrix(row_field: str, column_field: str) -> dm.DataTransformerConfig:
    """One row per `row_field` value, one column per `column_field` value, cells = Value.
    The first column is named "<row_field>\\<column_field>"; missing cells are null."""
    options = {
        "rowField": row_field,
        "columnField": column_field,
        "valueField": "Value",
        "emptyValue": "null",
    }
    return dm.DataTransformerConfig(id_val="groupingToMatrix", options=options)


def merge() -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val="merge", options={})


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with the common settings and a menu of the other lakeprobe dashboards."""
    others = (
        db.DashboardLink("lakeprobe")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .keep_time(True)
    )
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(others)
    )


def number_panels(board: dm.Dashboard) -> dm.Dashboard:
    """Give every panel and row a stable id (1, 2, ... in layout order); the SDK leaves them
    unset (rows get 0), and Grafana would otherwise number them itself on every load."""
    next_id = 1
    for panel in board.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1
    return board
