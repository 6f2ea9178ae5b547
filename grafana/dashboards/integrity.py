"""Integrity: the fixity probe's canaries (by state, age of their last verification) and the
corruption probe's verdict per layer (the lakeprobe_fixity_* and lakeprobe_corruption_*
series, docs/integrity.md)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import statetimeline, table
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from .common import (
    COLOR_CELL,
    PanelBuilder,
    Q,
    datasource_variable,
    endpoint_link,
    grouping_to_matrix,
    label_variable,
    new_dashboard,
    override,
    sel,
    status_mappings,
    status_thresholds,
    thresholds,
    with_queries,
)
from .panels import graph, instant_table

UID = "lakeprobe-integrity"
TARGET = (
    'site=~"$site"',
    'endpoint=~"$endpoint"',
    'probe=~"$probe"',
    'protocol=~"$protocol"',
)
LEGEND = "{{site}}/{{endpoint}}"
IDENTITY = "site, endpoint, probe, protocol"
OLDEST = "lakeprobe_fixity_oldest_verification_timestamp_seconds"
PER_CANARY = "lakeprobe_fixity_canary_verification_timestamp_seconds"
VERDICT = "lakeprobe_corruption_verdict"
# Only fixity and corruption targets have these series: the variables list those only.
INTEGRITY_SERIES = f'{{__name__=~"{OLDEST}|{VERDICT}"}}'
# lakeprobe_fixity_canaries{state}: the columns of the canary table, in order. A count of the
# bad states above zero is red.
STATES = ("ok", "corrupted", "stale", "lost", "unverified")
BAD_STATES = ("corrupted", "stale", "lost")
# The corruption probe's Verdict values (probes/integrity/injection.py).
_VERDICTS = (
    ("detected", "green"),
    ("undetected", "yellow"),
    ("left behind", "red"),
    ("error", "#8e8e8e"),
)


def verdict_mappings() -> list[dm.ValueMapping]:
    options = {
        str(value): dm.ValueMappingResult(text=text, color=color, index=value)
        for value, (text, color) in enumerate(_VERDICTS)
    }
    return [dm.ValueMap(options=options)]


def _reason_joined(extra: str = "") -> str:
    """The status per target with the last run's reason as a label (the reason series joined
    by its labels), as the tape dashboard does."""
    labels = "job, instance, probe, site, endpoint, protocol"
    status = sel("lakeprobe_probe_status", *TARGET)
    reason = sel("lakeprobe_probe_reason", *TARGET)
    joined = f"{status} * on ({labels}) group_left (reason) ({reason} == 1)"
    if extra:
        joined += f" and on ({labels}) {extra}"
    return f"max by ({IDENTITY}, reason) ({joined})"


def _status_cell() -> dict[str, object]:
    return {
        "mappings": status_mappings(),
        "thresholds": status_thresholds().build(),
        "custom.cellOptions": COLOR_CELL,
    }


def _canary_table() -> PanelBuilder:
    """One row per fixity target: status and reason, canaries per state, oldest age."""
    by_state = [sel("lakeprobe_fixity_canaries", *TARGET, f'state="{s}"') for s in STATES]
    canaries = [Q(f"max by ({IDENTITY}) ({selector})") for selector in by_state]
    queries = [
        Q(_reason_joined(OLDEST)),
        *canaries,
        Q(f"max by ({IDENTITY}) (time() - {sel(OLDEST, *TARGET)})"),
    ]
    columns = ["Status", *(s.capitalize() for s in STATES), "Oldest verification"]
    rename = {f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(columns)}
    bad = {
        "thresholds": thresholds("transparent", (1, "red")).build(),
        "custom.cellOptions": COLOR_CELL,
    }
    return instant_table(
        "Fixity: status, canaries by state, oldest verification",
        queries,
        rename=rename,
        links=[endpoint_link()],
        span=24,
        description="Per endpoint the last run's status and reason, how many canaries its "
        "last verification found in each state (corrupted, stale, lost in red) and how long "
        "ago the least recently verified canary was verified. A row opens the endpoint detail.",
    ).overrides(
        [
            override("Status", _status_cell()),
            *(override(state.capitalize(), bad) for state in BAD_STATES),
            override("Oldest verification", {"unit": "s"}),
        ]
    )


def _fixity_panels() -> list[PanelBuilder]:
    interval = sel("lakeprobe_probe_interval_seconds", *TARGET)
    per_canary = instant_table(
        "Age of each canary's last verification",
        [Q(f"time() - {sel(PER_CANARY, *TARGET)}")],
        rename={"Value": "Age"},
        description="Per canary (<index>-<size> bytes): time since its last verification, "
        "since its writing if never verified. A rotation verifies per_run canaries a run.",
    ).overrides([override("Age", {"unit": "s"})])
    return [
        graph(
            "Oldest verification age, in intervals",
            "short",
            [
                Q(
                    f"(time() - {sel(OLDEST, *TARGET)}) / on (job, instance, {IDENTITY}) "
                    f"{interval}",
                    LEGEND,
                )
            ],
            description="Time since the least recently verified canary's verification, in "
            "probe intervals. A healthy rotation saws between 1 and ceil(canaries / per_run); "
            "a line that keeps rising: nothing is verified (LakeprobeCanariesNotVerified).",
        ),
        per_canary,
    ]


def _verdict_matrix() -> table.Panel:
    """Rows site/endpoint, columns layer, cells the verdict on its colour."""
    verdicts = f"max by (site, endpoint, layer) ({sel(VERDICT, *TARGET)})"
    expr = f'label_join({verdicts}, "target", "/", "site", "endpoint")'
    panel = (
        table.Panel()
        .title("Corruption: verdict per layer")
        .description(
            "The last run's verdict per endpoint and layer: detected (rejected, nothing left), "
            "undetected (stored as intact: a capability finding), left behind (rejected, yet "
            "the file was there), error (the request failed). Empty: the layer was not run."
        )
        .height(8)
        .span(12)
        .with_transformation(grouping_to_matrix("target", "layer"))
        .cell_options(common.TableColoredBackgroundCellOptions())
        .mappings(verdict_mappings())
        .overrides(
            [
                override(
                    "target\\layer",
                    {"displayName": "endpoint \\ layer", "custom.cellOptions": {"type": "auto"}},
                )
            ]
        )
    )
    return with_queries(panel, [Q(expr)], table=True)


def _verdict_timeline() -> statetimeline.Panel:
    panel = (
        statetimeline.Panel()
        .title("Corruption verdicts over time")
        .description("One lane per endpoint and layer; a gap: the layer did not run then.")
        .height(8)
        .span(24)
        .mappings(verdict_mappings())
        .merge_values(True)
        .show_value(common.VisibilityMode.NEVER)
    )
    verdicts = f"max by (site, endpoint, layer) ({sel(VERDICT, *TARGET)})"
    return with_queries(panel, [Q(verdicts, f"{LEGEND} {{{{layer}}}}")])


def _corruption_panels() -> list[PanelBuilder]:
    status = instant_table(
        "Corruption probe: status and reason",
        [Q(_reason_joined(VERDICT))],
        rename={"Value": "Status"},
        links=[endpoint_link()],
        description="The last run per endpoint: corruption_undetected is WARNING unless the "
        "endpoint's undetected_status says otherwise; corrupt_left_behind is CRITICAL.",
    ).overrides([override("Status", _status_cell())])
    return [_verdict_matrix(), status, _verdict_timeline()]


def _failures() -> PanelBuilder:
    failures = sel("lakeprobe_probe_failures_total", *TARGET)
    marker = f"group by (job, instance, {IDENTITY}) ({INTEGRITY_SERIES})"
    expr = (
        "sum by (site, endpoint, probe, reason) "
        f"(increase({failures}[$__rate_interval]) and on (job, instance, {IDENTITY}) {marker})"
    )
    return graph(
        "Integrity failures by reason",
        "short",
        [Q(expr, f"{LEGEND} {{{{probe}}}} {{{{reason}}}}")],
        bars=True,
        span=24,
    )


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: integrity",
        "Fixity canaries by state and the age of their last verification; the corruption "
        "probe's verdict per endpoint and layer; integrity failures by reason.",
    )
    scoped = f'{{__name__=~"{OLDEST}|{VERDICT}", site=~"$site"}}'
    for variable in (
        datasource_variable(),
        label_variable("site", INTEGRITY_SERIES),
        label_variable("endpoint", scoped),
        label_variable("probe", scoped[:-1] + ', endpoint=~"$endpoint"}'),
        label_variable("protocol", scoped[:-1] + ', endpoint=~"$endpoint"}'),
    ):
        board = board.with_variable(variable)
    board = board.with_row(db.Row("Fixity canaries")).with_panel(_canary_table())
    for panel in _fixity_panels():
        board = board.with_panel(panel)
    board = board.with_row(db.Row("Corruption injection"))
    for panel in _corruption_panels():
        board = board.with_panel(panel)
    return board.with_row(db.Row("Failures")).with_panel(_failures())
