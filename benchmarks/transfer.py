"""Transfer to real posts: models trained only on our data, scored on real public tweets.

    .venv/bin/python benchmarks/transfer.py                      # production and newest baseline
    .venv/bin/python benchmarks/transfer.py --models DIR_OR_TAG ...

Sentiment macro-F1 of each model on the SENTIPOLC (it) and swe-sentiment (sv) test
splits of ../shared/data/public (read once per final model, never used to choose
anything; skipped when the folder is absent). The models never saw these corpora: the
number says how far what they learnt from our posts carries to real ones. Writes
results/transfer.json and results/transfer.md; a rerun replaces the rows of the same model.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socialcare.core import paths  # noqa: E402

CORPORA = {
    "sentipolc (it)": "sentipolc_it_test.jsonl",
    "swe-sentiment (sv)": "swesent_sv_test.jsonl",
}
RESULTS = Path(__file__).resolve().parent / "results"


def transfer(model: str | None) -> dict:
    """The model's sentiment macro-F1 and accuracy on each public test split."""
    from socialcare.runtime.resolver import load_predictor
    from training.report import score

    predictor = load_predictor(model)
    row = {
        "model": predictor.tag,
        "kind": predictor.kind,
        "trained_on": predictor.info.get("provenance", {}).get("train_data_sha256"),
    }
    for name, file in CORPORA.items():
        sentiment = score(predictor, [paths.PUBLIC_DATA_DIR / file])["overall"]["sentiment"]
        row[name] = {"macro_f1": sentiment["macro_f1"], "accuracy": sentiment["accuracy"]}
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | kind | " + " | ".join(f"{c} macro-F1" for c in CORPORA) + " |"]
    lines.append("|---|---|" + "---|" * len(CORPORA))
    for row in rows:
        cells = [f"{100 * row[c]['macro_f1']:.1f}" for c in CORPORA]
        lines.append(f"| {row['model']} | {row['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=[None],
        help="tags or model directories (default: production)",
    )
    args = parser.parse_args()
    if not paths.PUBLIC_DATA_DIR.is_dir():
        print(f"{paths.PUBLIC_DATA_DIR} is absent: nothing to measure")
        return 0
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "transfer.json"
    rows = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    for model in args.models:
        row = transfer(model)
        rows = [r for r in rows if r["model"] != row["model"]] + [row]
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "transfer.md").write_text(table(rows) + "\n", encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
