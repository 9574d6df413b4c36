"""`socialcare train`: load → fit → calibrate → evaluate → register, one named stage each."""

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

from socialcare.core import paths
from socialcare.core.arrays import LabelArrays, encode_posts, has_sentiment
from socialcare.core.evaluation import format_scores
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.records import DataError, Problem, load_posts
from socialcare.runtime.predictor import Decision, Predictor, write_info
from socialcare.runtime.registry import register
from training.calibration import fit_decision
from training.config import TrainOptions
from training.report import code_version, data_hash, library_versions, score, write_report


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


def fit(opts: TrainOptions, train: LabelArrays, validation: LabelArrays, output: Path) -> dict:
    """Train the model into ``output``; return what socialcare.json must record about it."""
    if opts.kind == "baseline":
        from training.baseline import fit_baseline, save_baseline

        save_baseline(fit_baseline(train, seed=opts.seed), output)
        return {"kind": "baseline"}

    from training.backbone import resolve_base_model
    from training.finetune import FinetuneSettings, finetune

    prefix = (
        opts.text_prefix if opts.text_prefix is not None else default_text_prefix(opts.base_model)
    )
    settings = FinetuneSettings(
        base_model=resolve_base_model(opts.base_model),
        text_prefix=prefix,
        max_length=opts.max_length,
        epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        head_learning_rate=opts.head_learning_rate,
        batch_size=opts.batch_size,
        warmup_ratio=opts.warmup_ratio,
        weight_decay=opts.weight_decay,
        patience=opts.patience,
        freeze_embeddings=opts.freeze_embeddings,
        seed=opts.seed,
    )
    finetune(train, validation, settings, output)
    return {
        "kind": "finetune",
        "text_prefix": prefix,
        "max_length": opts.max_length,
        "base_model": opts.base_model,
        "base_model_path": settings.base_model,
    }


def calibrate(output: Path, info: dict, validation: LabelArrays, opts: TrainOptions) -> Predictor:
    """Fit temperatures and thresholds on validation predictions of the saved model."""
    write_info(output, info, Decision())  # load the model exactly as it will be served
    predictor = Predictor(output)
    intent_logits, sentiment_logits = predictor.logits(validation.texts)
    predictor.decision = fit_decision(
        intent_logits,
        validation.intents,
        validation.intent_known,
        sentiment_logits,
        validation.sentiment,
        validation.langs,
        opts.threshold_betas,
        opts.per_language_thresholds,
    )
    return predictor


def run_train(opts: TrainOptions) -> int:
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    output = opts.output or paths.ARTIFACTS_DIR / "models" / f"{opts.kind}-{stamp}"

    train_files = opts.train_files()  # --train plus the reviewers' labelled rounds
    train = encode_posts(opts.train_posts())
    validation = encode_posts(load_posts(opts.validation))
    _check_trainable(train, train_files, "training")
    _check_trainable(validation, opts.validation, "validation")
    print(f"train: {len(train.texts)} posts, validation: {len(validation.texts)} posts")

    info = fit(opts, train, validation, output)
    info["labels"] = {"intents": list(INTENTS), "sentiments": list(SENTIMENTS)}
    info["trained_heads"] = [
        head
        for head, labelled in (
            ("intents", train.intent_known.any()),
            ("sentiment", has_sentiment(train.sentiment).any()),
        )
        if labelled
    ]
    parity = None
    if opts.kind == "finetune":
        # Export to ONNX and pick the runtime to serve (int8 when it keeps quality), so that
        # calibration, thresholds and scores below are those of the served path.
        from training.export import serve_exported

        test = encode_posts(load_posts(opts.test)) if opts.test else None
        info, parity = serve_exported(output, info, validation, test, opts)
        print(f"served runtime: {info['runtime']}")
    predictor = calibrate(output, info, validation, opts)

    results = {"validation": score(predictor, opts.validation)}
    if opts.test:
        results["test"] = score(predictor, opts.test, plots_dir=output / "plots")
    train_seconds = round(time.monotonic() - started, 1)
    provenance = {
        "kind": opts.kind,
        "train_files": [str(p) for p in train_files],
        "validation_files": [str(p) for p in opts.validation],
        "train_data_sha256": data_hash(train_files),
        "validation_data_sha256": data_hash(opts.validation),
        "code_version": code_version(),
        "libraries": library_versions(),
        "options": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(opts).items()
            if k not in ("train", "validation", "test")
        },
        "decision": dataclasses.asdict(predictor.decision),
        "runtime": predictor.runtime,
        "train_seconds": train_seconds,
        "trained_at": stamp,
    }
    write_info(output, dict(info, provenance=provenance), predictor.decision)
    write_report(output, f"{opts.name} ({opts.kind}, {stamp})", provenance, results)
    if parity is not None:
        from training.export import format_parity, record_parity

        record_parity(output, parity)
        print(f"\ntest macro-F1, torch fp32 vs served runtime:\n{format_parity(parity)}")
    for split, metrics in results.items():
        print(f"\n{split}:\n{format_scores(metrics)}")
    print(f"\nmodel directory: {output} (trained in {train_seconds} s)")
    if opts.register:
        tag = register(
            output,
            labels=_registry_labels(opts),
            metadata=dict(provenance, metrics=_headline(results)),
            name=opts.name,
        )
        print(f"registered: {tag}")
    return 0


def _headline(results: dict[str, dict]) -> dict[str, float | None]:
    """The few numbers `socialcare models` shows for each registered model."""
    headline = {}
    for split, metrics in results.items():
        headline[f"{split}_intent_macro_f1"] = metrics["overall"]["intent_macro_f1"]
        headline[f"{split}_sentiment_macro_f1"] = metrics["overall"]["sentiment"]["macro_f1"]
    return headline


def _registry_labels(opts: TrainOptions) -> dict[str, str]:
    return {
        "kind": opts.kind,
        "base_model": opts.base_model if opts.kind == "finetune" else "tfidf",
    }
