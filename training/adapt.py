"""`socialcare adapt`: the production model, updated on the reviewers' rounds in minutes.

The full retrain (`socialcare train`, about ten minutes on 2 cores) stays for when it is
due; adapting continues from the trained model: only its top layers and heads learn, for
a few epochs, on the rounds plus a replayed sample of the posts it was trained on (so
that it does not forget them). The result is an ordinary candidate: calibrated on
validation plus the reviewed posts it was not trained on, registered with its parent
model and the rounds' hashes, and promoted (or refused) by `socialcare promote`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from socialcare.core import paths
from socialcare.core.label_store import round_files
from socialcare.core.options import option
from socialcare.runtime.registry import MODEL_NAME
from training.config import TrainOptions


@dataclass
class AdaptOptions:
    """Update a fine-tuned model (default: production) on the reviewers' rounds: its top
    layers and heads train for a few epochs on the rounds and a replayed sample of its
    training posts; the candidate is calibrated, registered with its parent and the
    rounds' hashes, and left for `socialcare promote` to judge.
    """

    model: str | None = option(
        None, help="model to start from: a tag, 'production' or a directory (default: production)"
    )
    labelled_dir: Path = option(paths.LABELLED_DIR, help="folder of the reviewers' round files")
    epochs: float = option(2.0, help="epochs over the rounds and the replayed posts")
    trainable_layers: int = option(2, help="top transformer layers that learn (the rest stay)")
    learning_rate: float = option(5e-5, help="peak learning rate of those layers")
    head_learning_rate: float = option(1e-3, help="peak learning rate of the two heads")
    replay: int = option(
        800, help="posts of the model's own training files trained on again beside the rounds"
    )
    reviewed_weight: float = option(
        1.0, help="how much a reviewed post counts against a replayed one"
    )
    reviewed_holdout: float = option(
        0.25, help="share of reviewed posts kept out of training (calibration and the gate)"
    )
    output: Path | None = option(None, help="model directory (default: artifacts/models/<run>)")
    register: bool = option(True, help="register the candidate in the model store")


def adapt_options(opts: AdaptOptions) -> TrainOptions:
    """The `socialcare train` options that adapting amounts to."""
    from socialcare.runtime.resolver import model_info, resolve_model

    ref = resolve_model(opts.model)
    info = model_info(ref.directory)
    if info.get("kind") != "finetune":
        raise ValueError(
            f"{ref.tag or ref.directory} is a {info.get('kind')} model: adapt continues a "
            "fine-tuned one (a baseline retrains in seconds: socialcare train --kind baseline)"
        )
    if not round_files(opts.labelled_dir):
        raise ValueError(f"{opts.labelled_dir}: no reviewers' round files, nothing to adapt to")
    registered = ref.tag != str(ref.directory)
    provenance = info.get("provenance", {})
    labelled = opts.labelled_dir.resolve()
    # The parent's own training files (not its rounds), where they still exist here.
    train = [
        Path(p)
        for p in provenance.get("train_files", [])
        if Path(p).exists() and Path(p).resolve().parent != labelled
    ] or [paths.seed_split("train")]
    validation = [Path(p) for p in provenance.get("validation_files", []) if Path(p).exists()]
    layers = json.loads((ref.directory / "config.json").read_text())["num_hidden_layers"]
    if not 0 < opts.trainable_layers <= layers:
        raise ValueError(f"--trainable-layers must be 1 to {layers}, not {opts.trainable_layers}")
    return TrainOptions(
        kind="finetune",
        train=train,
        train_sample=opts.replay,
        labelled_dir=opts.labelled_dir,
        validation=validation or [paths.seed_split("validation")],
        base_model=str(ref.directory),
        text_prefix=info.get("text_prefix", ""),
        max_length=info["max_length"],
        epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        head_learning_rate=opts.head_learning_rate,
        frozen_layers=layers - opts.trainable_layers,
        reviewed_weight=opts.reviewed_weight,
        reviewed_holdout=opts.reviewed_holdout,
        output=opts.output,
        register=opts.register,
        name=ref.tag.split(":")[0] if registered else MODEL_NAME,
        parent=ref.tag,
    )


def run_adapt(opts: AdaptOptions) -> int:
    from training.train import print_result, train

    train_opts = adapt_options(opts)
    print(
        f"adapting {train_opts.parent}: top {opts.trainable_layers} layers and heads, "
        f"{opts.epochs:g} epochs, rounds in {opts.labelled_dir}, {opts.replay} replayed posts"
    )
    print_result(train(train_opts))
    print("next: socialcare promote <the tag above> (compares it with production)")
    return 0
