"""k8s/components/monitoring: the PrometheusRule is well-formed, every alert names only metrics
the app exports and links to a runbook that exists; the ServiceMonitor scrapes the Service's
port with the token the pods read. (promtool is not available: structure and names are checked
here, and `kubectl kustomize` renders the component into the prod overlay.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.support.app import resources, running_app

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "k8s" / "components" / "monitoring"
OPERATIONS = ROOT / "docs" / "operations.md"

#: PromQL words that look like metric names but are not.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
DURATION = re.compile(r"^\d+[smhdwy]$")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPONENT / name).read_text())
    return document


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in load("prometheusrule.yaml")["spec"]["groups"] for rule in group["rules"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label matchers,
    grouping label lists, durations and numbers removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range/subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


@pytest.fixture
async def exported(settings: Settings) -> set[str]:
    """Every metric name a running app exports (scrape-time gauges join once it runs)."""
    async with running_app(settings) as app:
        names: set[str] = resources(app).metrics.metric_names()
    return names


def test_the_parser_finds_metric_names() -> None:
    expr = (
        'sum by (namespace, pod) (rate(http_requests_total{route="/x", status=~"5.."}[5m]))'
        " / on (pod) group_left max(db_pool_size + 1e-9) > 0.5 and time() - up offset 1h"
    )
    assert metric_names(expr) == {"http_requests_total", "db_pool_size", "up"}


def test_the_rule_is_a_well_formed_prometheus_rule() -> None:
    document = load("prometheusrule.yaml")
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    groups = document["spec"]["groups"]
    assert len({group["name"] for group in groups}) == len(groups)
    alerts = [rule["alert"] for rule in rules()]
    assert len(set(alerts)) == len(alerts)
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        for opening, closing in ("()", "{}", "[]"):
            assert rule["expr"].count(opening) == rule["expr"].count(closing), rule["alert"]
        if "for" in rule:
            assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])


def test_every_alert_names_only_metrics_the_app_exports(exported: set[str]) -> None:
    for rule in rules():
        used = metric_names(rule["expr"])
        assert used, f"{rule['alert']} selects no metric"
        assert used <= exported, f"{rule['alert']} uses unknown metrics {used - exported}"


def test_the_required_alerts_exist() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    required = {
        "SecretRefreshFailing": {
            "secret_refresh_failures_total",
            "secret_last_refresh_success_timestamp",
        },
        "SecretOlderThanRotationPolicy": {"secret_age_seconds"},
        "JwtSigningKeyTooOld": {"jwt_signing_key_age_seconds"},
        "LoginFailureSpike": {"auth_login_failures_total"},
        "RefreshTokenReuseDetected": {"auth_refresh_reuse_detected_total"},
        "ReadinessFailing": {"http_requests_total"},
    }
    for alert, metrics in required.items():
        assert alert in by_name
        assert metric_names(by_name[alert]["expr"]) == metrics, alert
    # "Failing for more than 10 minutes": no success for 600 s while failures keep coming.
    assert "600" in by_name["SecretRefreshFailing"]["expr"]
    assert '"/health/ready"' in by_name["ReadinessFailing"]["expr"]


def test_every_runbook_link_points_at_a_section_of_operations_md() -> None:
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("docs/operations.md"), rule["alert"]
        assert url.split("#")[1] in anchors, f"no section for {rule['alert']}"


def test_the_service_monitor_scrapes_the_service_with_the_pods_token() -> None:
    monitor = load("servicemonitor.yaml")
    service = yaml.safe_load((ROOT / "k8s" / "base" / "service.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    patch = load("metrics-token-patch.yaml")["spec"]["template"]["spec"]
    (volume,) = patch["volumes"]
    assert volume["secret"]["secretName"] == credentials["name"]
    (container,) = patch["containers"]
    (env,) = container["env"]
    (mount,) = container["volumeMounts"]
    assert env["name"] == "METRICS_TOKEN_FILE"
    assert env["value"] == f"{mount['mountPath']}/{credentials['key']}"
    assert mount["readOnly"] is True
    assert mount["name"] == volume["name"]


def test_the_component_renders_into_the_prod_overlay(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with built-in kustomize) is required to render k8s/")
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", copy, ignore=shutil.ignore_patterns("secrets"))
    overlay = copy / "overlays" / "prod" / "kustomization.yaml"
    text = overlay.read_text()
    assert "  - ../../components/secrets-aws\n" in text
    overlay.write_text(
        text.replace(
            "  - ../../components/secrets-aws\n",
            "  - ../../components/secrets-aws\n  - ../../components/monitoring\n",
        )
    )
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    namespace = docs[("Deployment", "app")]["metadata"]["namespace"]
    assert docs[("ServiceMonitor", "app")]["metadata"]["namespace"] == namespace
    assert docs[("PrometheusRule", "app")]["metadata"]["namespace"] == namespace
    container = docs[("Deployment", "app")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "METRICS_TOKEN_FILE", "value": "/run/metrics/metrics_token"} in container["env"]
