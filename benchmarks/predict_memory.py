"""Peak memory of `socialcare predict` as its input grows (a script, not a test).

    .venv/bin/python benchmarks/predict_memory.py [--model TAG] [--sizes 10000,100000,1000000]

For each size, writes a JSONL file of that many posts (seed validation + test texts, each
line with its own id; nine in ten with their ``lang``, as listening tools send them, the
rest detected), runs `socialcare predict` on it in a child process and samples the child's
resident memory every 0.2 s. Streaming means the peak must not grow with the file: the
script fails when the largest file's peak exceeds the smallest's by more than 10%.
Prints and writes benchmarks/results/predict_memory.{md,json}.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from results_io import write_results  # noqa: E402  (same folder)

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "predict_memory"
GROWTH_LIMIT = 0.10


def write_posts(path: Path, count: int) -> None:
    posts = load_posts([paths.seed_split("validation"), paths.seed_split("test")])
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            post = posts[n % len(posts)]
            record = {"id": f"gen-{n}", "text": post.text}
            if n % 10:
                record["lang"] = post.lang
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def measure(model: str, count: int, scratch: Path) -> dict:
    source, output = scratch / f"posts-{count}.jsonl", scratch / f"predictions-{count}.jsonl"
    write_posts(source, count)
    command = [sys.executable, "-m", "socialcare.cli", "predict", "--model", model,
               "--input", str(source), "--output", str(output)]  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    process, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"socialcare predict failed on {count} posts")
    with output.open(encoding="utf-8") as answers:
        written = sum(1 for _ in answers)
    source.unlink()
    output.unlink()
    return {
        "posts": count,
        "written": written,
        "peak_rss_mb": peak / 2**20,
        "seconds": elapsed,
        "posts_per_s": count / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="production")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    from socialcare.runtime.resolver import resolve_model

    model = resolve_model(None if args.model == "production" else args.model).tag
    sizes = sorted(int(size) for size in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for size in sizes:
            rows.append(measure(model, size, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
    lines = [
        "# `socialcare predict`: peak memory against input size",
        "",
        f"Model `{model}`; {datetime.now(UTC).isoformat(timespec='seconds')}; "
        f"{platform.machine()}, Python {platform.python_version()}.",
        "",
        "| posts | predictions written | peak RSS (MB) | seconds | posts/s |",
        "|---|---|---|---|---|",
        *(
            f"| {row['posts']:,} | {row['written']:,} | {row['peak_rss_mb']:.0f} | "
            f"{row['seconds']:.0f} | {row['posts_per_s']:.0f} |"
            for row in rows
        ),
        "",
        f"Peak growth from {sizes[0]:,} to {sizes[-1]:,} posts: {growth:+.1%} "
        f"(limit +{GROWTH_LIMIT:.0%}): {'bounded' if growth <= GROWTH_LIMIT else '**grows**'}.",
    ]
    text = "\n".join(lines) + "\n"
    write_results(RESULTS, text, {"model": model, "rows": rows, "growth": growth})
    ok = growth <= GROWTH_LIMIT and all(row["written"] == row["posts"] for row in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
