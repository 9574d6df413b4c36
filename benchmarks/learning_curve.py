"""What reviewing buys: writer groups left out, then k of their posts reviewed and learnt.

    nice .venv/bin/python benchmarks/learning_curve.py            # about 90 min on 2 cores
    .venv/bin/python benchmarks/learning_curve.py --folds f --ks 0 200
    .venv/bin/python benchmarks/learning_curve.py --report        # tables from rows.jsonl

Each fold X holds out the writer groups sv-X and it-X (one per language; data v2's
groups e, f and g have about 500 posts each):

1. Every post of the fold's groups is taken out of the shipped splits, and a base model
   is trained on the rest with the main job's recipe: a page whose style it has not seen.
2. Each group is shuffled once: a fixed evaluation set (--eval-size posts) and a pool the
   reviewers label from (so k stops at 200 with 500-post groups).
3. For each k and each way of choosing (``random``, or ``active``: the notebook's order,
   most uncertain first with near-duplicates spread, `socialcare.core.active_learning`),
   k posts per group are written as a reviewers' round and the base model is adapted on
   it with `socialcare adapt`'s defaults; at the largest k, the random round also gets a
   full retrain (`socialcare train` with the round).
4. Every model is scored on each group's evaluation posts (intent and sentiment
   macro-F1), and on the shipped test split minus the fold's groups (what it must not
   forget).

Rows go to <work>/rows.jsonl as they are made, and a rerun skips the rows already there
(and a base already trained), so an interrupted run resumes. The report averages the
folds per language: mean and spread (min to max), and checks the issue's targets.
Writes results/learning_curve.{json,md,png}. The work folder keeps each fold's base
model; an adapted or retrained model (1.3 GB each) is deleted once its row is written.
"""

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results_io import write_results  # noqa: E402
from socialcare.core import paths  # noqa: E402
from socialcare.core.label_store import append_label, make_label, round_path  # noqa: E402
from socialcare.core.records import load_posts, write_posts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = ["--learning-rate", "8e-5", "--head-learning-rate", "2e-3"]  # the main job's
LANGS = ("sv", "it")
# The targets (issue 13).
TARGET_GAIN = 0.05  # intent macro-F1 at k = 200 over k = 0, per language, mean of folds
TARGET_ADAPT_GAP = 0.02  # adapt at most this far below a full retrain
TARGET_TIME_RATIO = 0.25  # adapt's wall time over the full retrain's


def in_group(post, group: str) -> bool:
    return (post.writer or "").startswith(group + "-")


def prepare(work: Path, groups: list[str], eval_size: int, seed: int) -> dict:
    """Split files without the groups; each group's evaluation file and review pool."""
    work.mkdir(parents=True, exist_ok=True)
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
    if k > len(pool):
        raise SystemExit(f"k = {k}, but the pool has {len(pool)} posts: lower --eval-size")
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
    round_file = round_path(1, folder)
    if round_file.exists():
        round_file.unlink()  # a rerun writes the same round again
    for post in posts:
        record = make_label(
            f"lc-{post.id}", post.text, post.lang, post.labels or [], post.sentiment,
            "reviewer", "learning-curve", parent_text=post.parent_text,
        )  # fmt: skip
        append_label(round_file, record)
    return folder


def scores(model_dir: Path, data: dict, groups: list[str]) -> dict:
    """Macro-F1 of both heads on each group's evaluation posts and on the test split."""
    from socialcare.runtime.predictor import Predictor
    from training.report import score

    predictor = Predictor(model_dir)
    out = {}
    for group in groups:
        metrics = score(predictor, [data["evals"][group]])["overall"]
        out[group.split("-")[0]] = {
            "intent": metrics["intent_macro_f1"],
            "sentiment": metrics["sentiment"]["macro_f1"],
        }
    metrics = score(predictor, [data["files"]["test"]])["overall"]
    out["test"] = {
        "intent": metrics["intent_macro_f1"],
        "sentiment": metrics["sentiment"]["macro_f1"],
    }
    return out


def adapted_weight(model_dir: Path) -> float | None:
    info = json.loads((model_dir / "socialcare.json").read_text())
    return info.get("adapted", {}).get("reviewed_weight", {}).get("chosen")


def run_fold(fold: str, args, done: set, log: Path) -> None:
    """Base, adaptations and the retrain of one fold; each row appended to ``log``."""
    groups = [f"{lang}-{fold}" for lang in LANGS]
    work = args.work / f"fold-{fold}"
    data = prepare(work, groups, args.eval_size, args.seed)
    splits = [f"--{s}={data['files'][s]}" for s in paths.SPLITS]
    short = ["--epochs", "0.02"] if args.smoke else []

    def record(row: dict) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    base = work / "base"
    if not (base / "socialcare.json").exists():
        run(["train", *splits, *RECIPE, *short, "--no-register", "--no-labelled-rounds",
             "--output", str(base)])  # fmt: skip
    if (fold, 0, "-", "base") not in done:
        seconds = json.loads((base / "socialcare.json").read_text())["provenance"]["train_seconds"]
        record({"fold": fold, "k": 0, "strategy": "-", "how": "base", "seconds": seconds,
                **scores(base, data, groups)})  # fmt: skip
    top = max(args.ks)
    for k in [k for k in args.ks if k > 0]:
        for strategy in args.strategies:
            wanted = [("adapt", True), ("retrain", k == top and strategy == "random")]
            if all((fold, k, strategy, how) in done for how, due in wanted if due):
                continue
            picked = [
                p for g in groups for p in chosen(data["pools"][g], k, strategy, base, args.seed)
            ]
            rounds = write_round(work / f"rounds-{k}-{strategy}", picked)
            if (fold, k, strategy, "adapt") not in done:
                output = work / f"adapt-{k}-{strategy}"
                seconds = run(["adapt", "--model", str(base), "--labelled-dir", str(rounds),
                               "--output", str(output), "--no-register",
                               *(["--epochs", "1"] if args.smoke else [])])  # fmt: skip
                record({"fold": fold, "k": k, "strategy": strategy, "how": "adapt",
                        "seconds": seconds, "reviewed_weight": adapted_weight(output),
                        **scores(output, data, groups)})  # fmt: skip
                shutil.rmtree(output)
            if wanted[1][1] and not args.no_retrain and (fold, k, strategy, "retrain") not in done:
                output = work / f"retrain-{k}-{strategy}"
                seconds = run(["train", *splits, *RECIPE, *short, "--no-register",
                               "--labelled-dir", str(rounds), "--output", str(output)])  # fmt: skip
                record({"fold": fold, "k": k, "strategy": strategy, "how": "retrain",
                        "seconds": seconds, **scores(output, data, groups)})  # fmt: skip
                shutil.rmtree(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", nargs="+", default=["e", "f", "g"])
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 50, 100, 200])
    parser.add_argument("--strategies", nargs="+", default=["random", "active"])
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work", type=Path, default=paths.ARTIFACTS_DIR / "learning_curve")
    parser.add_argument("--results", type=Path, default=RESULTS / "learning_curve")
    parser.add_argument("--no-retrain", action="store_true", help="skip the full retrain")
    parser.add_argument("--report", action="store_true", help="only tabulate rows.jsonl")
    parser.add_argument(
        "--smoke", action="store_true", help="a few steps of everything (the results go to --work)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.ks, args.eval_size, args.folds = [0, 20], 50, args.folds[:1]
        args.results = args.work / "learning_curve-smoke"
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "rows.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if not args.report:
        for fold in args.folds:
            done = {(r["fold"], r["k"], r["strategy"], r["how"]) for r in rows}
            run_fold(fold, args, done, log)
            rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows = [r for r in rows if r["fold"] in args.folds and r["k"] in args.ks]
    report(args.results, rows, args)
    return 0


def _mean_spread(values: list[float]) -> str:
    """'mean (min–max)' in points, or the one value."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ({100 * min(values):.1f}–{100 * max(values):.1f})"


def summary(rows: list[dict], folds: list[str]) -> list[dict]:
    """One line per (k, strategy, how): each language's and test's scores over the folds."""
    keys = sorted(
        {(r["k"], r["strategy"], r["how"]) for r in rows}, key=lambda k: (k[0], k[2], k[1])
    )
    lines = []
    for k, strategy, how in keys:
        matching = [r for r in rows if (r["k"], r["strategy"], r["how"]) == (k, strategy, how)]
        line = {
            "k": k,
            "strategy": strategy,
            "how": how,
            "folds": sorted(r["fold"] for r in matching),
        }
        for name in (*LANGS, "test"):
            for head in ("intent", "sentiment"):
                line[f"{name} {head}"] = [r[name][head] for r in matching]
        line["seconds"] = [r["seconds"] for r in matching]
        line["reviewed_weight"] = [
            r.get("reviewed_weight") for r in matching if r.get("reviewed_weight")
        ]
        lines.append(line)
    return lines


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with what was measured (means over the folds that have both)."""
    by = {(r["fold"], r["k"], r["strategy"], r["how"]): r for r in rows}
    folds = sorted({r["fold"] for r in rows})
    ks = sorted({r["k"] for r in rows if r["k"] > 0})
    out = []

    def mean_diff(a, b, name, head):
        pairs = [(by[(f, *a)], by[(f, *b)]) for f in folds if (f, *a) in by and (f, *b) in by]
        return (
            (statistics.mean(x[name][head] - y[name][head] for x, y in pairs), len(pairs))
            if pairs
            else (None, 0)
        )

    top = max(ks) if ks else None
    for lang in LANGS:
        for strategy in ("random", "active"):
            gain, n = mean_diff((top, strategy, "adapt"), (0, "-", "base"), lang, "intent")
            if gain is not None:
                verdict = "met" if gain >= TARGET_GAIN else "not met"
                out.append(
                    f"- {lang}, k = {top}, adapt, {strategy}: intent {100 * gain:+.1f} points "
                    f"over k = 0 (mean of {n} folds; target +{100 * TARGET_GAIN:.0f}): "
                    f"**{verdict}**"
                )
            gain, n = mean_diff((top, strategy, "retrain"), (0, "-", "base"), lang, "intent")
            if gain is not None:
                out.append(
                    f"- {lang}, k = {top}, full retrain, {strategy}: intent "
                    f"{100 * gain:+.1f} points over k = 0 (mean of {n} folds)"
                )
    for lang in LANGS:
        cells = []
        for k in ks:
            diff, n = mean_diff((k, "active", "adapt"), (k, "random", "adapt"), lang, "intent")
            if diff is not None:
                cells.append(f"k = {k}: {100 * diff:+.1f}")
        if cells:
            verdict = "met" if all(float(c.split(": ")[1]) >= 0 for c in cells) else "not met"
            out.append(
                f"- {lang}: active − random, intent (adapt): {', '.join(cells)}: "
                f"**{verdict}** (target ≥ 0 at every k)"
            )
    for lang in LANGS:
        gap, n = mean_diff((top, "random", "retrain"), (top, "random", "adapt"), lang, "intent")
        if gap is not None:
            verdict = "met" if gap <= TARGET_ADAPT_GAP else "not met"
            out.append(
                f"- {lang}, k = {top}: full retrain − adapt, intent: {100 * gap:+.1f} points: "
                f"**{verdict}** (target ≤ {100 * TARGET_ADAPT_GAP:.0f})"
            )
    ratios = [
        by[(f, top, "random", "adapt")]["seconds"] / by[(f, top, "random", "retrain")]["seconds"]
        for f in folds
        if (f, top, "random", "adapt") in by and (f, top, "random", "retrain") in by
    ]
    if ratios:
        verdict = "met" if max(ratios) <= TARGET_TIME_RATIO else "not met"
        out.append(
            f"- wall time, adapt / full retrain at k = {top}: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}: **{verdict}** (target ≤ {TARGET_TIME_RATIO})"
        )
    import dataclasses

    from training.promote import PromoteOptions

    [field] = [f for f in dataclasses.fields(PromoteOptions) if f.name == "tolerance"]
    tolerance = field.default / 100
    for strategy in ("random", "active"):
        for head in ("intent", "sentiment"):
            loss, n = mean_diff((0, "-", "base"), (top, strategy, "adapt"), "test", head)
            if loss is not None:
                verdict = "met" if loss <= tolerance else "not met"
                out.append(
                    f"- test split, {head}, adapt ({strategy}, k = {top}) vs base: "
                    f"{100 * -loss:+.1f} points: **{verdict}** (tolerance "
                    f"{100 * tolerance:.0f} points, as `socialcare promote`)"
                )
    return out


def report(stem: Path, rows: list[dict], args) -> None:
    folds = sorted({r["fold"] for r in rows})
    lines = summary(rows, folds)
    header = ["k per group", "chosen", "model", "folds", "wall time (s)"]
    header += [f"{name} {head}" for name in (*LANGS, "test") for head in ("intent", "sentiment")]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for line in lines:
        cells = [str(line["k"]), line["strategy"], line["how"], ",".join(line["folds"]),
                 f"{statistics.mean(line['seconds']):.0f}"]  # fmt: skip
        cells += [_mean_spread(line[f"{name} {head}"]) for name in (*LANGS, "test")
                  for head in ("intent", "sentiment")]  # fmt: skip
        table.append("| " + " | ".join(cells) + " |")
    weights = [w for line in lines for w in line["reviewed_weight"]]
    markdown = (
        "# Learning curve: writer groups left out, then k of their posts reviewed\n\n"
        f"Folds {', '.join(folds)}: fold X holds out the writer groups sv-X and it-X. Each "
        f"group keeps {args.eval_size} posts to score on; k of the rest are reviewed "
        "(`random`, or `active`: the notebook's order). Macro-F1 in points, mean over the "
        "folds (min–max); `sv`/`it`: the held-out group's evaluation posts; `test`: the "
        "shipped test split without the fold's groups. `adapt`: `socialcare adapt` with its "
        "defaults; `retrain`: `socialcare train` on the base's data plus the round.\n\n"
        "Command: `nice .venv/bin/python benchmarks/learning_curve.py`\n\n"
        + "\n".join(table)
        + "\n\n## The issue's targets\n\n"
        + "\n".join(targets(rows))
        + (
            f"\n\nReviewed weights `socialcare adapt` chose on the held-out reviewed posts: "
            f"{', '.join(f'{w:g}' for w in weights)}.\n"
            if weights
            else "\n"
        )  # fmt: skip
    )
    write_results(stem, markdown, {"settings": vars(args) | {"work": str(args.work),
                  "results": str(args.results)}, "rows": rows})  # fmt: skip
    plot(stem.with_suffix(".png"), rows, lines)


def plot(path: Path, rows: list[dict], lines: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LANGS), figsize=(5 * len(LANGS), 4), squeeze=False)
    for ax, lang in zip(axes[0], LANGS, strict=True):
        base = next((line for line in lines if line["how"] == "base"), None)
        for strategy in ("random", "active"):
            points = [
                line for line in lines if line["how"] == "adapt" and line["strategy"] == strategy
            ]
            if base:
                points = [base, *points]
            if len(points) < 2:
                continue
            ks = [line["k"] for line in points]
            values = [line[f"{lang} intent"] for line in points]
            ax.plot(
                ks,
                [100 * statistics.mean(v) for v in values],
                marker="o",
                label=f"adapt, {strategy}",
            )
            ax.fill_between(
                ks, [100 * min(v) for v in values], [100 * max(v) for v in values], alpha=0.15
            )
        for line in lines:
            if line["how"] == "retrain":
                ax.plot(
                    [line["k"]],
                    [100 * statistics.mean(line[f"{lang} intent"])],
                    "s",
                    label="full retrain, random",
                )
        ax.set_title(f"{lang}: intent macro-F1 on the held-out group (mean of folds)")
        ax.set_xlabel("reviewed posts of the group (k)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
