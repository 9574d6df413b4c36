"""Back-scoring a file: `socialcare predict` (one process) against `socialcare spark-predict`
(Spark local mode), end to end, on the same generated file.

    .venv/bin/python benchmarks/spark_batch.py [--model DIR_OR_TAG] [--posts N] [--master M]

The file repeats the seed posts (train, validation, test) up to ``--posts`` lines, with
unique ids and no ``lang`` (detected, as for most client posts). Each command runs as
a fresh process, as a user would run it: the times include start-up (Spark's JVM and
Python workers, loading the model and the language detector), so on small files they
favour `socialcare predict`; each command also runs on a few posts, and the difference
gives its rate after start-up. Both outputs are checked to hold the same labels. Writes
results/spark_batch.{json,md}.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = ("train", "validation", "test")
STARTUP_POSTS = 20


def write_posts(path: Path, count: int) -> None:
    """``count`` seed posts, repeated as needed, as a client would send them."""
    seeds = [
        json.loads(line)
        for split in SPLITS
        for line in paths.seed_split(split).read_text(encoding="utf-8").splitlines()
    ]
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            seed = seeds[i % len(seeds)]
            post = {"id": f"{seed['id']}-r{i // len(seeds)}", "text": seed["text"]}
            if seed.get("parent_text"):
                post["parent_text"] = seed["parent_text"]
            out.write(json.dumps(post, ensure_ascii=False) + "\n")


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def read_answers(path: Path) -> list[dict]:
    files = sorted(path.glob("part-*.json")) if path.is_dir() else [path]
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def run_both(directory: Path, posts: int, master: str, tmp: Path) -> dict:
    """Seconds of each command on a file of ``posts`` posts, and whether they agree."""
    socialcare = str(Path(sys.executable).with_name("socialcare"))
    source, single, folder = tmp / f"posts-{posts}.jsonl", tmp / "one.jsonl", tmp / "spark"
    write_posts(source, posts)
    common = ["--input", str(source), "--model", str(directory)]
    seconds = {
        "predict": timed([socialcare, "predict", *common, "--output", str(single)]),
        "spark": timed(
            [socialcare, "spark-predict", *common, "--output", str(folder), "--master", master]
        ),
    }
    one, spark = read_answers(single), read_answers(folder)
    same = [a["id"] for a in one] == [a["id"] for a in spark] and all(
        a["labels"] == b["labels"] and a["sentiment"]["label"] == b["sentiment"]["label"]
        for a, b in zip(one, spark, strict=True)
    )
    return {"seconds": seconds, "same_answers": same}


def measure(model: str | None, posts: int, master: str) -> dict:
    from socialcare.runtime.resolver import model_info, resolve_model

    load_before = os.getloadavg()[0]  # the cores are shared: a busy machine slows both
    ref = resolve_model(model)
    with tempfile.TemporaryDirectory(prefix="socialcare-spark-bench-") as tmp:
        # A few posts first: what each command costs before it classifies anything.
        small = run_both(ref.directory, STARTUP_POSTS, master, Path(tmp))
        full = run_both(ref.directory, posts, master, Path(tmp))
    by_path = {}
    for name in ("predict", "spark"):
        seconds, startup = full["seconds"][name], small["seconds"][name]
        by_path[name] = {
            "seconds": seconds,
            "posts_per_s": posts / seconds,
            "startup_seconds": startup,
            "posts_per_s_after_startup": (posts - STARTUP_POSTS) / max(seconds - startup, 1e-9),
        }
    return {
        "model": ref.tag,
        "kind": model_info(ref.directory)["kind"],
        "posts": posts,
        "master": master,
        "cores": os.cpu_count(),
        "load_average_1min_before": load_before,
        **by_path,
        "spark_over_predict": by_path["spark"]["posts_per_s"] / by_path["predict"]["posts_per_s"],
        "same_answers": full["same_answers"] and small["same_answers"],
        "command": " ".join([".venv/bin/python benchmarks/spark_batch.py", *sys.argv[1:]]),
    }


def markdown(result: dict) -> str:
    rows = []
    for name, key in (
        ("predict", "predict"),
        (f"spark-predict --master {result['master']}", "spark"),
    ):
        r = result[key]
        rows.append(
            f"| `socialcare {name}` | {r['seconds']:.1f} | {r['posts_per_s']:.0f} | "
            f"{r['startup_seconds']:.1f} | {r['posts_per_s_after_startup']:.0f} |"
        )
    return "\n".join(
        [
            "# Back-scoring a file: one process against Spark local mode",
            "",
            f"Model `{result['model']}` ({result['kind']}), {result['posts']} posts, "
            f"{result['cores']} cores (1-minute load average before: "
            f"{result['load_average_1min_before']:.1f}). Each command a fresh process; "
            f"start-up: the same command on {STARTUP_POSTS} posts.",
            "",
            "| command | seconds | posts/s | start-up (s) | posts/s after start-up |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Spark / predict throughput, end to end: {result['spark_over_predict']:.2f}x; "
            f"same ids, labels and sentiment: {result['same_answers']}.",
            "",
            f"`{result['command']}`",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model tag or directory (default: production, else latest)")
    parser.add_argument("--posts", type=int, default=5000, help="posts in the generated file")
    parser.add_argument("--master", default="local[2]", help="Spark master")
    args = parser.parse_args()
    result = measure(args.model, args.posts, args.master)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark_batch.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "spark_batch.md").write_text(table)
    print(table)
    return 0 if result["same_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())
