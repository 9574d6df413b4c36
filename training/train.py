"""`socialcare train`: load → fit → calibrate each runtime → choose → write → register.

`train` is the library call (the CLI, the main job, benchmarks and notebooks use it and
its `TrainResult`); `run_train` is the command, which prints what it returns.
"""

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from socialcare.core import paths
from socialcare.core.arrays import LabelArrays, encode_posts, has_sentiment
from socialcare.core.evaluation import format_scores
from socialcare.core.labels import SENTIMENTS
from socialcare.core.records import DataError, Problem, load_posts
from socialcare.core.review_rate import review_calibration
from socialcare.runtime.predictor import RUNTIMES, TORCH, model_labels, write_info
from socialcare.runtime.registry import register
from training.config import TrainingData, TrainOptions
from training.report import code_version, data_hash, library_versions, plot, write_report
from training.runtimes import (
    REVIEWED,
    VALIDATION,
    Calibrated,
    choose_served,
    compare_runtimes,
    format_parity,
)


def _check_trainable(arrays: LabelArrays, files: list[Path], role: str) -> None:
    """Some post must carry labels, and a sentiment head needs all three classes.

    A corpus labelled only for sentiment (or only for intents) is fine: the other head
    is masked out of the loss and keeps its untrained defaults.
    """
    where = Path(", ".join(map(str, files)))
    present = set(arrays.sentiment[has_sentiment(arrays.sentiment)].tolist())
    problems = []
    if not arrays.intent_known.any() and not present:
        problems.append(Problem(where, 0, "labels", f"no {role} post has labels or a sentiment"))
    missing = [name for i, name in enumerate(SENTIMENTS) if i not in present]
    if present and missing:
        problems.append(
            Problem(where, 0, "sentiment", f"no {role} post has sentiment {', '.join(missing)}")
        )
    if problems:
        raise DataError(problems)


def default_text_prefix(base_model: str) -> str:
    """e5 models were trained to embed texts after 'query: ' (their model card's advice)."""
    return "query: " if "e5" in base_model.lower() else ""


def fit(
    opts: TrainOptions, splits: dict[str, LabelArrays], data: TrainingData, output: Path
) -> dict:
    """Train the model into ``output``; return what socialcare.json must record about it."""
    train, validation = splits["train"], splits[VALIDATION]
    if opts.parent is not None:  # socialcare adapt: the parent's top layers learn the rounds
        from training.adapt import fit_adapted

        return fit_adapted(opts, splits, data.reviewed_rows, output)
    if opts.teacher is not None:  # socialcare distill: fewer layers, the teacher's answers
        from training.distill import fit_student

        return fit_student(opts, splits, output)
    if opts.kind == "baseline":
        from training.baseline import fit_baseline, save_baseline

        save_baseline(fit_baseline(train, seed=opts.seed), output)
        return {"kind": "baseline"}

    from training.backbone import resolve_base_model
    from training.finetune import FinetuneSettings, finetune, mixed_precision

    prefix = (
        opts.text_prefix if opts.text_prefix is not None else default_text_prefix(opts.base_model)
    )
    rates = opts.learning_rates()
    settings = FinetuneSettings(
        base_model=resolve_base_model(opts.base_model),
        text_prefix=prefix,
        max_length=opts.max_length,
        epochs=opts.epochs,
        learning_rate=rates[0][0],
        head_learning_rate=rates[0][1],
        batch_size=opts.batch_size,
        warmup_ratio=opts.warmup_ratio,
        weight_decay=opts.weight_decay,
        patience=opts.patience,
        freeze_embeddings=opts.freeze_embeddings,
        frozen_layers=opts.frozen_layers,
        seed=opts.seed,
        precision=opts.precision,
    )
    tried = []
    with tempfile.TemporaryDirectory(prefix="socialcare-rates-") as scratch:
        for i, (lr, head_lr) in enumerate(rates):
            target = output if len(rates) == 1 else Path(scratch) / str(i)
            run = dataclasses.replace(settings, learning_rate=lr, head_learning_rate=head_lr)
            score = finetune(train, validation, run, target)
            tried.append({"learning_rate": lr, "head_learning_rate": head_lr, "score": score})
            if len(rates) > 1:
                print(f"learning rate {lr:g} (heads {head_lr:g}): validation score {score:.4f}")
        chosen = max(range(len(tried)), key=lambda i: tried[i]["score"])  # first of ties
        if len(rates) > 1:
            shutil.copytree(Path(scratch) / str(chosen), output, dirs_exist_ok=True)
            print(f"kept learning rate {tried[chosen]['learning_rate']:g}")
    return {
        "kind": "finetune",
        "text_prefix": prefix,
        "max_length": opts.max_length,
        "base_model": opts.base_model,
        "base_model_path": settings.base_model,
        "training_precision": "bf16" if mixed_precision(opts.precision) else "fp32",
        # Each pair tried and its validation selection score; the kept one first-best.
        "learning_rates": {"chosen": tried[chosen], "tried": tried},
    }


@dataclass(frozen=True)
class TrainResult:
    """What `train` made: the model directory and what it wrote there, and the registry tag."""

    directory: Path
    info: dict  # socialcare.json as written (kind, text handling, labels, decision, provenance)
    metrics: dict[str, dict]  # per split ("validation", "test"): evaluate_predictions' result
    parity: dict | None  # the runtime parity report (fine-tuned models), also in metrics.json
    tag: str | None  # name:version in the model store, or None when not registered


def load_splits(
    opts: TrainOptions, train_files: list[Path], data: TrainingData
) -> dict[str, LabelArrays]:
    """Training, validation, the reviewed posts held out (when there are enough) and
    (when given) test posts, each read and encoded once."""
    splits = {
        "train": encode_posts(data.posts, data.weights),
        VALIDATION: encode_posts(load_posts(opts.validation)),
    }
    if data.reviewed_held_out:
        splits[REVIEWED] = encode_posts(data.reviewed_held_out)
    if opts.test:
        splits["test"] = encode_posts(load_posts(opts.test))
    _check_trainable(splits["train"], train_files, "training")
    _check_trainable(splits[VALIDATION], opts.validation, VALIDATION)
    return splits


def trained_heads(train: LabelArrays) -> list[str]:
    """The heads some training post has labels for (the predictor mutes the others)."""
    labelled = (
        ("intents", train.intent_known.any()),
        ("sentiment", has_sentiment(train.sentiment).any()),
    )
    return [head for head, any_labels in labelled if any_labels]


def choose_served_runtime(
    opts: TrainOptions, output: Path, info: dict, held_out: dict[str, LabelArrays]
) -> tuple[dict, Calibrated, dict | None]:
    """Calibrate every runtime the model can be served on, pick one; (info, it, parity).

    A fine-tuned model is exported to ONNX first and compared on torch, ONNX fp32 and ONNX
    int8 (the fastest that passes the quality gate, training.runtimes); the returned info
    records the export (``onnx``) and the served ``runtime``. A baseline has one runtime
    and no parity report.
    """
    runtimes: tuple[str | None, ...] = (None,)  # the baseline's own (scikit-learn)
    if opts.kind == "finetune":
        from training.export import export_onnx

        validation = held_out[VALIDATION]
        exported = export_onnx(output, info, (validation.texts, validation.parents))
        info = dict(info, onnx=exported)
        runtimes = tuple(r for r in RUNTIMES if r == TORCH or r in exported["files"])
    compared = compare_runtimes(output, held_out, runtimes, opts.threshold_rule(), info)
    served, parity = choose_served(compared, held_out)
    if parity is not None:
        info = dict(info, runtime=served.runtime)
    return info, served, parity


def train(opts: TrainOptions) -> TrainResult:
    """load → fit → export and calibrate each runtime → choose → write → register.

    Writes socialcare.json, metrics.json and model_card.md into the model directory once
    each (and plots of the test predictions); returns what they say.
    """
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    output = opts.output or paths.ARTIFACTS_DIR / "models" / f"{opts.kind}-{stamp}"

    train_files = opts.train_files()  # --train plus the reviewers' labelled rounds
    data = opts.training_data()
    splits = load_splits(opts, train_files, data)
    held_out_ids = sorted({post.id for post in data.reviewed_held_out})
    held_out = {split: arrays for split, arrays in splits.items() if split != "train"}
    print(", ".join(f"{split}: {len(arrays.texts)} posts" for split, arrays in splits.items()))

    info = fit(opts, splits, data, output)
    info |= {"labels": model_labels(), "trained_heads": trained_heads(splits["train"])}
    info, served, parity = choose_served_runtime(opts, output, info, held_out)
    if "test" in held_out:
        plot(served.metrics["test"], held_out["test"], served.predictions["test"], output / "plots")

    provenance = {
        "kind": opts.kind,
        "train_files": [str(p) for p in train_files],
        "validation_files": [str(p) for p in opts.validation],
        "train_data_sha256": data_hash(train_files),
        "validation_data_sha256": data_hash(opts.validation),
        # Reviewed posts kept out of training: the promotion gate scores them too.
        "reviewed_held_out": held_out_ids,
        "parent_model": opts.parent,  # the model this one continues (socialcare adapt)
        "teacher_model": opts.teacher,  # the model this one is a student of (socialcare distill)
        "file_sha256": {str(path): data_hash([path]) for path in train_files},
        "code_version": code_version(),
        "libraries": library_versions(),
        "options": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(opts).items()
            if k not in ("train", "validation", "test")
        },
        "decision": dataclasses.asdict(served.decision),
        "runtime": served.runtime,
        "train_seconds": round(time.monotonic() - started, 1),
        "trained_at": stamp,
    }
    validation = served.predictions[VALIDATION]
    info = dict(
        info,
        provenance=provenance,
        decision=dataclasses.asdict(served.decision),
        # Lets the service turn the policy's review rate into a band (core.review_rate).
        review_calibration=review_calibration(
            validation.intent_prob, validation.thresholds, VALIDATION
        ),
    )
    write_info(output, info, served.decision)
    write_report(output, f"{opts.name} ({opts.kind}, {stamp})", provenance, served.metrics, parity)
    tag = None
    if opts.register:
        tag = register(
            output,
            labels=_registry_labels(opts),
            metadata=dict(provenance, metrics=_headline(served.metrics)),
            name=opts.name,
        )
    return TrainResult(output, info, served.metrics, parity, tag)


def print_result(result: TrainResult) -> None:
    """What a person running `socialcare train` wants to read at the end."""
    if result.parity is not None:
        print(f"\nserved runtime: {result.parity['served']}")
        print(f"test macro-F1, torch fp32 vs served runtime:\n{format_parity(result.parity)}")
    for split, metrics in result.metrics.items():
        print(f"\n{split}:\n{format_scores(metrics)}")
    seconds = result.info["provenance"]["train_seconds"]
    print(f"\nmodel directory: {result.directory} (trained in {seconds} s)")
    if result.tag is not None:
        print(f"registered: {result.tag}")


def run_train(opts: TrainOptions) -> int:
    """`socialcare train`: train, then print the scores."""
    print_result(train(opts))
    return 0


def _headline(results: dict[str, dict]) -> dict[str, float | None]:
    """The few numbers `socialcare models` shows for each registered model."""
    headline = {}
    for split, metrics in results.items():
        headline[f"{split}_intent_macro_f1"] = metrics["overall"]["intent_macro_f1"]
        headline[f"{split}_sentiment_macro_f1"] = metrics["overall"]["sentiment"]["macro_f1"]
    return headline


def _registry_labels(opts: TrainOptions) -> dict[str, str]:
    labels = {
        "kind": opts.kind,
        "base_model": opts.base_model if opts.kind == "finetune" else "tfidf",
    }
    if opts.teacher is not None:
        labels["student_of"] = opts.teacher
    return labels
