"""Token authorization compliance: the WLCG JWT cases of the token-authz probe per endpoint.

The probe's steps are the compliance cases (no_token_read, read_scope_write, path_prefix_ab,
...); a case whose must-deny request was allowed fails the run with reason authz_violation.
`lakeprobe_token_expiry_seconds{site,endpoint,probe,source}` tells how long the configured
token lasts. Tokens from a file or bearer-token discovery (source file, discovery) should last
days; OIDC tokens (source oidc) live minutes and lakeprobe renews them itself shortly before
they expire, so they are shown apart: only an expired one (renewal failing) is a problem.
The probe is picked by its configured name (the `probe` label), `token-authz` by default.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common

from .common import (
    COLOR_CELL,
    PanelBuilder,
    Q,
    dashboard_url,
    data_link,
    datasource_variable,
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
from .panels import graph, instant_table, number_stat, step_history

UID = "lakeprobe-tokens"
PROBE_NAME = "token-authz"
TARGET = (
    'probe=~"$probe"',
    'site=~"$site"',
    'endpoint=~"$endpoint"',
    'protocol=~"$protocol"',
)
TOKEN = ('site=~"$site"', 'endpoint=~"$endpoint"')
RENEWED_ELSEWHERE = 'source!="oidc"'  # token files and discovered tokens
RENEWED_BY_LAKEPROBE = 'source="oidc"'
EXPIRY_LEGEND = "{{site}}/{{endpoint}} ({{source}})"
VIOLATION = 'reason="authz_violation"'
DAY = 86400.0


def _expiry_thresholds() -> db.ThresholdsConfig:
    """Red under a day, orange under a week."""
    return thresholds("red", (DAY, "orange"), (7 * DAY, "green"))


def _renewal_thresholds() -> db.ThresholdsConfig:
    """OIDC tokens: red once expired (lakeprobe could not renew it), else green."""
    return thresholds("red", (0, "green"))


def _summary() -> list[PanelBuilder]:
    step_status = sel("lakeprobe_probe_step_status", *TARGET)
    return [
        number_stat(
            "Endpoints allowing what they must deny",
            [Q(f"count({sel('lakeprobe_probe_reason', *TARGET, VIOLATION)} == 1) or vector(0)")],
            "short",
            thresholds("green", (1, "red")),
            description="Last run ended with reason authz_violation: a security hole.",
        ),
        number_stat(
            "Endpoints failing compliance",
            [Q(f"count({sel('lakeprobe_probe_status', *TARGET)} >= 2) or vector(0)")],
            "short",
            thresholds("green", (1, "red")),
        ),
        number_stat(
            "Cases failing now",
            [Q(f"count(({step_status} >= 2) < 4) or vector(0)")],
            "short",
            thresholds("green", (1, "red")),
            description="CRITICAL or UNKNOWN cases over the selected endpoints (skipped excluded).",
        ),
        number_stat(
            "Soonest token expiry",
            [Q(f"min({sel('lakeprobe_token_expiry_seconds', *TOKEN, RENEWED_ELSEWHERE)})")],
            "s",
            _expiry_thresholds(),
            description="Token files and discovered tokens. OIDC tokens, which lakeprobe "
            "renews itself, are left out: see the OIDC tokens table.",
        ),
    ]


def _case_matrix() -> table.Panel:
    """Endpoints (site/endpoint) x cases, coloured by the case's status in the last run."""
    steps = sel("lakeprobe_probe_step_status", *TARGET)
    joined = f'label_join({steps}, "target", "/", "site", "endpoint")'
    panel = (
        table.Panel()
        .title("Cases per endpoint (last run)")
        .description("Rows: site/endpoint; columns: compliance cases. 4 = SKIPPED.")
        .height(10)
        .span(24)
        .with_transformation(grouping_to_matrix("target", "step"))
        .cell_options(common.TableColoredBackgroundCellOptions())
        .mappings(status_mappings(with_skipped=True))
        .thresholds(status_thresholds(with_skipped=True))
        .overrides(
            [
                override(
                    "target\\step",
                    {"displayName": "endpoint \\ case", "custom.cellOptions": {"type": "auto"}},
                )
            ]
        )
    )
    return with_queries(panel, [Q(f"max by (target, step) ({joined})")], table=True)


def _tables() -> list[PanelBuilder]:
    fields = ("site", "endpoint", "probe", "protocol")
    params = [f"var-{f}=${{__data.fields.{f}}}" for f in fields]
    link = data_link("Endpoint detail", dashboard_url("lakeprobe-endpoint", *params))
    sort = cb.TableSortByFieldState().display_name("Expires in").desc(False)
    return [
        _case_matrix(),
        instant_table(
            "Violations now",
            [Q(f"{sel('lakeprobe_probe_reason', *TARGET, VIOLATION)} == 1")],
            rename={"Value": "Violation"},
            links=[link],
            span=8,
        ),
        instant_table(
            "Token expiry",
            [Q(sel("lakeprobe_token_expiry_seconds", *TOKEN, RENEWED_ELSEWHERE))],
            rename={"Value": "Expires in"},
            span=8,
            description="Token files (source file) and bearer-token discovery (discovery).",
        )
        .overrides([override("Expires in", _expiry_cell(_expiry_thresholds()))])
        .sort_by([sort]),
        instant_table(
            "OIDC tokens",
            [Q(sel("lakeprobe_token_expiry_seconds", *TOKEN, RENEWED_BY_LAKEPROBE))],
            rename={"Value": "Expires in"},
            span=8,
            description="Issued to lakeprobe (client credentials) and renewed by it shortly "
            "before they expire. Expired (red): the issuer is down or refuses the client.",
        )
        .overrides([override("Expires in", _expiry_cell(_renewal_thresholds()))])
        .sort_by([sort]),
    ]


def _expiry_cell(colours: db.ThresholdsConfig) -> dict[str, object]:
    return {"unit": "s", "custom.cellOptions": COLOR_CELL, "thresholds": colours.build()}


def _history() -> list[PanelBuilder]:
    violations = sel("lakeprobe_probe_failures_total", *TARGET, VIOLATION)
    return [
        step_history(
            "Cases over time",
            [Q(sel("lakeprobe_probe_step_status", *TARGET), "{{site}}/{{endpoint}} {{step}}")],
        ),
        graph(
            "Violations",
            "short",
            [
                Q(
                    f"sum by (site, endpoint) (increase({violations}[$__rate_interval]))",
                    "{{site}}/{{endpoint}}",
                )
            ],
            bars=True,
        ),
        graph(
            "Token lifetime left",
            "s",
            [Q(sel("lakeprobe_token_expiry_seconds", *TOKEN), EXPIRY_LEGEND)],
        ),
    ]


def build() -> db.Dashboard:
    board = new_dashboard(
        UID,
        "lakeprobe: token authorization compliance",
        "WLCG JWT compliance cases per storage endpoint, authorization violations (an endpoint "
        "allowing what the token must not permit) and token expiry.",
    )
    for variable in (
        datasource_variable(),
        label_variable("probe", "lakeprobe_probe_step_status", multi=False, default=PROBE_NAME),
        label_variable("site", 'lakeprobe_probe_status{probe=~"$probe"}'),
        label_variable("endpoint", 'lakeprobe_probe_status{probe=~"$probe", site=~"$site"}'),
        label_variable("protocol", 'lakeprobe_probe_status{probe=~"$probe", site=~"$site"}'),
    ):
        board = board.with_variable(variable)
    sections = (("Compliance now", _summary() + _tables()), ("Over time", _history()))
    for title, panels in sections:
        board = board.with_row(db.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
