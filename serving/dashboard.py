"""`socialcare dashboard`: the service's Grafana dashboard, built from what it plots.

The metric names come from ``serving/metrics.py`` (ours and BentoML's), the recorded
series and the alert thresholds from the alert rules (``ops/prometheus/alerts.yml``), so
the dashboard cannot name a metric the service does not have, nor show a threshold the
alerts do not use. The JSON is committed (``ops/grafana/socialcare.json``);
tests/test_ops.py fails when it is not what this module builds.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from serving.metrics import BENTOML_METRICS, METRICS
from socialcare.core import paths
from socialcare.core.options import option

KNOWN_METRICS = {metric.name: metric for metric in (*METRICS, *BENTOML_METRICS)}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DATASOURCE_VARIABLE = {"name": "datasource", "label": "Prometheus", "type": "datasource",
                       "query": "prometheus"}  # fmt: skip
# Our service's requests (BentoML labels every request with its service's name).
FRONT = 'service_name="socialcare"'
PREDICT = f'{FRONT},endpoint="/predict"'
RATE = "[$__rate_interval]"
WIDTH, HEIGHT = 12, 8  # two panels a row on Grafana's 24-column grid


@dataclass
class DashboardOptions:
    """Write the Grafana dashboard of the prediction service (JSON, for Grafana's import
    or provisioning), from the metrics the service defines and the alert rules."""

    output: Path = option(paths.GRAFANA_DASHBOARD, help="dashboard JSON file to write")
    rules: Path = option(paths.ALERT_RULES, help="Prometheus alert rules the dashboard reads")


def series(name: str, part: str = "bucket") -> str:
    """The name Prometheus shows for metric ``name``: counters end in _total, a
    histogram's series in _bucket (or ``part``: sum, count). KeyError for a metric that
    serving/metrics.py does not define."""
    kind = KNOWN_METRICS[name].kind
    if kind == "counter":
        return f"{name}_total"
    return f"{name}_{part}" if kind == "histogram" else name


class AlertRules:
    """The recorded series and alert expressions of a Prometheus rules file."""

    def __init__(self, path: Path):
        groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        self.records = {rule["record"] for rule in rules if "record" in rule}
        self.alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
        self.path = path

    def recorded(self, name: str) -> str:
        if name not in self.records:
            raise LookupError(f"{self.path}: no recording rule {name!r}")
        return name

    def threshold(self, alert: str) -> tuple[str, str, str]:
        """(what, limit, description) of an alert whose first line is ``what > limit``:
        the two series a panel shows, so that the line drawn is the one the alert fires
        above, and a sentence that says so."""
        rule = self.alerts[alert]
        first_line = rule["expr"].strip().splitlines()[0]
        what, limit = re.fullmatch(r"(.+?) > (.+)", first_line).groups()
        return what, limit, f"{alert} fires above the line for {rule.get('for', '0m')}."


def _target(expr: str, legend: str) -> dict:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def _panel(title: str, description: str, targets: list[dict], unit: str = "short") -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }


def _stat(title: str, description: str, target: dict, unit: str, text_mode: str) -> dict:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "colorMode": "none",
            "graphMode": "none",
            "textMode": text_mode,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
        "targets": [target],
    }


def _quantile(q: float, histogram: str, selector: str, by: str, legend: str) -> dict:
    matchers = f"{{{selector}}}" if selector else ""
    buckets = f"sum by ({by}) (rate({series(histogram)}{matchers}{RATE}))"
    return _target(f"histogram_quantile({q}, {buckets})", f"{legend} p{round(q * 100)}")


def _rows(rules: AlertRules) -> list[tuple[str, list[dict]]]:
    """The dashboard's sections, each a list of panels, in reading order."""
    review_rate, review_limit, review_alert = rules.threshold("ReviewRateAboveTarget")
    error_ratio, error_limit, error_alert = rules.threshold("PredictErrorRateHigh")
    p99, latency_limit, latency_alert = rules.threshold("PredictLatencyHigh")
    complaints = rules.recorded("socialcare:complaints:increase30m")
    by_rate = lambda name, by: f"sum by ({by}) (rate({series(name)}{RATE}))"  # noqa: E731
    what_is_served = [
        _stat("Served model and policy", "The model tag and policy version of each replica.",
              _target(f"max by (model, policy_version) ({series('socialcare_served')})",
                      "{{model}}, policy {{policy_version}}"), "none", "name"),
        _stat("Review rate target", "The policy's review_rate (serving/policy.yaml).",
              _target(f"max({series('socialcare_review_rate_target')})", "target"),
              "percentunit", "value"),
    ]  # fmt: skip
    posts = [
        _panel("Posts per second by language", "und: language not detected.",
               [_target(by_rate("socialcare_posts", "lang"), "{{lang}}")]),
        _panel("Predictions per second by intent and language", "A post may have several intents.",
               [_target(by_rate("socialcare_predictions", "intent, lang"), "{{intent}} {{lang}}")]),
        _panel("Complaints and factual errors vs the same hour before",
               "Posts per 30 minutes, and the same 30 minutes a day or a week earlier (the "
               "larger), which ComplaintSpike compares.",
               [_target(complaints, "{{intent}} {{lang}}"),
                _target(rules.recorded("socialcare:complaints:baseline30m"),
                        "{{intent}} {{lang}} before")]),
        _panel("Sentiments per second by language", "",
               [_target(by_rate("socialcare_sentiments", "sentiment, lang"),
                        "{{sentiment}} {{lang}}")]),
        _panel("Actions per second by type and priority", "What the response policy decided.",
               [_target(by_rate("socialcare_actions", "type, priority"), "{{type}} {{priority}}")]),
        _panel("Where the language came from", "given in the request, detected, or undetermined.",
               [_target(by_rate("socialcare_languages", "source"), "{{source}}")]),
    ]  # fmt: skip
    review = [
        _panel("Review rate vs target",
               f"Share of posts flagged for review over an hour. {review_alert}",
               [_target(rules.recorded(review_rate), "flagged (1 h)"),
                _target(review_limit, "alert above")], "percentunit"),
        _panel("Flagged posts per second by language", "",
               [_target(by_rate("socialcare_posts_flagged", "lang"), "{{lang}}")]),
        _panel("Review queue: failed writes, backlog, dropped posts",
               "Failed writes by kind; flagged posts waiting in memory; posts lost.",
               [_target(f"sum by (kind) (increase({series('socialcare_review_queue_errors')}"
                        f"{RATE}))", "failed writes: {{kind}}"),
                _target(f"sum({series('socialcare_review_backlog')})", "backlog"),
                _target(f"sum(increase({series('socialcare_review_dropped')}{RATE}))", "dropped")]),
    ]  # fmt: skip
    requests = f"rate({series('bentoml_service_request')}{{{FRONT}}}{RATE})"
    service = [
        _panel("Requests per second by endpoint and status", "BentoML's count.",
               [_target(f"sum by (endpoint, http_response_code) ({requests})",
                        "{{endpoint}} {{http_response_code}}")], "reqps"),
        _panel("/predict 5xx share", f"Share of requests answered with a 5xx. {error_alert}",
               [_target(rules.recorded(error_ratio), "5xx share (5 min)"),
                _target(error_limit, "alert above")], "percentunit"),
        _panel("/predict latency", f"Every status code. {latency_alert}",
               [_quantile(0.5, "bentoml_service_request_duration_seconds", PREDICT, "le",
                          "/predict"),
                _target(rules.recorded(p99), "/predict p99"),
                _target(latency_limit, "alert above")], "s"),
        _panel("Time per stage", "model: queue and call; policy; queue: the review queue.",
               [_quantile(q, "socialcare_stage_seconds", "", "stage, le", "{{stage}}")
                for q in (0.5, 0.99)], "s"),
        _panel("Requests in progress", "",
               [_target(f"sum by (endpoint) ({series('bentoml_service_request_in_progress')}"
                        f"{{{FRONT}}})", "{{endpoint}}")]),
        _panel("Model batch size", "Posts per model call that adaptive batching formed.",
               [_quantile(q, "socialcare_model_batch_posts", "", "le", "batch size")
                for q in (0.5, 0.99)]),
    ]  # fmt: skip
    return [
        ("What is served", what_is_served),
        ("Posts", posts),
        ("Review", review),
        ("Service", service),
    ]


def build_dashboard(rules_path: Path = paths.ALERT_RULES) -> dict:
    """The dashboard as Grafana's JSON model (import it, or provision the file)."""
    panels, y = [], 0
    for title, row in _rows(AlertRules(rules_path)):
        panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})  # fmt: skip
        y += 1
        for i, panel in enumerate(row):
            x = (i % 2) * WIDTH
            y += HEIGHT if i and x == 0 else 0
            panel["gridPos"] = {"h": HEIGHT, "w": WIDTH, "x": x, "y": y}
            panels.append(panel)
        y += HEIGHT
    for id_, panel in enumerate(panels, start=1):
        panel["id"] = id_
    return {
        "uid": "socialcare",
        "title": "socialcare: posts, review and service",
        "description": "Generated by `socialcare dashboard` from serving/metrics.py and "
        "ops/prometheus/alerts.yml; edit those, not this.",
        "tags": ["socialcare"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        # The data source is chosen on import (or by provisioning), not written here.
        "templating": {"list": [DATASOURCE_VARIABLE]},
        "panels": panels,
    }


def dashboard_json(rules_path: Path = paths.ALERT_RULES) -> str:
    return json.dumps(build_dashboard(rules_path), indent=2, ensure_ascii=False) + "\n"


def run_dashboard(opts: DashboardOptions) -> int:
    output = Path(opts.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dashboard_json(Path(opts.rules)), encoding="utf-8")
    print(f"dashboard written to {output}; import it in Grafana (Dashboards > New > Import)")
    return 0
