"""What the service tells operators on `/metrics`, besides BentoML's request counters.

Every metric of ours is defined here, once: the service records them, the alert rules
(ops/prometheus/) and the dashboard (ops/grafana/, generated from ``METRICS``) read them,
and tests check all three use the same names.

BentoML runs several worker processes and merges their metrics (prometheus_client's
multiprocess mode, which it switches on in each worker before it creates the services).
So the metrics are created on first use, in the worker (``service_metrics()``), never at
import time, and gauges say how processes combine.
"""

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

# Latency buckets (seconds) for one stage of a request: a model call on 2 cores takes
# 10-200 ms, the policy and the queue well under 1 ms unless something is wrong.
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Posts per model call: 1 when posts arrive one at a time, up to 64 (and a large request's
# size) under load.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metric(NamedTuple):
    name: str  # Prometheus adds _total to counters; _bucket, _sum, _count to histograms
    kind: str  # counter, histogram or gauge
    help: str
    labels: tuple[str, ...] = ()


# Every metric of ours, the one list.
METRICS = (
    Metric("socialcare_posts", "counter",
           "Posts answered by /predict, by language (und: not detected)", ("lang",)),
    Metric("socialcare_posts_flagged", "counter",
           "Posts flagged for review (needs_review), by language", ("lang",)),
    Metric("socialcare_predictions", "counter",
           "Intents predicted, by intent and language (a post may have several)",
           ("intent", "lang")),
    Metric("socialcare_sentiments", "counter",
           "Sentiments predicted, by sentiment and language", ("sentiment", "lang")),
    Metric("socialcare_actions", "counter",
           "Actions the response policy decided, by type and priority (none: no priority)",
           ("type", "priority")),
    Metric("socialcare_languages", "counter",
           "Where each post's language came from: given, detected or undetermined",
           ("source", "lang")),
    Metric("socialcare_stage_seconds", "histogram",
           "Time in one stage of /predict: model (waiting for it and its call), policy, queue",
           ("stage",)),
    Metric("socialcare_model_batch_posts", "histogram",
           "Posts per model call (adaptive batching: those that arrived during the last call)"),
    Metric("socialcare_review_queue_errors", "counter",
           "Failed writes to the review queue, by kind (locked, read_only, full, io, other)",
           ("kind",)),
    Metric("socialcare_review_backlog", "gauge",
           "Flagged posts kept in memory until the review queue is writable again"),
    Metric("socialcare_review_dropped", "counter",
           "Flagged posts lost because the in-memory backlog was full"),
    Metric("socialcare_served", "gauge",
           "1 for the served model and policy (their tag and version as labels)",
           ("model", "policy_version")),
    Metric("socialcare_review_rate_target", "gauge",
           "The served policy's review_rate, the share of posts it means to flag "
           "(absent when the policy sets none)"),
)  # fmt: skip

# BentoML's own metrics that the alert rules and the dashboard read, as a real /metrics
# of `socialcare serve` shows them (BentoML 1.4; tests/test_ops.py checks them on one),
# with the labels we read (BentoML adds runner_name and service_version).
# Our service is service_name="socialcare".
BENTOML_METRICS = (
    Metric("bentoml_service_request", "counter",
           "Requests answered, by service, endpoint and HTTP status code",
           ("service_name", "endpoint", "http_response_code")),
    Metric("bentoml_service_request_duration_seconds", "histogram",
           "Time to answer a request, by service, endpoint and HTTP status code",
           ("service_name", "endpoint", "http_response_code")),
    Metric("bentoml_service_request_in_progress", "gauge",
           "Requests being answered now, by service and endpoint", ("service_name", "endpoint")),
)  # fmt: skip


@dataclass(frozen=True)
class ServiceMetrics:
    posts: object
    posts_flagged: object
    predictions: object
    sentiments: object
    actions: object
    languages: object
    stage_seconds: object
    model_batch_posts: object
    review_queue_errors: object
    review_backlog: object
    review_dropped: object
    served: object
    review_rate_target: object


@cache
def service_metrics() -> ServiceMetrics:
    """The metrics, created once per process (after BentoML set up multiprocess mode)."""
    import prometheus_client

    made = {}
    for name, kind, documentation, labels in METRICS:
        if kind == "counter":
            metric = prometheus_client.Counter(name, documentation, labels)
        elif kind == "histogram":
            buckets = BATCH_BUCKETS if name.endswith("_posts") else STAGE_BUCKETS
            metric = prometheus_client.Histogram(name, documentation, labels, buckets=buckets)
        else:
            # Across worker processes: the backlogs add up; the served model and policy are
            # the same.
            mode = "livesum" if name == "socialcare_review_backlog" else "max"
            metric = prometheus_client.Gauge(name, documentation, labels, multiprocess_mode=mode)
        made[name.removeprefix("socialcare_")] = metric
    return ServiceMetrics(**made)
