"""The Helm chart (helm/lakeprobe), checked offline for every ci/*-values.yaml scenario: it
renders with Helm's own engine and lints strictly, its manifests pass the Kubernetes 1.30
schemas, its values files pass values.schema.json and bad values are refused by name, the
rendered config passes `lakeprobe check-config`, the PrometheusRule passes the shipped promtool
tests, the StatefulSet's shards cover every target once, and the chart's copies of the rules
and dashboards match their sources.

helm-python-sdk, kubernetes-validate and check-jsonschema come from the `test` extra; promtool
from Debian's `prometheus` (missing: skipped locally, a failure under CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from lakeprobe.cli.main import main as lakeprobe_main
from lakeprobe.config.loader import parse_config
from lakeprobe.config.plan import Scope, build_plan
from lakeprobe.config.types import shard_of_host

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "lakeprobe"
SCHEMA = CHART / "values.schema.json"
SCENARIOS = sorted(path.stem.removesuffix("-values") for path in (CHART / "ci").glob("*.yaml"))
BIN = Path(sys.executable).parent
KUBE_VERSION = "1.30.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no schema in kubernetes-validate


def values_of(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text())
    return data


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's manifests for `values`, as Helm installs them."""
    rendered = helm.Chart.load(str(CHART)).render(
        values, name="lp", namespace="lakeprobe", is_install=True
    )
    return [
        doc
        for name, text in sorted(rendered.items())
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def run(*command: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scenarios_are_the_issue_s() -> None:
    """One values file per scenario the chart promises."""
    assert SCENARIOS == [
        "central-sharded",
        "existing-secret",
        "monitoring",
        "network-policy",
        "per-site",
    ]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_is_clean(scenario: str) -> None:
    """`helm lint --strict` finds nothing above INFO (the missing icon)."""
    result = helm.lint(
        str(CHART), values_of(scenario), strict=True, kube_version=f"v{KUBE_VERSION}"
    )
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_pass_kubernetes_schemas(scenario: str) -> None:
    """Every built-in object passes the Kubernetes 1.30 schemas strictly (unknown fields are
    errors); custom resources are checked by the tests below instead."""
    manifests = render(values_of(scenario))
    builtin = [m for m in manifests if m["kind"] not in CUSTOM_KINDS]
    text = yaml.safe_dump_all(builtin)
    result = run(BIN / "kubernetes-validate", "-k", KUBE_VERSION, "--strict", "-", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pod_is_locked_down(scenario: str) -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities, no API
    token, config and secrets as read-only files, health and readiness probes wired."""
    manifests = render(values_of(scenario))
    workload = next(m for m in manifests if m["kind"] in ("Deployment", "StatefulSet"))
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert not any("secretKeyRef" in json.dumps(env) for env in container.get("env", []))
    secrets = {v["name"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all(mounts[name]["readOnly"] for name in secrets)


def test_per_site_is_one_deployment_for_its_site() -> None:
    """mode site: one replica running --site, CA directory with X509_CERT_DIR, state claim."""
    manifests = render(values_of("per-site"))
    deployment = one(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert deployment["spec"]["replicas"] == 1
    assert "--site=SITE-A" in container["args"]
    assert env["X509_CERT_DIR"] == "/etc/grid-security/certificates"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one daemon per state dir
    assert one(manifests, "PersistentVolumeClaim")["spec"]["resources"]["requests"] == {
        "storage": "2Gi"
    }
    assert not [m for m in manifests if m["kind"] == "StatefulSet"]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "existing-secret"])
def test_rendered_config_passes_check_config(scenario: str, tmp_path: Path) -> None:
    """The ConfigMap holds a config lakeprobe accepts, listening on the container port and
    keeping state on the state volume; its checksum is on the pod template (config changes
    roll the pods)."""
    manifests = render(values_of(scenario))
    configmap = next(m for m in manifests if m["metadata"]["name"] == "lp-lakeprobe")
    text = configmap["data"]["lakeprobe.yaml"]
    path = tmp_path / "lakeprobe.yaml"
    path.write_text(text)
    assert lakeprobe_main(["check-config", str(path)]) == 0
    server = yaml.safe_load(text)["server"]
    assert server["listen"] == "0.0.0.0:9780"
    assert server["state_dir"] == "/var/lib/lakeprobe"
    workload = next(m for m in manifests if m["kind"] in ("Deployment", "StatefulSet"))
    assert "checksum/config" in workload["spec"]["template"]["metadata"]["annotations"]


def test_config_change_changes_checksum() -> None:
    """A values change of the config changes the pod template, so Kubernetes rolls the pods."""
    values = values_of("monitoring")
    before = one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    values["config"]["defaults"] = {"interval": "2m"}
    after = one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


def test_existing_secret_config_is_mounted_not_rendered() -> None:
    """configExistingSecretName: no ConfigMap, the Secret mounted as the config directory,
    token and OIDC client files as read-only Secret volumes."""
    manifests = render(values_of("existing-secret"))
    assert not [m for m in manifests if m["kind"] == "ConfigMap"]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"] == {"name": "config", "secret": {"secretName": "lakeprobe-config"}}
    assert volumes["site-a-token"]["secret"]["defaultMode"] == 0o400
    assert volumes["oidc-client"]["secret"]["items"][1] == {
        "key": "client-secret",
        "path": "client_secret",
    }
    assert volumes["ca-certificates"] == {
        "name": "ca-certificates",
        "secret": {"secretName": "grid-ca-certificates"},
    }


def test_shards_cover_every_target_once() -> None:
    """Pods lp-lakeprobe-0..N-1 each run `--shard hostname/N`; their shards together run
    every job of the central plan exactly once."""
    manifests = render(values_of("central-sharded"))
    statefulset = one(manifests, "StatefulSet")
    count = statefulset["spec"]["replicas"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert f"--shard=hostname/{count}" in container["args"]
    assert count == 4
    config = parse_config(one(manifests, "ConfigMap")["data"]["lakeprobe.yaml"])
    everything = [job.key for job in build_plan(config, Scope())]
    name = statefulset["metadata"]["name"]
    shards = [shard_of_host(f"hostname/{count}", f"{name}-{i}") for i in range(count)]
    owned = [job.key for shard in shards for job in build_plan(config, Scope(shard=shard))]
    assert Counter(owned) == Counter(everything)  # each job in exactly one shard
    assert len(set(everything)) == len(everything)
    assert len(everything) > 3 * count  # enough targets for the check to mean something
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["storageClassName"] == "standard"


def test_monitoring_objects() -> None:
    """ServiceMonitor on /metrics with job="lakeprobe" (the alerts' assumption), selecting only
    the scraped Service; dashboards ConfigMap with the sidecar label and every dashboard."""
    manifests = render(values_of("monitoring"))
    monitor = one(manifests, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "http"
    assert {"action": "replace", "targetLabel": "job", "replacement": "lakeprobe"} in endpoint[
        "relabelings"
    ]
    service = one(manifests, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    dashboards = next(m for m in manifests if m["metadata"]["name"] == "lp-lakeprobe-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    sources = sorted((ROOT / "grafana" / "json").glob("*.json"))
    assert sorted(dashboards["data"]) == [p.name for p in sources]
    for path in sources:
        assert json.loads(dashboards["data"][path.name]) == json.loads(path.read_text())


def test_prometheus_rule_holds_exactly_the_shipped_rules() -> None:
    """The PrometheusRule's groups are alerting/lakeprobe-rules.yaml's, untouched by Helm's
    templating (its annotations are Prometheus templates)."""
    rule = one(render(values_of("monitoring")), "PrometheusRule")
    source = yaml.safe_load((ROOT / "alerting" / "lakeprobe-rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_passes_promtool_tests(tmp_path: Path) -> None:
    """The rendered rules pass the shipped promtool unit tests."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool not found (Debian package prometheus; required under CI=true)")
        pytest.skip("promtool not found: install the Debian package prometheus")
    rule = one(render(values_of("monitoring")), "PrometheusRule")
    rules = tmp_path / "rendered-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    tests = yaml.safe_load((ROOT / "alerting" / "lakeprobe-rules.test.yaml").read_text())
    tests["rule_files"] = [rules.name]
    test_file = tmp_path / "rules.test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run(promtool, "test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_network_policy_opens_only_the_metrics_port() -> None:
    """Ingress only to the metrics port from the given peers; egress DNS plus the given rules."""
    policy = one(render(values_of("network-policy")), "NetworkPolicy")
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == values_of("network-policy")["networkPolicy"]["from"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert {"port": 53, "protocol": "UDP"} in policy["spec"]["egress"][0]["ports"]


def test_schema_is_valid_draft_07() -> None:
    """values.schema.json is itself a valid JSON schema."""
    result = run(BIN / "check-jsonschema", "--check-metaschema", SCHEMA)
    assert result.returncode == 0, result.stdout + result.stderr


VALUES_FILES = [CHART / "values.yaml", *(CHART / "ci" / f"{s}-values.yaml" for s in SCENARIOS)]


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda path: path.name)
def test_values_files_match_schema(path: Path) -> None:
    """values.yaml and every scenario's values file pass values.schema.json."""
    result = run(BIN / "check-jsonschema", "--schemafile", SCHEMA, path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"server": {"site": "A", "sites": "B"}}, "at '/server': additional properties 'sites'"),
        ({"replica": 2}, "additional properties 'replica' not allowed"),
        ({"replicas": "two"}, "at '/replicas': got string, want integer"),
        ({"mode": "central"}, "at '/mode': value must be one of 'site', 'sharded'"),
        ({"serviceMonitor": {"enabled": "yes"}}, "at '/serviceMonitor/enabled': got string"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of"),
        ({"mode": "site", "replicas": 3}, "at '/replicas': value must be 1"),
    ],
)
def test_bad_values_are_refused_by_name(values: dict[str, Any], message: str) -> None:
    """Unknown keys and wrong types stop the install with a message naming the key."""
    with pytest.raises(helm.HelmValuesError) as raised:
        render(values)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "site", "config": values_of("monitoring")["config"]}, "server.site:"),
        ({"mode": "sharded"}, "config: set the lakeprobe config"),
        (
            {
                "mode": "sharded",
                "configExistingSecretName": "a",
                "configExistingConfigMapName": "b",
            },
            "set one of configExistingSecretName and configExistingConfigMapName",
        ),
    ],
)
def test_incomplete_values_fail_with_a_reason(values: dict[str, Any], message: str) -> None:
    """What the schema cannot say (a site install without its site, no config) fails the
    render with a message naming the value."""
    with pytest.raises(helm.HelmError) as raised:
        render(values)
    assert message in str(raised.value)


def test_chart_copies_match_sources() -> None:
    """helm/lakeprobe/files holds exactly the current rules and dashboards (else run
    `python helm/sync_files.py`)."""
    result = run(sys.executable, ROOT / "helm" / "sync_files.py", "--check")
    assert result.returncode == 0, result.stderr
