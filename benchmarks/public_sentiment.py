"""Test macro-F1 of our models on public Italian and Swedish sentiment corpora.

Trains each model on a public training split, makes every choice on its validation
split, and scores the final model once on its test split:

- ``baseline``: the pipeline's TF-IDF + logistic regression (`socialcare train --kind baseline`);
- ``frozen_lr``: mean-pooled, L2-normalised embeddings of the default backbone, frozen,
  with a logistic regression whose C and class weighting are chosen on validation;
- ``finetune``: the pipeline's fine-tuned backbone (`socialcare train --kind finetune`)
  with the options in ``benchmarks/configs/finetune_<dataset>.json``.

The corpora live in ``../shared/data/public/`` (`socialcare.core.paths.PUBLIC_DATA_DIR`) and
are never copied here; without them the script says so and exits 0.

    .venv/bin/python benchmarks/public_sentiment.py            # full run (about an hour)
    .venv/bin/python benchmarks/public_sentiment.py --quick    # one seed, one epoch
"""

import argparse
import dataclasses
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from socialcare.core import paths
from socialcare.core.labels import SENTIMENTS

BENCHMARKS_DIR = Path(__file__).resolve().parent
CONFIG_DIR = BENCHMARKS_DIR / "configs"
RESULTS_STEM = BENCHMARKS_DIR / "results" / "public_sentiment"
# Quick (smoke) runs never overwrite the committed results.
QUICK_RESULTS_STEM = paths.ARTIFACTS_DIR / "benchmarks" / "public_sentiment-quick"
EMBEDDING_CACHE = paths.CACHE_DIR / "benchmarks" / "embeddings"

# Benchmark name -> file prefix in PUBLIC_DATA_DIR (see its README.md).
DATASETS = {"sentipolc": "sentipolc_it", "swesent": "swesent_sv"}
DATASET_TITLES = {"sentipolc": "SENTIPOLC 2016 (it)", "swesent": "swe-sentiment (sv)"}
MODELS = ("baseline", "frozen_lr", "finetune")
MODEL_TITLES = {
    "baseline": "TF-IDF + LR (baseline)",
    "frozen_lr": "frozen e5-small + LR",
    "finetune": "fine-tuned e5-small",
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
# C of the frozen-encoder logistic regression: a log grid, chosen on validation.
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CLASS_WEIGHTS = (None, "balanced")


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


def macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Sentiment macro-F1 in percent over the three classes (as the XLM-T paper reports)."""
    from sklearn.metrics import f1_score

    labels = list(range(len(SENTIMENTS)))
    return 100 * float(f1_score(true, pred, labels=labels, average="macro", zero_division=0))


# --- the two pipeline models ---------------------------------------------------------


def finetune_config(dataset: str) -> Path:
    return CONFIG_DIR / f"finetune_{dataset}.json"


def train_with_pipeline(
    dataset: str, kind: str, seed: int, data_dir: Path, overrides: dict | None = None
) -> Run:
    """`socialcare train --kind KIND` on the public splits, unregistered, in a temp dir."""
    from socialcare.core.options import config_defaults
    from socialcare.runtime.predictor import INFO_FILE
    from training.config import TrainOptions
    from training.train import run_train

    options = config_defaults(TrainOptions, finetune_config(dataset)) if kind == "finetune" else {}
    options.update(overrides or {})
    started, cpu_started = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory(prefix=f"public-{dataset}-{kind}-") as tmp:
        output = Path(tmp) / "model"
        opts = TrainOptions(
            **options,
            kind=kind,
            train=[split_file(dataset, "train", data_dir)],
            validation=[split_file(dataset, "validation", data_dir)],
            test=[split_file(dataset, "test", data_dir)],
            output=output,
            register=False,
            labelled_rounds=False,  # the public corpus alone, not the reviewers' rounds
            seed=seed,
        )
        run_train(opts)
        metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
        info = json.loads((output / INFO_FILE).read_text(encoding="utf-8"))
    chosen = {k: v for k, v in options.items() if k != "config"}
    if kind == "finetune" and "runtime" in info.get("provenance", {}):
        chosen["runtime"] = info["provenance"]["runtime"]  # the path that was scored
    if "runtime_parity" in metrics:  # the same model's scores in torch fp32
        for split in ("validation", "test"):
            scores = metrics["runtime_parity"][split]["overall"]["sentiment_macro_f1"]
            chosen[f"torch_{split}_macro_f1"] = 100 * scores["torch"]
    return Run(
        dataset=dataset,
        model="finetune" if kind == "finetune" else "baseline",
        seed=seed,
        validation_macro_f1=100 * metrics["validation"]["overall"]["sentiment"]["macro_f1"],
        test_macro_f1=100 * metrics["test"]["overall"]["sentiment"]["macro_f1"],
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(time.process_time() - cpu_started, 1),
        chosen=chosen,
    )


# --- frozen encoder + logistic regression --------------------------------------------


def embed(
    texts: Sequence[str], model_dir: str, prefix: str, max_length: int = 128, batch_size: int = 32
) -> np.ndarray:
    """Mean-pooled, L2-normalised encoder outputs (how e5 embeds), shortest texts first."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from socialcare.runtime.model import mean_pool

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    # Sorting by length keeps padding (wasted CPU) small within each batch.
    order = np.argsort([len(t) for t in texts], kind="stable")
    vectors = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [prefix + texts[i] for i in rows],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]))
            vectors[rows] = pooled.numpy()
    return vectors


def cached_embeddings(path: Path, texts: list[str], model_dir: str, prefix: str) -> np.ndarray:
    """Embeddings of one split, cached on disk under a hash of the model, prefix and texts.

    They depend on neither the seed nor the classifier, so every seed and C reuses them.
    """
    key = hashlib.sha256(
        "\0".join([str(model_dir), prefix, path.name, *texts]).encode("utf-8")
    ).hexdigest()[:16]
    cache = EMBEDDING_CACHE / f"{path.stem}-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    vectors = embed(texts, model_dir, prefix)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def load_split(dataset: str, split: str, data_dir: Path) -> tuple[list[str], np.ndarray]:
    from socialcare.core.records import load_posts

    posts = load_posts([split_file(dataset, split, data_dir)])
    return [p.text for p in posts], np.array([SENTIMENTS.index(p.sentiment) for p in posts])


def frozen_features(dataset: str, data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(embeddings, sentiment indices) of each split, with the default backbone."""
    from training.backbone import DEFAULT_BASE_MODEL, resolve_base_model
    from training.train import default_text_prefix

    model_dir = resolve_base_model(DEFAULT_BASE_MODEL)
    prefix = default_text_prefix(DEFAULT_BASE_MODEL)
    features = {}
    for split in paths.SPLITS:
        texts, labels = load_split(dataset, split, data_dir)
        path = split_file(dataset, split, data_dir)
        features[split] = (cached_embeddings(path, texts, model_dir, prefix), labels)
    return features


def fit_frozen_lr(
    features: dict[str, tuple[np.ndarray, np.ndarray]], seed: int
) -> tuple[dict, float, float]:
    """Pick C and class weighting on validation, then score that one model on test once.

    Returns (choice, validation macro-F1, test macro-F1).
    """
    from sklearn.linear_model import LogisticRegression

    (x_train, y_train), (x_val, y_val) = features["train"], features["validation"]

    def model(c: float, weight: str | None) -> LogisticRegression:
        return LogisticRegression(C=c, class_weight=weight, max_iter=5000, random_state=seed)

    scored = []
    for weight in CLASS_WEIGHTS:
        for c in C_GRID:
            fitted = model(c, weight).fit(x_train, y_train)
            scored.append((macro_f1(y_val, fitted.predict(x_val)), c, weight))
    # Ties go to the smaller C (the stronger regularisation), then to no weighting.
    best_val, c, weight = max(scored, key=lambda s: (s[0], -s[1], s[2] is None))
    x_test, y_test = features["test"]
    final = model(c, weight).fit(x_train, y_train)
    return {"C": c, "class_weight": weight}, best_val, macro_f1(y_test, final.predict(x_test))


def frozen_lr_runs(dataset: str, seeds: Sequence[int], data_dir: Path) -> list[Run]:
    started, cpu_started = time.monotonic(), time.process_time()
    features = frozen_features(dataset, data_dir)
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
                kind = "finetune" if model == "finetune" else "baseline"
                new = []
                for seed in seeds:
                    run = train_with_pipeline(dataset, kind, seed, args.data_dir, overrides)
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
