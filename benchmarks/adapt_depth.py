"""How much of the model `socialcare adapt` should train: the heads, or the top layers too.

    nice .venv/bin/python benchmarks/adapt_depth.py      # about 8 min on 2 cores

Reuses fold f of `learning_curve.py` (run it first): its base model (the writer groups
sv-f and it-f never seen), its reviewers' round of 200 random posts per group, and the
groups' evaluation posts. For each number of trainable top layers (0: heads only) and each
reviewed weight, the base is adapted as `socialcare adapt` does (the same replay, the
same held-out quarter of the round, `training.adapt`'s own functions), its decision fitted
on validation plus the held-out reviewed posts, and scored on the groups' evaluation
posts and the test split without them. Also reported: the held-out reviewed score that
adapting chooses the weight by, and the seconds each training took (the frozen layers'
states, computed once per depth, apart).

Writes results/adapt_depth.{md,json}.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results_io import write_results  # noqa: E402
from socialcare.core import paths  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fold", type=Path, default=paths.ARTIFACTS_DIR / "learning_curve" / "fold-f"
    )
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 3, 3], help="per depth")
    args = parser.parse_args()

    import numpy as np

    from socialcare.core.arrays import encode_posts
    from socialcare.core.evaluation import evaluate_predictions
    from socialcare.core.records import load_posts
    from socialcare.runtime.model import IntentSentimentModel
    from socialcare.runtime.tokens import TokenBatcher
    from training.adapt import (
        REVIEWED_WEIGHTS,
        AdaptOptions,
        FrozenStates,
        adapt_options,
        frozen_logits,
        reviewed_score,
        train_top,
    )
    from training.runtimes import fit_decision_on

    base, rounds = args.fold / "base", args.fold / "rounds-200-random"
    if not (base / "socialcare.json").exists() or not rounds.exists():
        raise SystemExit(f"{args.fold}: run benchmarks/learning_curve.py first (fold f, k 200)")
    info = json.loads((base / "socialcare.json").read_text())
    rows = []
    for depth, epochs in zip(args.depths, args.epochs, strict=True):
        opts = adapt_options(
            AdaptOptions(
                model=str(base),
                labelled_dir=rounds,
                trainable_layers=depth,
                epochs=epochs,
                register=False,
            )  # fmt: skip
        )
        data = opts.training_data()
        sets = {
            "train": encode_posts(data.posts, data.weights),
            "validation": encode_posts(load_posts(opts.validation)),
            "reviewed": encode_posts(data.reviewed_held_out),
            "sv-f": encode_posts(load_posts([args.fold / "eval-sv-f.jsonl"])),
            "it-f": encode_posts(load_posts([args.fold / "eval-it-f.jsonl"])),
            "test": encode_posts(load_posts([args.fold / "test-without-groups.jsonl"])),
        }
        model = IntentSentimentModel.load(base)
        tokens = TokenBatcher.for_model(base, info)
        frozen = opts.frozen_layers
        states = {
            name: FrozenStates(model, tokens, arrays, frozen) for name, arrays in sets.items()
        }
        start = {k: v.clone() for k, v in model.state_dict().items()}
        for weight in REVIEWED_WEIGHTS:
            model.load_state_dict(start)
            started = time.monotonic()
            train_top(
                model, frozen, states["train"], np.where(data.reviewed_rows, weight, 1.0), opts
            )
            seconds = time.monotonic() - started
            rule = opts.threshold_rule()
            logits = {name: frozen_logits(model, frozen, states[name]) for name in sets}
            decision = fit_decision_on(logits, sets, rule)
            row = {
                "trainable_layers": depth,
                "epochs": epochs,
                "reviewed_weight": weight,
                "train_seconds": round(seconds, 1),
                "reviewed_score": reviewed_score(
                    model, frozen, states["validation"], states["reviewed"], rule
                ),
            }
            for name in ("sv-f", "it-f", "test"):
                scores = evaluate_predictions(
                    sets[name], decision.decide(*logits[name], sets[name].langs)
                )["overall"]
                row[name] = {
                    "intent": scores["intent_macro_f1"],
                    "sentiment": scores["sentiment"]["macro_f1"],
                }
            rows.append(row)
            print(row, flush=True)
        del states  # a depth's states are hundreds of MB

    lines = [
        "# How much of the model adapting trains",
        "",
        "Fold f of `learning_curve.py`: its base model, 200 random reviewed posts per group "
        "(a quarter held out), scored on the groups' 200 evaluation posts each and on the "
        "test split without them. Macro-F1 in points; `chosen by`: the held-out reviewed "
        "score (mean of both heads' macro-F1, decision fitted on validation) adapting picks "
        "the weight with.",
        "",
        "Command: `nice .venv/bin/python benchmarks/adapt_depth.py`",
        "",
        "| top layers trained | epochs | reviewed weight | training (s) | chosen by | "
        "sv-f intent | sv-f sentiment | it-f intent | it-f sentiment | test intent | "
        "test sentiment |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        cells = [str(r["trainable_layers"]), str(r["epochs"]), f"{r['reviewed_weight']:g}",
                 f"{r['train_seconds']:.1f}", f"{100 * r['reviewed_score']:.1f}"]  # fmt: skip
        cells += [f"{100 * r[n][h]:.1f}" for n in ("sv-f", "it-f", "test")
                  for h in ("intent", "sentiment")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    write_results(RESULTS / "adapt_depth", "\n".join(lines) + "\n", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
