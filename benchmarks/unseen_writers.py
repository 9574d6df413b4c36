"""Models side by side on the shipped test split, whose writers none of them saw.

    .venv/bin/python benchmarks/unseen_writers.py --models NAME=DIR_OR_TAG ...

Each model (a directory or a registry tag, with a short name for the table) predicts
`data/seed/test.jsonl` with its own decision (temperatures, thresholds), once; the table
gives, per language, intent macro-F1, each intent's F1 and sentiment macro-F1. Meant for
the default model before and after a data or recipe change, and the TF-IDF baseline.
Writes results/unseen_writers.json and results/unseen_writers.md.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402
from socialcare.core.labels import INTENTS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def scores(model: str) -> dict:
    from socialcare.runtime.resolver import load_predictor
    from training.report import score

    predictor = load_predictor(model)
    metrics = score(predictor, [paths.seed_split("test")])
    rows = {}
    for lang, group in {"overall": metrics["overall"], **metrics["by_lang"]}.items():
        rows[lang] = {
            "intent_macro_f1": group["intent_macro_f1"],
            **{intent: group["intents"][intent]["f1"] for intent in INTENTS},
            "sentiment_macro_f1": group["sentiment"]["macro_f1"],
            "posts": group["n_intent"],
        }
    return {
        "model": predictor.tag or str(predictor.directory),
        "kind": predictor.kind,
        "by_lang": rows,
    }


def table(results: dict[str, dict]) -> str:
    header = ["intent macro-F1", *(f"{i} F1" for i in INTENTS), "sentiment macro-F1"]
    lines = ["| lang | model | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 2)]
    langs = next(iter(results.values()))["by_lang"]
    for lang in langs:
        for name, result in results.items():
            row = result["by_lang"][lang]
            cells = [row["intent_macro_f1"], *(row[i] for i in INTENTS), row["sentiment_macro_f1"]]
            lines.append(
                f"| {lang} | {name} | " + " | ".join(f"{100 * c:.1f}" for c in cells) + " |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", required=True, help="NAME=DIR_OR_TAG, in the order of the table"
    )
    parser.add_argument("--results", type=Path, default=RESULTS / "unseen_writers")
    args = parser.parse_args()
    results = {}
    for item in args.models:
        name, _, model = item.partition("=")
        if not model:
            parser.error(f"--models: {item!r} is not NAME=DIR_OR_TAG")
        results[name] = scores(model)
    text = (
        "# Unseen writers: models side by side on data/seed/test.jsonl\n\n"
        "F1 (%) per language; each model with its own calibrated decision.\n\n"
        + "\n".join(f"- {name}: `{r['model']}` ({r['kind']})" for name, r in results.items())
        + "\n\n"
        + table(results)
        + "\n"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.results.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
