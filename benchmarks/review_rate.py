"""Does the review flag find errors? The policy's review rate, on new writers' posts.

    .venv/bin/python benchmarks/review_rate.py [--model DIR_OR_TAG] [--rates 0.05 0.08 0.15]

For each review rate, the band the service would use (from the model's validation
posts, `socialcare.core.review_rate`), then on the test split (writers seen by neither
training nor validation): the share of posts flagged, and the share of flagged and of
unflagged posts with some label wrong (an intent decision or the sentiment). The flag
is worth its review time when the first share is well above the second. Only the
uncertainty band is measured here: the service also flags posts for reasons of their
own (language not detected, text cut). Writes results/review_rate.{json,md}.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402
from socialcare.core.arrays import encode_posts  # noqa: E402
from socialcare.core.records import load_posts  # noqa: E402
from socialcare.core.review_rate import (  # noqa: E402
    band_for_rate,
    closest_intent,
    review_calibration,
)

RESULTS = Path(__file__).resolve().parent / "results"


def measure(model: str | None, rates: list[float]) -> dict:
    from socialcare.runtime.resolver import load_predictor

    predictor = load_predictor(model)
    calibration = predictor.info.get("review_calibration")
    if not calibration:  # a model trained before it: computed as training now does
        validation = encode_posts(load_posts([paths.seed_split("validation")]))
        seen = predictor.predict(validation.texts, validation.langs, validation.parents)
        calibration = review_calibration(seen.intent_prob, seen.thresholds, "validation")
    test = encode_posts(load_posts([paths.seed_split("test")]))
    predictions = predictor.predict(test.texts, test.langs, test.parents)
    known = test.intent_known.astype(bool)
    intent_wrong = (predictions.intent_pred.astype(int) != test.intents).any(axis=1) & known
    rated = test.sentiment >= 0
    sentiment_wrong = (predictions.sentiment_prob.argmax(axis=1) != test.sentiment) & rated
    wrong = intent_wrong | sentiment_wrong
    closeness = closest_intent(predictions.intent_prob, predictions.thresholds)
    rows = []
    for rate in rates:
        band = band_for_rate(calibration["closest_intent_percentiles"], rate)
        flagged = closeness >= 1 - band - 1e-9
        rows.append(
            {
                "rate": rate,
                "band": band,
                "flagged_share": float(flagged.mean()),
                "wrong_among_flagged": float(wrong[flagged].mean()) if flagged.any() else None,
                "wrong_among_unflagged": float(wrong[~flagged].mean()),
                "errors_caught": float(wrong[flagged].sum() / max(1, wrong.sum())),
            }
        )
    return {
        "model": predictor.tag or str(predictor.directory),
        "posts": len(test.texts),
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Review rate on new writers",
        "",
        f"Model `{result['model']}`, {result['posts']} test posts. The band comes from the "
        "model's validation posts; shares are of the test posts.",
        "",
        "| asked rate | band | flagged | some label wrong: flagged | some label wrong: "
        "not flagged | share of wrong posts flagged |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['rate']:.0%} | {row['band']:.3f} | {row['flagged_share']:.1%} | "
            f"{row['wrong_among_flagged']:.1%} | {row['wrong_among_unflagged']:.1%} | "
            f"{row['errors_caught']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="tag or model directory (default: production)"
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.08, 0.15, 0.25])
    parser.add_argument("--results", type=Path, default=RESULTS / "review_rate")
    args = parser.parse_args()
    result = measure(args.model, args.rates)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    args.results.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
