"""Where one single-post request spends its time, stage by stage (a script, not a test).

    .venv/bin/python benchmarks/request_profile.py [--model TAG] [--posts 200]

Two views of the same posts (seed validation + test, one post per request), one run:

1. in process, each stage timed on its own, one post at a time: the request guard's
   checks (serving.contract: strict pydantic parse, duplicate-key scan), language
   detection, tokenisation, the model (the served runtime), the decision layer, and the
   response policy with the answer record;
2. over HTTP, `socialcare serve` at concurrency 1: the caller's latency, and from the
   service's own /metrics (differences before and after the run) its request time and
   its stages (model: the batching queue and the model call; policy; queue).

The service's "model" stage minus the in-process model time is what the batching queue
and the hand-over to the model's thread cost; its request time minus its stages is what
BentoML's request handling and our guard cost. Prints and writes
benchmarks/results/request_profile.{md,json}.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from results_io import write_results  # noqa: E402  (same folder)

from serving.child import ServiceProcess  # noqa: E402
from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "request_profile"


def timed(function, inputs) -> list[float]:
    """Milliseconds of ``function(x)`` for each input, after two warm-up calls."""
    for x in inputs[:2]:
        function(x)
    times = []
    for x in inputs:
        started = time.perf_counter()
        function(x)
        times.append((time.perf_counter() - started) * 1000)
    return times


def in_process(model_dir: Path, tag: str, posts: list) -> dict[str, list[float]]:
    from datetime import datetime as moment

    from serving.api import PostPrediction, request_model
    from serving.contract import RequestGuard
    from serving.policy import load_policy
    from socialcare.core.language import detect_languages
    from socialcare.core.limits import MAX_BODY_BYTES, MAX_POSTS, MAX_TEXT_CHARS
    from socialcare.runtime.classify import answer
    from socialcare.runtime.predictor import Predictor

    predictor = Predictor(model_dir, tag=tag)
    guard = RequestGuard(None, request_model=request_model(MAX_POSTS, MAX_TEXT_CHARS),
                         max_body_bytes=MAX_BODY_BYTES)  # fmt: skip
    policy = load_policy(paths.POLICY_FILE)
    bodies = [json.dumps({"posts": [{"text": p.text}]}).encode() for p in posts]
    texts = [p.text for p in posts]
    stages = {
        "guard: parse and check the body": timed(guard._check_json, bodies),
        "language detection": timed(lambda t: detect_languages([t]), texts),
    }
    if predictor.kind == "finetune":
        tokens = predictor._tokens
        stages["tokenisation"] = timed(lambda t: tokens.batches(tokens.encode([t])[0], 1), texts)
        batches = [tokens.batches(tokens.encode([t])[0], 1)[0] for t in texts]
        run = predictor._run_onnx if predictor.runtime != "torch" else predictor._run_torch
        stages[f"model ({predictor.runtime})"] = timed(lambda b: run(b[1], b[2]), batches)
    else:
        stages["model (TF-IDF baseline)"] = timed(lambda t: predictor.logits([t]), texts)
    logits = [predictor._forward([t]) for t in texts]
    stages["decision (temperatures, thresholds)"] = timed(
        lambda out: predictor.decision.decide(out[0], out[1], ["sv"], out[2]), logits
    )
    now = moment.now(UTC)

    def decide(t: str) -> None:
        predictions = predictor.decision.decide(*predictor._forward([t])[:2], ["sv"])
        one = answer(predictions, 0, None, "sv")
        action = policy.decide(labels=one.labels, sentiment=one.sentiment.label, text=t,
                               created_at=None, received_at=now)  # fmt: skip
        PostPrediction.of(one, action, policy.uncertain(one.intents, one.thresholds, 0.05))

    model_and_decision = timed(lambda t: predictor.predict([t]), texts)
    everything = timed(decide, texts)
    stages["policy and answer record"] = [
        max(0.0, a - b) for a, b in zip(everything, model_and_decision, strict=True)
    ]
    return stages


def metric_sums(url: str) -> dict[str, float]:
    """Sum and count samples of the histograms this profile reads, by series."""
    wanted = ("bentoml_service_request_duration_seconds_", "socialcare_stage_seconds_")
    sums = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(wanted) and ("_sum" in line or "_count" in line):
            series, value = line.rsplit(" ", 1)
            sums[series] = float(value)
    return sums


def mean_ms(before: dict, after: dict, name: str, **labels) -> float | None:
    """Mean of one histogram's new observations, in ms, matching these labels (a tuple:
    any of its values)."""

    def delta(kind: str) -> float:
        total = 0.0
        for series, value in after.items():
            if not series.startswith(f"{name}_{kind}"):
                continue
            if all(
                any(
                    f'{key}="{one}"' in series
                    for one in (val if isinstance(val, tuple) else (val,))
                )
                for key, val in labels.items()
            ):
                total += value - before.get(series, 0.0)
        return total

    count = delta("count")
    return 1000 * delta("sum") / count if count else None


def over_http(model: str, posts: list) -> dict:
    with tempfile.TemporaryDirectory() as scratch, ServiceProcess(model, Path(scratch)) as service:
        service.wait_until_ready()
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for post in posts[:5]:  # warm-up
                client.post("/predict", json={"posts": [{"text": post.text}]})
            before = metric_sums(service.url)
            latencies = []
            for post in posts:
                started = time.perf_counter()
                response = client.post("/predict", json={"posts": [{"text": post.text}]})
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            after = metric_sums(service.url)
    request = "bentoml_service_request_duration_seconds"
    service = mean_ms(before, after, request, service_name="socialcare", endpoint="/predict")
    stage = {
        name: mean_ms(before, after, "socialcare_stage_seconds", stage=name)
        for name in ("model", "policy", "queue")
    }
    return {
        "client_p50_ms": float(np.percentile(latencies, 50)),
        "client_p99_ms": float(np.percentile(latencies, 99)),
        "client_mean_ms": statistics.fmean(latencies),
        "service_request_mean_ms": service,
        "service_stage_mean_ms": stage,
        "service_handling_mean_ms": None
        if service is None or None in stage.values()
        else service - sum(stage.values()),
    }


def report(model: str, stages: dict, http: dict, count: int) -> str:
    lines = [
        "# One single-post request, stage by stage",
        "",
        f"Model `{model}`; {count} posts (seed validation + test), one per request; "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}. Milliseconds.",
        "",
        "## In process, each stage on its own",
        "",
        "| stage | mean | p50 | p99 |",
        "|---|---|---|---|",
        *(
            f"| {name} | {statistics.fmean(v):.2f} | {np.percentile(v, 50):.2f} | "
            f"{np.percentile(v, 99):.2f} |"
            for name, v in stages.items()
        ),
        "",
        "## Over HTTP, `socialcare serve`, concurrency 1",
        "",
        "| measure | ms |",
        "|---|---|",
        f"| caller's latency, p50 / p99 | {http['client_p50_ms']:.1f} / "
        f"{http['client_p99_ms']:.1f} |",
        f"| caller's latency, mean | {http['client_mean_ms']:.1f} |",
        f"| the service's request time (BentoML), mean | {http['service_request_mean_ms']:.1f} |",
        *(
            f"| stage: {name}, mean | {value:.2f} |"
            for name, value in http["service_stage_mean_ms"].items()
        ),
        f"| the service's own handling (request time − stages) | "
        f"{http['service_handling_mean_ms']:.1f} |",
        f"| outside the service (caller's mean − its request time) | "
        f"{http['client_mean_ms'] - http['service_request_mean_ms']:.1f} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="production")
    parser.add_argument("--posts", type=int, default=200)
    args = parser.parse_args()
    from socialcare.runtime.resolver import resolve_model

    ref = resolve_model(None if args.model == "production" else args.model)
    posts = load_posts([paths.seed_split("validation"), paths.seed_split("test")])
    posts = posts[:: max(1, len(posts) // args.posts)][: args.posts]
    stages = in_process(ref.directory, ref.tag, posts)
    http = over_http(ref.tag, posts)
    text = report(ref.tag, stages, http, len(posts))
    write_results(RESULTS, text, {"model": ref.tag, "in_process_ms": stages, "http": http})
    return 0


if __name__ == "__main__":
    sys.exit(main())
