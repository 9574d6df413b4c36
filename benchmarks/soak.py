"""Soak test of the service: sustained mixed load with some bad requests (a script, not a test).

    .venv/bin/python benchmarks/soak.py [--model TAG] [--minutes 10] [--concurrency 16]

Starts `socialcare serve` with the model (default: production, else the newest), then
``--concurrency`` callers send requests back to back for ``--minutes``: 1 post (70% of
requests), 8 posts (20%) or 32 posts (10%), texts from the seed validation + test posts,
and ``--bad-rate`` (1%) bad requests of several kinds (blank text, wrong content type,
broken JSON, a body over the size limit, a lying gzip header...). Memory of the server
and all its workers is sampled every 5 s.

Prints and writes to benchmarks/results/soak.{md,json}: requests by status, 5xx (must be
0), bad requests answered 4xx (must be all), latency p50/p95/p99 by request size, posts/s,
and the memory at minute 2 against the end (growth must stay under 10%). The callers run on
the same 2 cores as the service, so latencies are upper bounds.
"""

import argparse
import asyncio
import gzip
import json
import platform
import random
import sys
import tempfile
import threading
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
from socialcare.core.limits import MAX_BODY_BYTES  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "soak"
SIZES = ((1, 0.7), (8, 0.2), (32, 0.1))  # posts per request, share of requests
MEMORY_GROWTH_LIMIT = 0.10
BAD_REQUESTS = {
    "blank text": (b'{"posts": [{"text": "   "}]}', {"content-type": "application/json"}),
    "wrong content type": (b"text=hej", {"content-type": "application/x-www-form-urlencoded"}),
    "broken JSON": (b'{"posts": [{"text": "hej"', {"content-type": "application/json"}),
    "lying gzip": (b'{"posts": [{"text": "hej"}]}',
                   {"content-type": "application/json", "content-encoding": "gzip"}),
    "too large": (gzip.compress(b'{"posts": [], "x": "' + b" " * MAX_BODY_BYTES + b'"}'),
                  {"content-type": "application/json", "content-encoding": "gzip"}),
    "duplicate keys": (b'{"posts": [{"text": "a", "text": "b"}]}',
                       {"content-type": "application/json"}),
}  # fmt: skip


def texts() -> list[str]:
    posts = load_posts([paths.seed_split("validation"), paths.seed_split("test")])
    return [post.text for post in posts]


class Record:
    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.latencies: dict[int, list[float]] = {size: [] for size, _ in SIZES}
        self.bad_answers: dict[str, dict[str, int]] = {name: {} for name in BAD_REQUESTS}
        self.posts = 0

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1


async def caller(url: str, pool: list[str], end: float, bad_rate: float, seed: int, rec: Record):
    rng = random.Random(seed)
    sizes, weights = zip(*SIZES, strict=True)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < end:
            if rng.random() < bad_rate:
                name = rng.choice(list(BAD_REQUESTS))
                content, headers = BAD_REQUESTS[name]
                try:
                    response = await client.post("/predict", content=content, headers=headers)
                    key = str(response.status_code)
                except httpx.HTTPError as err:
                    key = type(err).__name__
                rec.count(key)
                answers = rec.bad_answers[name]
                answers[key] = answers.get(key, 0) + 1
                continue
            size = rng.choices(sizes, weights)[0]
            body = {"posts": [{"text": text} for text in rng.sample(pool, size)]}
            started = time.perf_counter()
            try:
                response = await client.post("/predict", json=body)
                key = str(response.status_code)
            except httpx.HTTPError as err:
                key = type(err).__name__
            rec.count(key)
            if key == "200":
                rec.latencies[size].append(time.perf_counter() - started)
                rec.posts += size


def sample_memory(service: ServiceProcess, stop: threading.Event, samples: list) -> None:
    start = time.monotonic()
    while not stop.wait(5.0):
        samples.append((time.monotonic() - start, service.rss_bytes()))


def run(model: str, minutes: float, concurrency: int, bad_rate: float) -> dict:
    pool = texts()
    with tempfile.TemporaryDirectory() as scratch, ServiceProcess(model, Path(scratch)) as service:
        service.wait_until_ready()
        rec, samples, stop = Record(), [(0.0, service.rss_bytes())], threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(service, stop, samples))
        sampler.start()
        started = time.monotonic()
        end = started + minutes * 60

        async def all_callers() -> None:
            await asyncio.gather(
                *(caller(service.url, pool, end, bad_rate, n, rec) for n in range(concurrency))
            )

        asyncio.run(all_callers())
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        log = service.log()
    at_2 = next(rss for t, rss in samples if t >= min(120.0, samples[-1][0]))
    final = samples[-1][1]
    server_errors = sum(n for key, n in rec.statuses.items() if key.startswith("5"))
    failures = sum(n for key, n in rec.statuses.items() if not key.isdigit())
    bad_not_4xx = sum(
        n for answers in rec.bad_answers.values() for key, n in answers.items()
        if not key.startswith("4")
    )  # fmt: skip
    return {
        "model": model,
        "minutes": minutes,
        "concurrency": concurrency,
        "bad_rate": bad_rate,
        "requests": sum(rec.statuses.values()),
        "statuses": rec.statuses,
        "server_errors": server_errors,
        "transport_failures": failures,
        "bad_requests": rec.bad_answers,
        "bad_not_4xx": bad_not_4xx,
        "posts_per_s": rec.posts / elapsed,
        "latency_ms": {
            str(size): {
                "requests": len(values),
                **{f"p{q}": float(np.percentile(values, q) * 1000) for q in (50, 95, 99)},
            }
            for size, values in rec.latencies.items()
            if values
        },
        "rss_mb_start": samples[0][1] / 2**20,
        "rss_mb_minute_2": at_2 / 2**20,
        "rss_mb_end": final / 2**20,
        "rss_growth_from_minute_2": final / at_2 - 1,
        "rss_samples_mb": [(round(t, 1), round(rss / 2**20, 1)) for t, rss in samples],
        "tracebacks_in_log": log.count("Traceback"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def report(result: dict) -> str:
    ok = lambda passed: "yes" if passed else "**no**"  # noqa: E731
    lines = [
        f"# Soak: {result['minutes']:g} min at concurrency {result['concurrency']}, "
        f"{result['bad_rate']:.0%} bad requests",
        "",
        f"Model `{result['model']}`; {result['date']}; {result['machine']}.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| requests | {result['requests']} | | |",
        f"| by status | {json.dumps(result['statuses'])} | | |",
        f"| 5xx | {result['server_errors']} | 0 | {ok(result['server_errors'] == 0)} |",
        f"| transport failures | {result['transport_failures']} | 0 | "
        f"{ok(result['transport_failures'] == 0)} |",
        f"| bad requests not answered 4xx | {result['bad_not_4xx']} | 0 | "
        f"{ok(result['bad_not_4xx'] == 0)} |",
        f"| posts/s | {result['posts_per_s']:.1f} | | |",
        f"| memory at minute 2 → end (MB) | {result['rss_mb_minute_2']:.0f} → "
        f"{result['rss_mb_end']:.0f} ({result['rss_growth_from_minute_2']:+.1%}) | < +10% | "
        f"{ok(result['rss_growth_from_minute_2'] < MEMORY_GROWTH_LIMIT)} |",
        f"| tracebacks in the service log | {result['tracebacks_in_log']} | 0 | "
        f"{ok(result['tracebacks_in_log'] == 0)} |",
        "",
        "| posts per request | requests | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {size} | {row['requests']} | {row['p50']:.0f} | {row['p95']:.0f} | "
            f"{row['p99']:.0f} |"
            for size, row in result["latency_ms"].items()
        ),
        "",
        "Bad requests and their answers: "
        + "; ".join(f"{name}: {answers}" for name, answers in result["bad_requests"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="production")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bad-rate", type=float, default=0.01)
    args = parser.parse_args()
    from socialcare.runtime.resolver import resolve_model

    model = resolve_model(None if args.model == "production" else args.model).tag
    result = run(model, args.minutes, args.concurrency, args.bad_rate)
    text = report(result)
    write_results(RESULTS, text, result)
    passed = (
        result["server_errors"] == 0
        and result["transport_failures"] == 0
        and result["bad_not_4xx"] == 0
        and result["rss_growth_from_minute_2"] < MEMORY_GROWTH_LIMIT
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
