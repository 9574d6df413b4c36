"""What reviewing buys: a writer group left out, then k of its posts reviewed and learnt.

    nice .venv/bin/python benchmarks/learning_curve.py            # about 45 min on 2 cores
    .venv/bin/python benchmarks/learning_curve.py --ks 0 100 200 --groups sv-f it-f

1. Every post of the held-out writer groups (one per language by default) is taken out of
   the shipped splits, and a base model is trained on the rest with the main job's recipe:
   a page whose style the model has not seen.
2. Each group is shuffled once: a fixed evaluation set (--eval-size posts) and a pool the
   reviewers label from.
3. For each k and each way of choosing (``random``, or ``active``: the notebook's order,
   most uncertain first with near-duplicates spread, `socialcare.core.active_learning`),
   k posts per group are written as a reviewers' round and the base model is adapted on
   it (`socialcare adapt`); at the largest k, the random round also gets a full retrain.
4. Every model is scored on each group's evaluation posts (intent and sentiment
   macro-F1), and on the shipped test split minus the groups (what it must not forget).

Writes results/learning_curve.{json,md,png}; the work folder keeps the models.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402
from socialcare.core.label_store import append_label, make_label, round_path  # noqa: E402
from socialcare.core.records import load_posts, write_posts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = ["--learning-rate", "8e-5", "--head-learning-rate", "2e-3"]  # the main job's


def in_group(post, group: str) -> bool:
    return (post.writer or "").startswith(group + "-")


def prepare(work: Path, groups: list[str], eval_size: int, seed: int) -> dict:
    """Split files without the groups; each group's evaluation file and review pool."""
    files = {}
    for split in paths.SPLITS:
        kept = [
            p
            for p in load_posts([paths.seed_split(split)])
            if not any(in_group(p, g) for g in groups)
        ]
        files[split] = work / f"{split}-without-groups.jsonl"
        write_posts(files[split], kept)
    everything = load_posts([paths.seed_split(split) for split in paths.SPLITS])
    pools, evals = {}, {}
    for group in groups:
        posts = [p for p in everything if in_group(p, group)]
        random.Random(seed).shuffle(posts)
        evals[group] = work / f"eval-{group}.jsonl"
        write_posts(evals[group], posts[:eval_size])
        pools[group] = posts[eval_size:]
    return {"files": files, "evals": evals, "pools": pools}


def run(argv: list[str]) -> float:
    """`socialcare ARGV` in this process; its wall time."""
    from socialcare.cli import main

    started = time.monotonic()
    if main(argv) != 0:
        raise SystemExit(f"socialcare {' '.join(argv)} failed")
    return time.monotonic() - started


def chosen(pool: list, k: int, strategy: str, model_dir: Path, seed: int) -> list:
    if strategy == "random":
        return random.Random(seed).sample(pool, k)
    from socialcare.core.active_learning import order_for_review
    from socialcare.runtime.predictor import Predictor

    predictions = Predictor(model_dir).predict(
        [p.text for p in pool], [p.lang for p in pool], [p.parent_text for p in pool]
    )
    order = order_for_review(
        predictions.intent_prob,
        predictions.sentiment_prob,
        predictions.thresholds,
        [p.text for p in pool],
        k=k,
    )
    return [pool[i] for i in order]


def write_round(folder: Path, posts: list) -> Path:
    for post in posts:
        record = make_label(
            f"lc-{post.id}", post.text, post.lang, post.labels or [], post.sentiment,
            "reviewer", "learning-curve", parent_text=post.parent_text,
        )  # fmt: skip
        append_label(round_path(1, folder), record)
    return folder


def scores(model_dir: Path, data: dict, groups: list[str]) -> dict:
    from socialcare.runtime.predictor import Predictor
    from training.report import score

    predictor = Predictor(model_dir)
    out = {}
    for name, files in {
        **{g: [data["evals"][g]] for g in groups},
        "test": [data["files"]["test"]],
    }.items():
        metrics = score(predictor, files)["overall"]
        out[name] = {
            "intent": metrics["intent_macro_f1"],
            "sentiment": metrics["sentiment"]["macro_f1"],
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", nargs="+", default=["sv-f", "it-f"])
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 50, 100, 200])
    parser.add_argument("--strategies", nargs="+", default=["random", "active"])
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", type=Path, default=paths.ARTIFACTS_DIR / "learning_curve")
    parser.add_argument("--results", type=Path, default=RESULTS / "learning_curve")
    parser.add_argument("--no-retrain", action="store_true", help="skip the full retrain")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps of everything (the results go to --work)"
    )
    args = parser.parse_args()
    short = []
    if args.smoke:
        args.ks, args.eval_size, short = [0, 20], 50, ["--epochs", "0.02"]
        args.results = args.work / "learning_curve-smoke"

    args.work.mkdir(parents=True, exist_ok=True)
    data = prepare(args.work, args.groups, args.eval_size, args.seed)
    common = ["--no-register", "--no-labelled-rounds"]
    splits = [f"--{s}={data['files'][s]}" for s in paths.SPLITS]
    base = args.work / "base"
    rows = []
    if not (base / "socialcare.json").exists():
        seconds = run(["train", *splits, *RECIPE, *short, *common, "--output", str(base)])
    else:
        seconds = None
    rows.append(
        {
            "k": 0,
            "strategy": "-",
            "how": "base",
            "seconds": seconds,
            **scores(base, data, args.groups),
        }
    )
    top = max(args.ks)
    for k in [k for k in args.ks if k > 0]:
        for strategy in args.strategies:
            picked = [
                p
                for g in args.groups
                for p in chosen(data["pools"][g], k, strategy, base, args.seed)
            ]
            rounds = write_round(args.work / f"rounds-{k}-{strategy}", picked)
            output = args.work / f"adapt-{k}-{strategy}"
            seconds = run(["adapt", "--model", str(base), "--labelled-dir", str(rounds),
                           "--output", str(output), "--no-register", *short])  # fmt: skip
            rows.append({"k": k, "strategy": strategy, "how": "adapt", "seconds": seconds,
                         **scores(output, data, args.groups)})  # fmt: skip
            if k == top and strategy == "random" and not args.no_retrain:
                output = args.work / f"retrain-{k}-{strategy}"
                seconds = run(["train", *splits, *RECIPE, *short, "--no-register",
                               "--labelled-dir", str(rounds), "--output", str(output)])  # fmt: skip
                rows.append({"k": k, "strategy": strategy, "how": "retrain", "seconds": seconds,
                             **scores(output, data, args.groups)})  # fmt: skip
            print(json.dumps(rows[-1]))
    write(args.results, rows, args)
    return 0


def write(stem: Path, rows: list[dict], args) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "groups": args.groups,
        "ks": args.ks,
        "eval_size": args.eval_size,
        "seed": args.seed,
    }
    stem.with_suffix(".json").write_text(
        json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n"
    )
    header = ["k per group", "chosen", "model", "wall time"]
    for name in [*args.groups, "test"]:
        header += [f"{name} intent", f"{name} sentiment"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["k"]), row["strategy"], row["how"],
                 "-" if row["seconds"] is None else f"{row['seconds']:.0f} s"]  # fmt: skip
        for name in [*args.groups, "test"]:
            cells += [f"{100 * row[name]['intent']:.1f}", f"{100 * row[name]['sentiment']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    text = (
        "# Learning curve: a writer group left out, then k of its posts reviewed\n\n"
        f"Groups {', '.join(args.groups)}, {args.eval_size} evaluation posts each; macro-F1 (%). "
        "`test`: the shipped test split without the groups.\n\n" + "\n".join(lines) + "\n"
    )
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.groups), figsize=(5 * len(args.groups), 4), squeeze=False)
    for ax, group in zip(axes[0], args.groups, strict=True):
        for strategy in args.strategies:
            points = [(0, rows[0][group]["intent"])] + [
                (r["k"], r[group]["intent"])
                for r in rows
                if r["how"] == "adapt" and r["strategy"] == strategy
            ]
            ax.plot(*zip(*points, strict=True), marker="o", label=f"adapt, {strategy}")
        for r in rows:
            if r["how"] == "retrain":
                ax.plot([r["k"]], [r[group]["intent"]], "s", label="full retrain, random")
        ax.set_title(f"{group}: intent macro-F1 on its evaluation posts")
        ax.set_xlabel("reviewed posts of the group (k)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
