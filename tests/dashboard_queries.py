"""Every PromQL query of the committed Grafana dashboards (grafana/json/*.json), ready to run.

For tests that check the dashboards statically (tests/test_dashboards.py) and against a real
Prometheus (the end-to-end test):

    from dashboard_queries import all_panel_queries, all_variable_queries, substitute

    for uid, title, expr in all_panel_queries({"site": "SITE-A"}):
        ...  # GET /api/v1/query?query=expr

Grafana variables are replaced by the given values; a variable without a value becomes `.*`
(every dashboard uses its variables in regex matchers, `label=~"$var"`, so `.*` means All).
A list value becomes a regex alternation, as Grafana formats a multi-value selection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

JSON_DIR = Path(__file__).resolve().parents[1] / "grafana" / "json"

Values = Mapping[str, str | Sequence[str]]

# Grafana's built-in interval variables, with values fit for a short real Prometheus run.
BUILTINS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
ALL = ".*"

# ${name}, ${name:format}, $name, [[name]] (deprecated but still accepted by Grafana).
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w-]+)?\]\]")
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}])")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard_uid: str
    panel_title: str
    ref_id: str
    expr: str  # as in the JSON, with the Grafana variables
    instant: bool


def _format(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    # A multi-value selection: (a|b), regex characters escaped inside the PromQL string.
    return "(" + "|".join(_REGEX_SPECIAL.sub(r"\\\\\1", v) for v in value) + ")"


def substitute(expr: str, values: Values | None = None, *, default: str | None = ALL) -> str:
    """Replace Grafana variables in `expr`: given `values` first, then the built-in intervals
    (BUILTINS), then `default` (None: raise KeyError naming the variable)."""
    given = dict(values or {})

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in given:
            return _format(given[name])
        if name in BUILTINS:
            return BUILTINS[name]
        if default is None:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return default

    return _VARIABLE.sub(replace, expr)


def load_dashboards(directory: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON for every committed dashboard."""
    boards = {}
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        boards[board["uid"]] = board
    return boards


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows and the panels inside collapsed rows included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(directory: Path = JSON_DIR) -> list[PanelQuery]:
    """Every panel query of every dashboard, unsubstituted."""
    found = []
    for uid, board in load_dashboards(directory).items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                found.append(
                    PanelQuery(
                        uid,
                        panel.get("title", ""),
                        target.get("refId", ""),
                        target["expr"],
                        bool(target.get("instant")),
                    )
                )
    return found


def all_panel_queries(
    values: Values | None = None, directory: Path = JSON_DIR
) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) for every panel query, variables substituted."""
    return [
        (q.dashboard_uid, q.panel_title, substitute(q.expr, values))
        for q in panel_queries(directory)
    ]


def variable_selectors(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable name, series selector) of the dashboard's `label_values(selector, label)`
    query variables, unsubstituted."""
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"variable {variable['name']}: not a label_values query: {text!r}")
        if match["selector"]:
            yield variable["name"], match["selector"]


def all_variable_queries(
    values: Values | None = None, directory: Path = JSON_DIR
) -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, series selector) for every label_values variable,
    variables substituted: run them as /api/v1/series?match[]=selector (or as a query)."""
    return [
        (uid, name, substitute(selector, values))
        for uid, board in load_dashboards(directory).items()
        for name, selector in variable_selectors(board)
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a (substituted) PromQL expression selects. A `__name__` regex must be a
    plain alternation of names (`a|b`), so that renaming one of them is still noticed."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name:
            names.add(node.name)
        for matcher in node.matchers.matchers:
            if matcher.name != "__name__":
                continue
            parts = matcher.value.split("|")
            if matcher.op not in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.Re) or not all(
                re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", part) for part in parts
            ):
                raise ValueError(f"__name__ matcher must list metric names: {matcher}")
            names.update(parts)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
