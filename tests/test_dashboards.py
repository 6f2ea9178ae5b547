"""The Grafana dashboards (grafana/): generated JSON up to date, valid PromQL, exported metric
names only, no hard-coded datasource, working links between the dashboards."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from dashboard_queries import (
    JSON_DIR,
    PanelQuery,
    all_panel_queries,
    load_dashboards,
    metric_names,
    panel_queries,
    panels,
    substitute,
    variable_selectors,
)
from lakeprobe.exporter.families import FAMILIES_BY_PROBE_TYPE
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.tokenexpiry import NAME as TOKEN_EXPIRY
from lakeprobe.probes.core.context import NETWORK
from lakeprobe.probes.core.target import MODES
from lakeprobe.probes.registry import PAIR_PROBE_TYPES

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "grafana" / "generate.py"
GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"
UIDS = {
    "lakeprobe-overview",
    "lakeprobe-matrix",
    "lakeprobe-pair",
    "lakeprobe-endpoint",
    "lakeprobe-tokens",
    "lakeprobe-tape",
    "lakeprobe-integrity",
}
# Prometheus' own scrape health.
NOT_YET_EXPORTED = {"up"}
BOARDS = load_dashboards()
QUERIES = panel_queries()
VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)")
SAMPLE_VALUES = {
    "site": "SITE-A",
    "src_site": "SITE-A",
    "dst_site": "SITE-B",
    "endpoint": "webdav",
    "probe": ["webdav", "xrootd"],
    "protocol": "davs",
    "mode": "pull",
    "pull_probe": "http-tpc",
    "push_probe": "http-tpc",
    "network_probe": "perfsonar",
    "ip_version": "4",
    "job": "lakeprobe",
}


def _self_metric_names() -> set[str]:
    """Exposition names of the daemon's own metrics (exporter/selfmetrics.py)."""
    registry = CollectorRegistry()
    DaemonMetrics(registry)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
    }
    return {
        metric.name + suffix
        for metric in registry.collect()
        for suffix in suffixes.get(metric.type, ("",))
    }


def exported_metric_names() -> set[str]:
    """Every metric name lakeprobe exports: the golden /metrics names, the families of every
    probe type (exporter/families.py's table; a histogram as its three series), the token
    expiry gauge and the daemon's own metrics."""
    golden = {line.split("{", 1)[0] for line in GOLDEN.read_text().splitlines() if line}
    families = {
        family.name + suffix
        for family in {f for row in FAMILIES_BY_PROBE_TYPE.values() for f in row.results}
        for suffix in (("_bucket", "_sum", "_count") if family.kind == "histogram" else ("",))
    }
    return golden | families | {TOKEN_EXPIRY} | _self_metric_names()


def _query_id(query: PanelQuery) -> str:
    return f"{query.dashboard_uid}:{query.panel_title}:{query.ref_id}"


def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _links(board: dict[str, Any]) -> Iterator[str]:
    for panel in panels(board):
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
            yield link["url"]


def test_committed_json_is_what_the_generator_writes() -> None:
    """grafana/json/ holds exactly the generator's output; regenerate with
    `.venv/bin/python grafana/generate.py` after changing grafana/dashboards/."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert set(BOARDS) == UIDS


def test_check_fails_on_drift_and_on_stray_files(tmp_path: Path) -> None:
    """--check exits 1 when a committed file was edited by hand or no dashboard writes it."""
    shutil.copytree(JSON_DIR, tmp_path, dirs_exist_ok=True)
    command = [sys.executable, str(GENERATOR), "--check", "--json-dir", str(tmp_path)]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    edited = tmp_path / "lakeprobe-overview.json"
    edited.write_text(edited.read_text().replace("lakeprobe_probe_status", "renamed_status"))
    drift = subprocess.run(command, capture_output=True, text=True, check=False)
    assert drift.returncode == 1
    assert "renamed_status" in drift.stderr
    shutil.copy(JSON_DIR / "lakeprobe-overview.json", edited)
    (tmp_path / "old-dashboard.json").write_text("{}")
    stray = subprocess.run(command, capture_output=True, text=True, check=False)
    assert stray.returncode == 1
    assert "old-dashboard.json" in stray.stderr


@pytest.mark.parametrize("values", [{}, SAMPLE_VALUES], ids=["all", "selected"])
@pytest.mark.parametrize("query", QUERIES, ids=_query_id)
def test_panel_query_parses(query: PanelQuery, values: dict[str, Any]) -> None:
    """Every panel query is valid PromQL once Grafana has filled in its variables."""
    promql_parser.parse(substitute(query.expr, values, default=None if values else ".*"))


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_variable_queries_parse(uid: str) -> None:
    """label_values(selector, label) variables select with valid PromQL selectors."""
    selectors = list(variable_selectors(BOARDS[uid]))
    assert selectors
    for _, selector in selectors:
        promql_parser.parse(substitute(selector, SAMPLE_VALUES))


def test_queries_use_only_exported_metrics() -> None:
    """A renamed or removed metric breaks this test, not the DepOps team's Grafana."""
    known = exported_metric_names() | NOT_YET_EXPORTED
    used: dict[str, set[str]] = {}
    for uid, title, expr in all_panel_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"{uid}: {title}")
    for board in BOARDS.values():
        for name, selector in variable_selectors(board):
            for metric in metric_names(substitute(selector)):
                used.setdefault(metric, set()).add(f"{board['uid']}: ${name}")
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, f"metrics lakeprobe does not export: {unknown}"


def test_metric_names_catch_a_rename() -> None:
    """The name extraction sees selectors inside functions, subqueries and __name__ lists."""
    expr = (
        'sum(rate(a_total{x="1"}[5m])) / on (x) b'
        ' or {__name__=~"c|d"} > bool count_over_time(e[1m:])'
    )
    assert metric_names(expr) == {"a_total", "b", "c", "d", "e"}
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"lakeprobe_.*"}')


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_no_hard_coded_datasource(uid: str) -> None:
    """Every datasource reference is the ${datasource} variable, of type prometheus."""
    board = BOARDS[uid]
    references = [node["datasource"] for node in _walk(board) if "datasource" in node]
    assert references
    for reference in references:
        assert reference == {"type": "prometheus", "uid": "${datasource}"}, reference
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel.get("datasource") == references[0], panel["title"]
            assert all(target.get("datasource") for target in panel["targets"]), panel["title"]
    datasource = _variables(board)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_variables_are_defined_and_filter(uid: str) -> None:
    """Each dashboard offers datasource, probe, protocol and site (src/dst site on the pair
    page), and every $variable a query or link uses is defined on that dashboard."""
    board = BOARDS[uid]
    defined = set(_variables(board))
    sites = {"src_site", "dst_site"} if uid == "lakeprobe-pair" else {"site"}
    assert {"datasource", "probe", "protocol"} | sites <= defined
    texts = [q.expr for q in QUERIES if q.dashboard_uid == uid]
    texts += [selector for _, selector in variable_selectors(board)]
    texts += [panel.get("title", "") for panel in panels(board)] + list(_links(board))
    used = {
        next(g for g in m.groups() if g)
        for text in texts
        for m in VARIABLE_REFERENCE.finditer(text)
    }
    used = {name for name in used if not name.startswith("__")}
    assert used <= defined, used - defined


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_panels_are_laid_out_and_identified(uid: str) -> None:
    """Unique ids and titles, every query with its own refId, no overlapping panels."""
    board = BOARDS[uid]
    everything = list(panels(board))
    assert len({p["id"] for p in everything}) == len(everything)
    titles = [p["title"] for p in everything if p["type"] != "row"]
    assert len(set(titles)) == len(titles), titles
    cells: set[tuple[int, int]] = set()
    for panel in everything:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(set(refs)) == len(refs), panel["title"]
        assert all(refs), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_links_open_dashboards_with_their_variables(uid: str) -> None:
    """Data links go to a lakeprobe dashboard and set only variables it defines."""
    for url in _links(BOARDS[uid]):
        parts = urlsplit(url)
        target = parts.path.removeprefix("/d/")
        assert target in BOARDS, url
        names = {
            key.removeprefix("var-") for key, _ in parse_qsl(parts.query) if key.startswith("var-")
        }
        assert names <= set(_variables(BOARDS[target])), url


def test_matrix_is_source_by_destination_for_every_pair_probe_mode() -> None:
    """One repeated row per mode, three src_site x dst_site matrices in it, cells linking to
    the pair detail with the source, destination, probe and mode set."""
    board = BOARDS["lakeprobe-matrix"]
    transfers = [t for t in PAIR_PROBE_TYPES.values() if t.family != NETWORK]  # IP versions
    pairwise_modes = {mode for t in transfers for mode in t.modes}
    rows = [p for p in panels(board) if p["type"] == "row"]
    assert {row["repeat"] for row in rows} == {f"{mode}_probe" for mode in MODES} | {"ip_version"}
    assert pairwise_modes <= set(MODES)
    matrices = [p for p in panels(board) if p["type"] == "table" and not _network(p)]
    assert len(matrices) == 3 * len(MODES)
    for panel in matrices:
        (grouping,) = [t for t in panel["transformations"] if t["id"] == "groupingToMatrix"]
        assert (grouping["options"]["rowField"], grouping["options"]["columnField"]) == (
            "src_site",
            "dst_site",
        )
        (target,) = panel["targets"]
        assert "by (src_site, dst_site)" in target["expr"]
        assert (target["format"], target["instant"]) == ("table", True)
        (link,) = panel["fieldConfig"]["defaults"]["links"]
        query = dict(parse_qsl(urlsplit(link["url"]).query))
        assert query["var-src_site"] == "${__data.fields[0]}"
        assert query["var-dst_site"] == "${__field.name}"
        assert {"var-probe", "var-mode"} <= query.keys()


def _network(panel: dict[str, Any]) -> bool:
    return any("lakeprobe_network_" in target["expr"] for target in panel.get("targets", []))


def test_network_matrix_beside_the_transfer_matrix() -> None:
    """Three network matrices (throughput, loss, measurement age) in a row repeated per IP
    version, src_site x dst_site over the transfer matrix's pairs too (same sites), a stale
    pair shown as "stale" (-1 mapped), never as 0, cells linking to the pair detail."""
    board = BOARDS["lakeprobe-matrix"]
    matrices = [p for p in panels(board) if p["type"] == "table" and _network(p)]
    assert [p["title"].split(":")[0] for p in matrices] == [
        "Network throughput",
        "Network packet loss",
        "Network measurement age",
    ]
    for panel in matrices:
        (grouping,) = [t for t in panel["transformations"] if t["id"] == "groupingToMatrix"]
        assert (grouping["options"]["rowField"], grouping["options"]["columnField"]) == (
            "src_site",
            "dst_site",
        )
        (target,) = panel["targets"]
        assert "lakeprobe_transfer_status" in target["expr"]  # the transfer matrix's sites
        assert 'reason="measurement_stale"' in target["expr"]
        mapped = {
            option["text"]
            for mapping in panel["fieldConfig"]["defaults"]["mappings"]
            for option in (
                [mapping["options"]["result"]]
                if mapping["type"] == "special"
                else mapping["options"].values()
            )
        }
        assert "no network data" in mapped
        assert mapped & {"stale", "none in window"}
        (link,) = panel["fieldConfig"]["defaults"]["links"]
        query = dict(parse_qsl(urlsplit(link["url"]).query))
        assert query["var-src_site"] == "${__data.fields[0]}"
        assert query["var-ip_version"] == "${ip_version}"
    throughput = matrices[0]
    assert throughput["fieldConfig"]["defaults"]["unit"] == "bps"
    assert "unless on(probe, src_site, dst_site, ip_version)" in throughput["targets"][0]["expr"]


def test_provisioning_points_at_prometheus_and_the_json() -> None:
    """A plain Grafana gets a Prometheus datasource from $PROMETHEUS_URL and the dashboards
    from a file provider."""
    provisioning = ROOT / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "lakeprobe.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "${PROMETHEUS_URL}")
    providers = yaml.safe_load((provisioning / "dashboards" / "lakeprobe.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


def test_substitute_formats_like_grafana() -> None:
    """Single values go in as they are, lists as an escaped alternation, built-in intervals
    get durations, unknown variables `.*` (All), or an error when asked."""
    expr = 'rate(m{site=~"$site", probe=~"${probe}", endpoint=~"$endpoint"}[$__rate_interval])'
    assert substitute(expr, {"site": "SITE-A", "probe": ["a.b", "c"]}) == (
        'rate(m{site=~"SITE-A", probe=~"(a\\\\.b|c)", endpoint=~".*"}[1m])'
    )
    with pytest.raises(KeyError, match="endpoint"):
        substitute(expr, {"site": "A", "probe": "b"}, default=None)
    assert json.loads(json.dumps(all_panel_queries()))
