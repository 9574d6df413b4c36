"""`socialcare evaluate` and `socialcare models`."""

import json
from dataclasses import dataclass

from socialcare.core import paths
from socialcare.core.options import option
from socialcare.runtime.registry import MODEL_NAME, list_models, stage_of
from training.config import EvaluateOptions


def run_evaluate(opts: EvaluateOptions) -> int:
    # Heavy imports (torch, sklearn) wait until a command needs them: `--help` stays fast.
    from socialcare.core.evaluation import format_scores
    from socialcare.runtime.resolver import load_predictor
    from training.report import data_hash, score, write_report

    predictor = load_predictor(opts.model)
    tag = predictor.tag
    output = opts.output or paths.ARTIFACTS_DIR / "evaluations" / tag.replace(":", "-")
    metrics = score(predictor, opts.data, plots_dir=output / "plots")
    provenance = {
        "model": tag,
        "data": [str(p) for p in opts.data],
        "data_sha256": data_hash(opts.data),
        "model_provenance": predictor.info.get("provenance", {}),
    }
    write_report(
        output,
        f"{tag} on {', '.join(p.name for p in opts.data)}",
        provenance,
        {"evaluation": metrics},
    )
    print(format_scores(metrics))
    print(f"\nreport: {output}/metrics.json, {output}/model_card.md, {output}/plots/")
    return 0


@dataclass
class ModelsOptions:
    """List registered models, newest first, with their kind and scores."""

    name: str = option(MODEL_NAME, help="model name in the store")
    json: bool = option(False, help="print JSON instead of a table")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def run_models(opts: ModelsOptions) -> int:
    rows = []
    for model in list_models(opts.name):
        meta = model.info.metadata
        rows.append(
            {
                "tag": str(model.tag),
                "created": model.info.creation_time.isoformat(timespec="seconds"),
                "labels": dict(model.info.labels),
                "stage": stage_of(model),
                "metrics": meta.get("metrics", {}),
            }
        )
    if opts.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no model named {opts.name!r} is registered; run `socialcare train`")
        return 0
    print("| tag | created | kind | stage | test intent macro-F1 | test sentiment macro-F1 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        m = row["metrics"]
        print(
            f"| {row['tag']} | {row['created']} | {row['labels'].get('kind', '?')} | "
            f"{row['stage']} | {_percent(m.get('test_intent_macro_f1'))} | "
            f"{_percent(m.get('test_sentiment_macro_f1'))} |"
        )
    return 0
