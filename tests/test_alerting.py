"""The alerting files stay valid and complete: the Prometheus rules pass promtool's checks and
their own unit tests, every alert is labelled, annotated, tested and has a runbook section,
and the example Alertmanager config is valid and routes as documented.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages,
promql-parser from the venv. Without them these tests skip, except under CI=true, where they
fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from lakeprobe.probes.core.outcome import Reason

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerting" / "lakeprobe-rules.yaml"
RULE_TESTS = ROOT / "alerting" / "lakeprobe-rules.test.yaml"
ALERTMANAGER = ROOT / "alerting" / "alertmanager.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

SEVERITIES = {"page", "ticket"}
ANNOTATIONS = ("summary", "description", "runbook_url")
# Alerts about lakeprobe itself carry no `site` (documented in the rules file's header and in
# docs/runbooks.md, "Conventions").
DAEMON_ALERTS = {
    "LakeprobeExporterDown",
    "LakeprobeConfigReloadFailed",
    "LakeprobeProbeBugs",
    "LakeprobeCopyThreadsAbandoned",
    "LakeprobeSchedulerOverloaded",
}


def unavailable(what: str) -> NoReturn:
    """Skip locally; fail under CI, where a missing tool must never pass as a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (required under CI=true)")
    pytest.skip(what)


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not found: install the Debian package {package}")
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> Iterator[dict[str, Any]]:
    """Every rule (recording and alerting) of the rules file."""
    for group in load(RULES)["groups"]:
        yield from group["rules"]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def expected_alerts() -> dict[str, list[list[dict[str, Any]]]]:
    """For each alert name, the `exp_alerts` lists of its promtool cases ([] = silent)."""
    cases: dict[str, list[list[dict[str, Any]]]] = {}
    for test in load(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives headings: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} +(.+)", line)
        if heading and not fenced:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(slug.replace(" ", "-"))
    return anchors


def test_promtool_check_rules() -> None:
    """The rules file is valid, with no duplicate rules (lint errors are fatal)."""
    result = run(tool("promtool", "prometheus"), "check", "rules", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run(tool("promtool", "prometheus"), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    result = run(tool("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        pytest.param(
            "alertname=LakeprobeEndpointFailing severity=page site=SITE-A",
            "site-a-page,depops-page",
            id="page-for-a-site",
        ),
        pytest.param(
            "alertname=LakeprobeTokenAuthzViolation severity=page site=SITE-B",
            "security,site-b-page,depops-page",
            id="authz-violation",
        ),
        pytest.param(
            "alertname=LakeprobeEndpointFailing severity=page site=ELSEWHERE",
            "depops-page",
            id="page-for-a-site-without-team",
        ),
        pytest.param(
            "alertname=LakeprobeExporterDown severity=page job=lakeprobe",
            "depops-page",
            id="page-about-lakeprobe",
        ),
        pytest.param(
            "alertname=LakeprobeTransferPairFailing severity=ticket site=SITE-B",
            "site-b-ticket,depops-ticket",
            id="ticket-for-a-site",
        ),
        pytest.param(
            "alertname=LakeprobeProbeStale severity=ticket site=SITE-A",
            "depops-ticket",
            id="stale-not-for-the-site",
        ),
        pytest.param(
            "alertname=LakeprobeProbeBugs severity=ticket job=lakeprobe",
            "depops-ticket",
            id="ticket-about-lakeprobe",
        ),
    ],
)
def test_alertmanager_routes(labels: str, receivers: str) -> None:
    """Pages reach DepOps and the site's on-call, tickets the queues, authz also security."""
    amtool = tool("amtool", "prometheus-alertmanager")
    result = run(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels.split()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


@pytest.mark.parametrize("path", [ALERTMANAGER, RULES], ids=lambda path: path.name)
def test_alert_names_referenced_exist(path: Path) -> None:
    """Routes, inhibit rules and ALERTS{alertname=...} selectors in the rules name alerts
    that exist: a rename would otherwise break them silently."""
    names = {rule["alert"] for rule in alert_rules()}
    referenced = {
        name
        for pattern in re.findall(r'alertname[!=~]{1,2}"([^"]+)"', path.read_text(encoding="utf-8"))
        for name in pattern.split("|")
    }
    assert referenced, f"no alertname matchers found in {path.name}"
    assert referenced <= names, f"unknown alerts in {path.name}: {referenced - names}"


def test_every_alert_has_severity_and_annotations() -> None:
    problems = []
    for rule in alert_rules():
        name, labels = rule["alert"], rule.get("labels", {})
        annotations = rule.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {labels.get('severity')!r} not in {SEVERITIES}")
        problems += [f"{name}: no {key}" for key in ANNOTATIONS if not annotations.get(key)]
    assert not problems, "\n".join(problems)


def test_every_alert_fires_and_stays_silent_in_promtool_tests() -> None:
    """Each alert has a firing case and a silent one; the expected alerts of every storage
    alert carry `site` (promtool checks labels exactly, so this checks the rules)."""
    cases = expected_alerts()
    problems = []
    for name in sorted({rule["alert"] for rule in alert_rules()}):
        firing = [alert for exp in cases.get(name, []) for alert in exp]
        if not firing:
            problems.append(f"{name}: no promtool case where it fires")
        if [] not in cases.get(name, []):
            problems.append(f"{name}: no promtool case where it stays silent")
        if name not in DAEMON_ALERTS:
            problems += [
                f"{name}: expected alert without site: {alert['exp_labels']}"
                for alert in firing
                if "site" not in alert["exp_labels"]
            ]
    assert not problems, "\n".join(problems)


def test_daemon_alert_exemptions_are_real_alerts() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= DAEMON_ALERTS


def test_runbook_urls_point_at_existing_sections() -> None:
    """runbook_url ends in docs/runbooks.md#<alert name in lower case>, a heading there."""
    anchors = markdown_anchors(RUNBOOKS.read_text(encoding="utf-8"))
    problems = []
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        expected = f"docs/runbooks.md#{rule['alert'].lower()}"
        if not url.endswith(expected):
            problems.append(f"{rule['alert']}: runbook_url {url} does not end in {expected}")
        elif url.rpartition("#")[2] not in anchors:
            problems.append(f"{rule['alert']}: no section {url.rpartition('#')[2]} in runbooks")
    assert not problems, "\n".join(problems)


def test_runbook_links_resolve() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= markdown_anchors(text)


def test_runbook_covers_every_failure_reason() -> None:
    """The reasons are a closed set: a new one needs its line in docs/runbooks.md."""
    text = RUNBOOKS.read_text(encoding="utf-8")
    missing = [reason.value for reason in Reason if f"| `{reason.value}` |" not in text]
    assert not missing, f"reasons without a row in docs/runbooks.md: {missing}"


def test_rule_expressions_parse_with_promql_parser() -> None:
    """A second, independent PromQL parser agrees that every expression is valid."""
    try:
        parser = importlib.import_module("promql_parser")
    except ImportError:
        unavailable("promql-parser is not installed in the venv")
    problems = []
    for rule in rules():
        try:
            parser.parse(rule["expr"])
        except ValueError as error:
            problems.append(f"{rule.get('alert') or rule.get('record')}: {error}")
    assert not problems, "\n".join(problems)
