"""What operators load: the alert rules pass promtool's checks and their unit tests, the
dashboard is the one `socialcare dashboard` builds, and the rules, the dashboard and the
README name only metrics the service has (BentoML's checked on a real /metrics)."""

import json
import re
import shutil
import subprocess

import httpx
import pytest
import yaml

from serving.dashboard import dashboard_json
from serving.metrics import BENTOML_METRICS, METRICS, Metric
from socialcare.cli import main
from socialcare.core import paths

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)
RULES_TEST = paths.ALERT_RULES.with_name("alerts_test.yml")
ALL_METRICS = (*METRICS, *BENTOML_METRICS)
# A metric of ours or BentoML's, or a series our recording rules make.
NAME = re.compile(r"\b(?:socialcare|bentoml)_\w+|\bsocialcare:[\w:]+")


def exposed_names(metric: Metric) -> set[str]:
    """The series names Prometheus scrapes for a metric."""
    if metric.kind == "counter":
        return {f"{metric.name}_total"}
    if metric.kind == "histogram":
        return {f"{metric.name}_{part}" for part in ("bucket", "sum", "count")}
    return {metric.name}


def rules() -> list[dict]:
    groups = yaml.safe_load(paths.ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(paths.GRAFANA_DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


@needs_promtool
def test_alert_rules_are_valid():
    result = promtool("check", "rules", str(paths.ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_example_prometheus_config_is_valid():
    """ops/prometheus/prometheus.yml, the README's example, loads the rules file."""
    result = promtool("check", "config", str(paths.ALERT_RULES.with_name("prometheus.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@needs_promtool
def test_each_alert_fires_and_stays_quiet_when_it_should():
    """ops/prometheus/alerts_test.yml: each alert fires on its input series, and does
    not on a quiet night, a short burst, or a normal Monday morning."""
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text(encoding="utf-8")))
    assert tested == {rule["alert"] for rule in rules() if "alert" in rule}


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each dashboard query, as a recording rule (Grafana's
    $__rate_interval given a value)."""
    queries = [
        {"record": f"dashboard:query{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    rules_file = tmp_path / "dashboard_queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}))
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_the_generated_one():
    assert paths.GRAFANA_DASHBOARD.read_text(encoding="utf-8") == dashboard_json(), (
        "ops/grafana/socialcare.json is out of date: run `socialcare dashboard` and commit it"
    )


def test_dashboard_command_writes_the_file(tmp_path, capsys):
    output = tmp_path / "socialcare.json"
    assert main(["dashboard", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == dashboard_json()
    assert str(output) in capsys.readouterr().out


def test_rules_and_dashboard_name_only_metrics_that_exist():
    known = {name for metric in ALL_METRICS for name in exposed_names(metric)}
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used_by_rules = {name for rule in rules() for name in NAME.findall(rule["expr"])}
    used_by_dashboard = {name for expr in dashboard_exprs() for name in NAME.findall(expr)}
    assert used_by_rules - known - recorded == set()
    assert used_by_dashboard - known - recorded == set()
    # Every metric has a panel, so that a new one is not forgotten.
    without_panel = [m.name for m in ALL_METRICS if not exposed_names(m) & used_by_dashboard]
    assert without_panel == []


def readme_metrics_table() -> str:
    rows = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for metric in ALL_METRICS:
        name = metric.name if metric.kind == "histogram" else min(exposed_names(metric))
        labels = ", ".join(metric.labels) or "-"
        rows.append(f"| `{name}` | {metric.kind} | {labels} | {metric.help} |")
    return "\n".join(rows)


def test_readme_lists_every_metric():
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme_metrics_table()
    assert table in readme, f"README's metrics table is out of date; it should read:\n{table}"


def test_bentoml_metrics_are_on_a_real_metrics_page(registered_baseline, start_service):
    """BentoML's metric names and labels that the rules and dashboard read, as a live
    `socialcare serve` exposes them (they change with BentoML, not with us)."""
    service = start_service(registered_baseline[0])
    httpx.post(f"{service.url}/predict", json={"posts": [{"text": "Tack!"}]}, timeout=30)
    page = httpx.get(f"{service.url}/metrics", timeout=10).text
    for metric in BENTOML_METRICS:
        for name in exposed_names(metric):
            assert re.search(rf"^{name}\{{", page, re.MULTILINE), name
    front_predict = [
        line
        for line in page.splitlines()
        if line.startswith("bentoml_service_request_total{")
        and 'endpoint="/predict"' in line
        and 'http_response_code="200"' in line
        and 'service_name="socialcare"' in line
    ]
    assert front_predict, page
    assert re.search(r"^socialcare_model_batch_posts_count \d", page, re.MULTILINE), page
    assert "socialcare_review_rate_target 0.08" in page  # the policy's review_rate
