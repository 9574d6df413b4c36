"""The decision layer on new writers: thresholds and temperatures fitted on validation,
judged on the test split, whose writers appear in neither training nor validation.

    .venv/bin/python benchmarks/decision_layer.py                  # the production model
    .venv/bin/python benchmarks/decision_layer.py --model DIR_OR_TAG

For one model (logits of each split computed once, on the runtime it is served on):

- each way of fitting the decision (cost weighting, false-alarm limit, per-language
  thresholds)
  is scored by 5-fold cross-validation inside validation (fit on four fifths, decide the
  fifth), which is what chooses among them, and then once on test;
- the chosen way's per-language, per-intent threshold, recall, false-alarm rate,
  precision and ECE on test, beside the same on validation;
- ECE per head on validation and on test: how far calibration fitted on some writers
  holds for others.

Writes results/decision_layer.json and results/decision_layer.md.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402
from socialcare.core.arrays import LabelArrays, encode_posts  # noqa: E402
from socialcare.core.evaluation import evaluate_predictions, format_intent_decisions  # noqa: E402
from socialcare.core.labels import INTENTS  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402
from training.calibration import DEFAULT_BETAS, ThresholdRule, fit_decision  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FOLDS = 5
# Ways to fit the decision, all on the same validation logits.
PRODUCT = dict(DEFAULT_BETAS)
F1 = dict.fromkeys(INTENTS, 1.0)
VARIANTS = {
    "per language, product weights, no false-alarm limit (before)": ThresholdRule(
        PRODUCT, None, per_language=True
    ),
    "per language, product weights, false alarms ≤ 20%": ThresholdRule(PRODUCT, 0.20, True),
    "per language, product weights, false alarms ≤ 15%": ThresholdRule(PRODUCT, 0.15, True),
    "per language, product weights, false alarms ≤ 10%": ThresholdRule(PRODUCT, 0.10, True),
    "per language, F1 everywhere, no limit": ThresholdRule(F1, None, True),
    "per language, F1 everywhere, false alarms ≤ 15%": ThresholdRule(F1, 0.15, True),
    "pooled, product weights, false alarms ≤ 15% (now)": ThresholdRule(PRODUCT, 0.15, False),
    "pooled, F1 everywhere, false alarms ≤ 15%": ThresholdRule(F1, 0.15, False),
}


def summary(arrays: LabelArrays, predictions) -> dict:
    """Intent macro-F1 per language, and mean recall / false-alarm rate over intents."""
    metrics = evaluate_predictions(arrays, predictions)
    row = {}
    for lang, scores in {"overall": metrics["overall"], **metrics["by_lang"]}.items():
        intents = scores["intents"].values()
        row[lang] = {
            "intent_macro_f1": scores["intent_macro_f1"],
            "mean_recall": float(np.mean([s["recall"] for s in intents])),
            "mean_false_alarm_rate": float(np.mean([s["false_alarm_rate"] for s in intents])),
            "sentiment_macro_f1": scores["sentiment"]["macro_f1"],
        }
    return row


def cross_validated(predictor, logits, arrays: LabelArrays, rule: ThresholdRule, seed: int = 13):
    """Decisions for every validation post, each fitted without the fold it is in."""
    from socialcare.runtime.predictor import Predictions

    n = len(arrays.texts)
    folds = np.random.default_rng(seed).permutation(n) % FOLDS
    parts = {}
    for fold in range(FOLDS):
        fit_rows, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        predictor.decision = fit_decision(
            logits[0][fit_rows], logits[1][fit_rows], arrays.take(fit_rows), rule
        )
        langs = [arrays.langs[i] for i in held]
        parts[fold] = (held, predictor.decision.decide(logits[0][held], logits[1][held], langs))
    fields = {}
    for name in ("intent_prob", "intent_pred", "sentiment_prob", "thresholds", "truncated"):
        first = getattr(parts[0][1], name)
        merged = np.zeros((n, *first.shape[1:]), dtype=first.dtype)
        for held, part in parts.values():
            merged[held] = getattr(part, name)
        fields[name] = merged
    return Predictions(**fields)


def measure(model: str | None) -> dict:
    from socialcare.runtime.resolver import load_predictor

    predictor = load_predictor(model)
    splits = {s: encode_posts(load_posts([paths.seed_split(s)])) for s in ("validation", "test")}
    logits = {s: predictor.logits(a.texts, a.parents) for s, a in splits.items()}
    served = predictor.decision
    variants = {}
    for name, rule in VARIANTS.items():
        cv = cross_validated(predictor, logits["validation"], splits["validation"], rule)
        predictor.decision = fit_decision(*logits["validation"], splits["validation"], rule)
        test = predictor.decision.decide(*logits["test"], splits["test"].langs)
        variants[name] = {
            "validation_cv": summary(splits["validation"], cv),
            "test": summary(splits["test"], test),
            "thresholds": predictor.decision.thresholds,
        }
    chosen = max(variants, key=lambda v: variants[v]["validation_cv"]["overall"]["intent_macro_f1"])
    predictor.decision = served
    per_split = {}
    for split, arrays in splits.items():
        metrics = evaluate_predictions(
            arrays, predictor.decision.decide(*logits[split], arrays.langs)
        )
        per_split[split] = metrics
    return {
        "model": predictor.tag or str(predictor.directory),
        "runtime": predictor.runtime,
        "served_thresholds": served.thresholds,
        "variants": variants,
        "chosen_on_validation": chosen,
        "served": per_split,
    }


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown(result: dict) -> str:
    lines = [
        "# Decision layer on unseen writers",
        "",
        f"Model `{result['model']}` on `{result['runtime']}`. Intent macro-F1 (%), mean recall "
        "and mean false-alarm rate over the five intents; 'validation (5-fold)' fits on four "
        "fifths of validation and decides the fifth, which is what chooses; test is scored "
        "once per way.",
        "",
        "| way of fitting | validation (5-fold) macro-F1 sv / it | test macro-F1 sv / it "
        "| test mean recall | test mean false-alarm rate |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["variants"].items():
        cv, test = row["validation_cv"], row["test"]
        mark = " (chosen)" if name == result["chosen_on_validation"] else ""
        lines.append(
            f"| {name}{mark} | {_pct(cv['sv']['intent_macro_f1'])} / "
            f"{_pct(cv['it']['intent_macro_f1'])} | {_pct(test['sv']['intent_macro_f1'])} / "
            f"{_pct(test['it']['intent_macro_f1'])} | {_pct(test['overall']['mean_recall'])} | "
            f"{_pct(test['overall']['mean_false_alarm_rate'])} |"
        )
    served = result["served"]
    lines += ["", "## The model's own decision, per intent", ""]
    for split in ("validation", "test"):
        lines += [
            f"### {split}",
            "",
            format_intent_decisions(served[split], result["served_thresholds"]),
            "",
        ]
    lines += [
        "## Calibration (ECE) on validation writers vs new writers",
        "",
        "| lang | head | validation | test |",
        "|---|---|---|---|",
    ]
    for lang in served["test"]["by_lang"]:
        val, test = served["validation"]["by_lang"][lang], served["test"]["by_lang"][lang]
        lines.append(f"| {lang} | intents | {val['intent_ece']:.3f} | {test['intent_ece']:.3f} |")
        val_ece, test_ece = val["sentiment"]["ece"], test["sentiment"]["ece"]
        lines.append(f"| {lang} | sentiment | {val_ece:.3f} | {test_ece:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="tag or model directory (default: production)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS / "decision_layer")
    args = parser.parse_args()
    result = measure(args.model)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    text = markdown(result)
    args.results.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
