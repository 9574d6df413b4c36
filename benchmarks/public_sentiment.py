"""Test macro-F1 of our models on public Italian and Swedish sentiment corpora.

Trains each model on a public training split, makes every choice on its validation
split, and scores the final model once on its test split:

- ``baseline``: the pipeline's TF-IDF + logistic regression (`socialcare train --kind baseline`);
- ``frozen_lr``: mean-pooled, L2-normalised embeddings of the default backbone, frozen,
  with a logistic regression whose C and class weighting are chosen on validation;
- ``finetune``: the pipeline's fine-tuned backbone (`socialcare train --kind finetune`)
  with the options in ``benchmarks/configs/finetune_<dataset>.json``;
- ``defaults``: the same with `socialcare train`'s default options, as a data scientist
  gets them on their own corpus (issue 12: within 1 point of ``finetune``).

The corpora live in ``../shared/data/public/`` (`socialcare.core.paths.PUBLIC_DATA_DIR`) and
are never copied here; without them the script says so and exits 0.

    .venv/bin/python benchmarks/public_sentiment.py            # full run (about an hour)
    .venv/bin/python benchmarks/public_sentiment.py --quick    # one seed, one epoch
"""

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Same folder: a script's own directory is on sys.path.
from frozen_encoder import C_GRID, CLASS_WEIGHTS, fit_frozen_lr, frozen_features

from socialcare.core import paths

BENCHMARKS_DIR = Path(__file__).resolve().parent
CONFIG_DIR = BENCHMARKS_DIR / "configs"
RESULTS_STEM = BENCHMARKS_DIR / "results" / "public_sentiment"
# Quick (smoke) runs never overwrite the committed results.
QUICK_RESULTS_STEM = paths.ARTIFACTS_DIR / "benchmarks" / "public_sentiment-quick"

# Benchmark name -> file prefix in PUBLIC_DATA_DIR (see its README.md).
DATASETS = {"sentipolc": "sentipolc_it", "swesent": "swesent_sv"}
DATASET_TITLES = {"sentipolc": "SENTIPOLC 2016 (it)", "swesent": "swe-sentiment (sv)"}
MODELS = ("baseline", "frozen_lr", "finetune", "defaults")
MODEL_TITLES = {
    "baseline": "TF-IDF + LR (baseline)",
    "frozen_lr": "frozen e5-small + LR",
    "finetune": "fine-tuned e5-small",
    "defaults": "fine-tuned e5-small, default options",
}
# Published test macro-F1 on the same SENTIPOLC split (XLM-T paper, Barbieri et al.
# 2022, monolingual training); none exists for the Swedish split.
ANCHORS = {
    "sentipolc": {
        "fastText (published)": 54.7,
        "XLM-R base (published)": 71.5,
        "XLM-Tw (published)": 70.9,
    }
}
DEFAULT_SEEDS = (13, 14, 15)


@dataclasses.dataclass
class Run:
    """One trained model's scores (macro-F1 in percent) and its wall time."""

    dataset: str
    model: str
    seed: int
    validation_macro_f1: float
    test_macro_f1: float
    seconds: float  # wall time
    cpu_seconds: float  # CPU time of this process (all threads): unaffected by other jobs
    chosen: dict  # what validation selected (C, class weight), or the training options


def split_file(dataset: str, split: str, data_dir: Path = paths.PUBLIC_DATA_DIR) -> Path:
    return data_dir / f"{DATASETS[dataset]}_{split}.jsonl"


def missing_files(datasets: Sequence[str], data_dir: Path = paths.PUBLIC_DATA_DIR) -> list[Path]:
    return [
        split_file(d, s, data_dir)
        for d in datasets
        for s in paths.SPLITS
        if not split_file(d, s, data_dir).is_file()
    ]


# --- the two pipeline models ---------------------------------------------------------


def finetune_config(dataset: str) -> Path:
    return CONFIG_DIR / f"finetune_{dataset}.json"


def train_with_pipeline(
    dataset: str, model: str, seed: int, data_dir: Path, overrides: dict | None = None
) -> Run:
    """`socialcare train` on the public splits for MODEL (baseline, finetune with the
    dataset's config, or defaults), unregistered, in a temp dir."""
    from socialcare.core.options import config_defaults
    from training.config import TrainOptions
    from training.train import train

    kind = "baseline" if model == "baseline" else "finetune"
    options = config_defaults(TrainOptions, finetune_config(dataset)) if model == "finetune" else {}
    options.update(overrides or {})
    started, cpu_started = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory(prefix=f"public-{dataset}-{kind}-") as tmp:
        opts = TrainOptions(
            **options,
            kind=kind,
            train=[split_file(dataset, "train", data_dir)],
            validation=[split_file(dataset, "validation", data_dir)],
            test=[split_file(dataset, "test", data_dir)],
            output=Path(tmp) / "model",
            register=False,
            labelled_rounds=False,  # the public corpus alone, not the reviewers' rounds
            seed=seed,
        )
        result = train(opts)
    chosen = {k: v for k, v in options.items() if k != "config"}
    if result.parity is not None:  # a fine-tuned model: the path scored, and torch fp32's
        chosen["runtime"] = result.parity["served"]
        for split in ("validation", "test"):
            scores = result.parity[split]["overall"]["sentiment_macro_f1"]
            chosen[f"torch_{split}_macro_f1"] = 100 * scores["torch"]
    metrics = result.metrics
    return Run(
        dataset=dataset,
        model=model,
        seed=seed,
        validation_macro_f1=100 * metrics["validation"]["overall"]["sentiment"]["macro_f1"],
        test_macro_f1=100 * metrics["test"]["overall"]["sentiment"]["macro_f1"],
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(time.process_time() - cpu_started, 1),
        chosen=chosen,
    )


# --- frozen encoder + logistic regression (frozen_encoder.py) ------------------------


def frozen_lr_runs(dataset: str, seeds: Sequence[int], data_dir: Path) -> list[Run]:
    started, cpu_started = time.monotonic(), time.process_time()
    features = frozen_features(
        {split: split_file(dataset, split, data_dir) for split in paths.SPLITS}
    )
    embed_seconds = time.monotonic() - started
    embed_cpu = time.process_time() - cpu_started
    runs = []
    for seed in seeds:
        started, cpu_started = time.monotonic(), time.process_time()
        chosen, val, test = fit_frozen_lr(features, seed)
        # Each run is charged the embedding time once, as if it had embedded alone (the
        # cached embeddings of a rerun cost nothing, so a rerun reports less).
        seconds = round(time.monotonic() - started + embed_seconds, 1)
        cpu = round(time.process_time() - cpu_started + embed_cpu, 1)
        runs.append(Run(dataset, "frozen_lr", seed, val, test, seconds, cpu, chosen))
        print(f"{dataset} frozen_lr seed {seed}: validation {val:.1f}, test {test:.1f} ({chosen})")
    return runs


# --- the table -----------------------------------------------------------------------


def _spread(prefix: str, values: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_mean": statistics.fmean(values),
        f"{prefix}_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        f"{prefix}_min": min(values),
        f"{prefix}_max": max(values),
    }


def summarise(runs: list[Run]) -> list[dict]:
    """Mean, spread and range of each (dataset, model) over its seeds."""
    rows = []
    for dataset in DATASETS:
        for model in MODELS:
            group = [r for r in runs if r.dataset == dataset and r.model == model]
            if not group:
                continue
            row = {
                "dataset": dataset,
                "model": model,
                "seeds": [r.seed for r in group],
                **_spread("test", [r.test_macro_f1 for r in group]),
                "validation_mean": statistics.fmean(r.validation_macro_f1 for r in group),
                "seconds_mean": statistics.fmean(r.seconds for r in group),
                "cpu_seconds_mean": statistics.fmean(r.cpu_seconds for r in group),
            }
            runtimes = sorted({r.chosen["runtime"] for r in group if "runtime" in r.chosen})
            if runtimes:
                row["served_runtimes"] = runtimes
            if all("torch_test_macro_f1" in r.chosen for r in group):
                row |= _spread("torch_test", [r.chosen["torch_test_macro_f1"] for r in group])
                row["torch_validation_mean"] = statistics.fmean(
                    r.chosen["torch_validation_macro_f1"] for r in group
                )
            rows.append(row)
    return rows


def markdown_table(summary: list[dict]) -> str:
    """Dataset × model, test macro-F1 mean ± std over seeds, with the published anchors.

    A fine-tuned model is scored on the runtime training chose to serve (ONNX int8 or
    fp32); the same models' torch fp32 scores follow on their own line.
    """
    lines = [
        "| dataset | model | seeds | test macro-F1 (mean ± std) | test min–max "
        "| validation macro-F1 | wall time per run | CPU time per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        for row in (row for row in summary if row["dataset"] == dataset):
            title = MODEL_TITLES[row["model"]]
            if "served_runtimes" in row:
                title += f" (served: {', '.join(row['served_runtimes'])})"
            lines.append(
                f"| {DATASET_TITLES[dataset]} | {title} | {len(row['seeds'])} | "
                f"{row['test_mean']:.1f} ± {row['test_std']:.1f} | "
                f"{row['test_min']:.1f}–{row['test_max']:.1f} | {row['validation_mean']:.1f} | "
                f"{_duration(row['seconds_mean'])} | {_duration(row['cpu_seconds_mean'])} |"
            )
            if "torch_test_mean" in row:
                lines.append(
                    f"| {DATASET_TITLES[dataset]} | same models, torch fp32 | "
                    f"{len(row['seeds'])} | "
                    f"{row['torch_test_mean']:.1f} ± {row['torch_test_std']:.1f} | "
                    f"{row['torch_test_min']:.1f}–{row['torch_test_max']:.1f} | "
                    f"{row['torch_validation_mean']:.1f} | – | – |"
                )
        for name, value in ANCHORS.get(dataset, {}).items():
            lines.append(
                f"| {DATASET_TITLES[dataset]} | {name} | – | {value:.1f} | – | – | – | – |"
            )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_results(stem: Path, runs: list[Run], settings: dict) -> str:
    """Write ``stem``.json (every run, the summary, the anchors) and ``stem``.md; return the
    Markdown."""
    summary = summarise(runs)
    table = markdown_table(summary)
    stem.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "settings": settings,
        "anchors": ANCHORS,
        "summary": summary,
        "runs": [dataclasses.asdict(r) for r in runs],
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    note = (
        "Sentiment macro-F1 (%) on each public test split; every choice made on validation, "
        "test scored once per final model. Produced by `benchmarks/public_sentiment.py` "
        f"(every run with its settings: `{stem.name}.json`)."
    )
    stem.with_suffix(".md").write_text(
        f"# Public sentiment benchmark\n\n{note}\n\n{table}\n", encoding="utf-8"
    )
    return table


def earlier_runs(stem: Path, replaced: set[tuple[str, str]]) -> list[Run]:
    """Runs kept from an earlier results file: those of (dataset, model) pairs not rerun."""
    path = stem.with_suffix(".json")
    if not path.is_file():
        return []
    runs = [Run(**r) for r in json.loads(path.read_text(encoding="utf-8")).get("runs", [])]
    for dataset, model in sorted(replaced):
        seeds = [r.seed for r in runs if (r.dataset, r.model) == (dataset, model)]
        if seeds:  # a group is one configuration: a rerun of some seeds replaces all of them
            print(f"{path.name}: replacing the runs of {dataset} {model} (seeds {seeds})")
    return [r for r in runs if (r.dataset, r.model) not in replaced]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: first seed only, fine-tuning for 1 epoch"
    )
    parser.add_argument("--data-dir", type=Path, default=paths.PUBLIC_DATA_DIR)
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"results path without suffix (default {RESULTS_STEM}; "
        f"with --quick {QUICK_RESULTS_STEM}); runs of other datasets/models in it are kept",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_files(args.datasets, args.data_dir)
    if missing:
        print(
            f"skipped: public data not found ({', '.join(map(str, missing))}); "
            f"see {paths.PUBLIC_DATA_DIR}/README.md"
        )
        return 0
    seeds = args.seeds[:1] if args.quick else args.seeds
    overrides = {"epochs": 1.0} if args.quick else {}
    stem = args.results or (QUICK_RESULTS_STEM if args.quick else RESULTS_STEM)
    # What holds for every run in the file; each run records its own seed and options.
    settings = {"frozen_lr": {"C_grid": list(C_GRID), "class_weights": list(CLASS_WEIGHTS)}}
    runs = earlier_runs(stem, {(d, m) for d in args.datasets for m in args.models})
    for dataset in args.datasets:
        for model in args.models:
            if model == "frozen_lr":
                new = frozen_lr_runs(dataset, seeds, args.data_dir)
            else:
                new = []
                for seed in seeds:
                    run = train_with_pipeline(dataset, model, seed, args.data_dir, overrides)
                    print(
                        f"{dataset} {model} seed {seed}: validation "
                        f"{run.validation_macro_f1:.1f}, test {run.test_macro_f1:.1f} "
                        f"({run.seconds:.0f} s)"
                    )
                    new.append(run)
            runs += new
            # Written after every model, so a long run that dies keeps what it finished.
            table = write_results(stem, runs, settings)
    print(f"\n{table}\n\nresults: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
