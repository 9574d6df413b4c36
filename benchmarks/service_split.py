"""One service or two: this checkout's `socialcare serve` against the same command at an
earlier commit, where the model ran in a BentoML service of its own (a script, not a test).

    .venv/bin/python benchmarks/service_split.py --model TAG [--split-commit 17db4e8]
        [--rounds 2] [--duration 10]

The earlier commit is checked out in a temporary git worktree and started from there
with this checkout's virtual environment, so both serve the same registered model on the
same packages. The two take turns, ``--rounds`` times each (the machine is shared: turns
spread its noise over both), each driven by serve_load's load generator on the seed
validation + test posts: one post at concurrency 1 and 8, 32-post requests at
concurrency 8. Prints and writes benchmarks/results/service_split.{md,json}.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.results_io import write_results  # noqa: E402
from benchmarks.serve_load import benchmark_texts, drive, free_port  # noqa: E402
from serving.client import SocialCareClient  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "service_split"
# The last commit with the Classifier service of its own.
SPLIT_COMMIT = "17db4e8"
SCENARIOS = ((1, 1), (1, 8), (32, 8))  # (posts per request, concurrency)


def start(root: Path, model: str, port: int, scratch: Path) -> subprocess.Popen:
    """`socialcare serve` from the checkout at ``root``, its review queue in ``scratch``."""
    command = [sys.executable, "-m", "socialcare.cli", "serve", "--port", str(port),
               "--model", model, "--review-queue", str(scratch / "queue.sqlite")]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(root))  # that checkout's code, this one's packages
    log = (scratch / "serve.log").open("w")
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def measure(root: Path, model: str, texts: list[str], duration: float) -> list[dict]:
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        server = start(root, model, port, Path(scratch))
        url = f"http://127.0.0.1:{port}"
        try:
            with SocialCareClient(url) as client:
                client.wait_until_ready(timeout=300)
            return [
                asyncio.run(drive(url, texts, size, concurrency, duration))
                for size, concurrency in SCENARIOS
            ]
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)


def markdown(rows: dict[str, list[list[dict]]], meta: dict) -> str:
    lines = [
        "# One service or two",
        "",
        f"Model `{meta['model']}`; {meta['date']}; {meta['machine']}; {meta['rounds']} "
        f"turns each, {meta['duration_s']:.0f} s per scenario; the two-service design is "
        f"`socialcare serve` at commit {meta['split_commit']}. Each cell: the median over "
        "the turns (each turn's value in brackets).",
        "",
        "| design | 1 post, c1: posts/s | p50 ms | p99 ms | 1 post, c8: posts/s | "
        "32 posts, c8: posts/s | 503s |",
        "|---|---|---|---|---|---|---|",
    ]
    for design, turns in rows.items():

        def cell(scenario: int, key: str, turns=turns) -> str:
            values = [turn[scenario][key] for turn in turns]
            each = ", ".join(f"{v:.0f}" if v >= 100 else f"{v:.1f}" for v in values)
            return f"{float(np.median(values)):.1f} ({each})"

        refused = sum(row["refused_503"] for turn in turns for row in turn)
        lines.append(
            f"| {design} | {cell(0, 'posts_per_s')} | {cell(0, 'p50_ms')} | "
            f"{cell(0, 'p99_ms')} | {cell(1, 'posts_per_s')} | {cell(2, 'posts_per_s')} | "
            f"{refused} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="registered model tag both serve")
    parser.add_argument("--split-commit", default=SPLIT_COMMIT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results stem (.json/.md)")
    args = parser.parse_args(argv)

    texts = benchmark_texts()
    rows: dict[str, list[list[dict]]] = {"one service (this checkout)": [], "two services": []}
    with tempfile.TemporaryDirectory() as worktree:
        split = Path(worktree) / "split"
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(split),
                        args.split_commit], check=True, capture_output=True)  # fmt: skip
        try:
            for turn in range(args.rounds):
                for design, root in zip(rows, (REPO_ROOT, split), strict=True):
                    measured = measure(root, args.model, texts, args.duration)
                    rows[design].append(measured)
                    print(turn, design, [f"{r['posts_per_s']:.0f}/s" for r in measured],
                          f"c1 p50 {measured[0]['p50_ms']:.1f} p99 {measured[0]['p99_ms']:.1f}",
                          flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force",
                            str(split)], check=False)  # fmt: skip
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPUs",
        "model": args.model,
        "split_commit": args.split_commit,
        "rounds": args.rounds,
        "duration_s": args.duration,
    }
    write_results(args.output, markdown(rows, meta), {"meta": meta, "turns": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
