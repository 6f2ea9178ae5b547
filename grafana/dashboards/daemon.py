"""The overview's daemon health row: scrape up, config reloads, bugs, scheduler lag, threads."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from .common import Q, last_value, sel, thresholds, with_queries

JOB = 'job=~"$job"'


def _up_down(title: str, expr: str, texts: tuple[str, str], description: str) -> stat.Panel:
    up, down = texts
    mapping = dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text=down, color="red", index=0),
            "1": dm.ValueMappingResult(text=up, color="green", index=1),
        }
    )
    panel = (
        stat.Panel()
        .reduce_options(last_value())
        .title(title)
        .description(description)
        .height(4)
        .span(8)
        .mappings([mapping])
        .thresholds(thresholds("red", (1, "green")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    return with_queries(panel, [Q(expr, "{{instance}}")], instant=True)


def _graph(title: str, unit: str, queries: list[Q], *, bars: bool = False) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .height(8)
        .span(12)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST))
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return with_queries(panel, queries)


def _lag_quantile(q: float) -> Q:
    buckets = sel("lakeprobe_scheduler_lag_seconds_bucket", JOB)
    expr = f"histogram_quantile({q}, sum by (instance, le) (rate({buckets}[$__rate_interval])))"
    return Q(expr, f"p{round(q * 100)} {{{{instance}}}}")


def _targets() -> stat.Panel:
    panel = (
        stat.Panel()
        .reduce_options(last_value())
        .title("Targets")
        .description("Configured (probe, endpoint) and (probe, pair) targets per daemon.")
        .height(4)
        .span(8)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    return with_queries(panel, [Q(sel("lakeprobe_targets", JOB), "{{instance}}")], instant=True)


def _panels() -> list[stat.Panel | timeseries.Panel]:
    exceptions = sel("lakeprobe_exceptions_total", JOB, 'probe=~"$probe"')
    missed = sel("lakeprobe_scheduler_missed_runs_total", JOB, 'probe=~"$probe"')
    by_exception = "sum by (instance, probe, exception)"
    return [
        _up_down(
            "Daemons scraped",
            sel("up", JOB),
            ("UP", "DOWN"),
            "Prometheus' `up` for the lakeprobe jobs: DOWN means the daemon's metrics are stale.",
        ),
        _up_down(
            "Configuration",
            sel("lakeprobe_config_last_reload_successful", JOB),
            ("LOADED", "RELOAD FAILED"),
            "A failed reload keeps the previous configuration running: fix the file, reload.",
        ),
        _targets(),
        _graph(
            "Exceptions (bugs in probes)",
            "short",
            [
                Q(
                    f"{by_exception} (increase({exceptions}[$__rate_interval]))",
                    "{{probe}} {{exception}} {{instance}}",
                )
            ],
            bars=True,
        ),
        _graph(
            "Scheduler lag",
            "s",
            [
                _lag_quantile(0.5),
                _lag_quantile(0.99),
                Q(
                    sel("lakeprobe_scheduler_oldest_waiting_seconds", JOB),
                    "oldest waiting {{instance}}",
                ),
            ],
        ),
        _graph(
            "Runs in flight, waiting and missed",
            "short",
            [
                Q(sel("lakeprobe_runs_in_flight", JOB), "in flight {{instance}}"),
                Q(sel("lakeprobe_scheduler_waiting_runs", JOB), "waiting {{instance}}"),
                Q(sel("lakeprobe_scheduler_hung_targets", JOB), "hung targets {{instance}}"),
                Q(
                    f"sum by (instance, cause) (increase({missed}[$__rate_interval]))",
                    "missed ({{cause}}) {{instance}}",
                ),
            ],
        ),
        _graph(
            "Copy threads",
            "short",
            [
                Q(sel("lakeprobe_copy_threads_busy", JOB), "busy {{instance}}"),
                Q(sel("lakeprobe_copy_threads_abandoned", JOB), "abandoned {{instance}}"),
            ],
        ),
    ]


def daemon_row(board: db.Dashboard) -> db.Dashboard:
    """Append the daemon health row (uses the `job` and `probe` variables)."""
    board = board.with_row(db.Row("Daemon health"))
    for panel in _panels():
        board = board.with_panel(panel)
    return board
