"""How far the decision should follow the new page: the reviewed posts' share of its fit.

    nice .venv/bin/python benchmarks/decision_share.py     # about 3 min, after learning_curve.py

For each fold of `learning_curve.py` and each adapted model at its largest k, the served
runtime's logits are computed once on validation, the reviewed posts held out of the
model's training, the held-out groups' evaluation posts and the test split without them.
The decision (temperatures, thresholds) is then fitted as `--reviewed-decision-share`
would fit it (`training.runtimes.fit_decision_on`): each reviewed post counted once (the
default), the reviewed posts a quarter or half of the fit, or they alone. Intent macro-F1
on the new page (the groups) and on the old one (the test split): one set of thresholds
for both languages' traffic cannot follow one without leaving the other.

Writes results/decision_share.{md,json}.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results_io import write_results  # noqa: E402
from socialcare.core import paths  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = (None, 0.25, 0.5, 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=paths.ARTIFACTS_DIR / "learning_curve")
    parser.add_argument("--k", type=int, default=200)
    args = parser.parse_args()

    from socialcare.core.arrays import encode_posts
    from socialcare.core.evaluation import evaluate_predictions
    from socialcare.core.label_store import latest_labels
    from socialcare.core.records import load_posts
    from socialcare.runtime.predictor import Predictor
    from training.calibration import ThresholdRule
    from training.runtimes import REVIEWED, VALIDATION, fit_decision_on

    rows = []
    for fold in sorted(args.work.glob("fold-*")):
        for model_dir in sorted(fold.glob(f"adapt-{args.k}-*")):
            info = json.loads((model_dir / "socialcare.json").read_text())
            held = set(info["provenance"]["reviewed_held_out"])
            rounds = fold / model_dir.name.replace("adapt-", "rounds-")
            sets = {
                VALIDATION: encode_posts(load_posts([fold / "validation-without-groups.jsonl"])),
                REVIEWED: encode_posts([p for p in latest_labels([rounds]) if p.id in held]),
                "test": encode_posts(load_posts([fold / "test-without-groups.jsonl"])),
            }
            for evaluation in sorted(fold.glob("eval-*.jsonl")):
                lang = evaluation.stem.split("-")[1]
                sets[lang] = encode_posts(load_posts([evaluation]))
            predictor = Predictor(model_dir)
            logits = {name: predictor.logits(a.texts, a.parents) for name, a in sets.items()}
            for share in SHARES:
                decision = fit_decision_on(logits, sets, ThresholdRule(reviewed_share=share))
                row = {"fold": fold.name, "model": model_dir.name, "share": share}
                for name in ("sv", "it", "test"):
                    predictions = decision.decide(*logits[name], sets[name].langs)
                    row[name] = evaluate_predictions(sets[name], predictions)["overall"][
                        "intent_macro_f1"
                    ]
                rows.append(row)
                print(row, flush=True)

    if not rows:
        raise SystemExit(f"{args.work}: no adapt-{args.k}-* models; run learning_curve.py first")
    lines = [
        "# The reviewed posts' share of the decision's fit",
        "",
        f"Adapted models at k = {args.k} of `learning_curve.py` "
        f"({len({r['model'] + r['fold'] for r in rows})} models: folds × random/active), "
        "each decision fitted on validation and the model's held-out reviewed posts with "
        "those making up the share given. Intent macro-F1 in points, mean over the models "
        "(min–max); `sv`/`it`: the held-out groups (the new page), `test`: the shipped test "
        "split without them (the old page).",
        "",
        "Command: `nice .venv/bin/python benchmarks/decision_share.py`",
        "",
        "| reviewed share of the fit | sv (new page) | it (new page) | test (old page) |",
        "|---|---|---|---|",
    ]
    for share in SHARES:
        chosen = [r for r in rows if r["share"] == share]
        label = "one validation post each (default)" if share is None else f"{share:.0%}"
        cells = []
        for name in ("sv", "it", "test"):
            values = [100 * r[name] for r in chosen]
            cells.append(f"{statistics.mean(values):.1f} ({min(values):.1f}–{max(values):.1f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_results(RESULTS / "decision_share", "\n".join(lines) + "\n", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
