"""`socialcare adapt`: the production model, updated on the reviewers' rounds in minutes.

The full retrain (`socialcare train`, about ten minutes on 2 cores) stays for when it is
due; adapting continues from the trained model: only its top layers and heads learn, for
a few epochs, on the rounds plus a replayed sample of the posts it was trained on (so
that it does not forget them). The layers below never change, so each post goes through
them once (`FrozenStates`) and every epoch and every reviewed weight tried costs only the
top layers. How much a reviewed post counts is chosen, not guessed: each weight of
REVIEWED_WEIGHTS is trained and the one that scores best on the reviewed posts held out
of training is kept. The result is an ordinary candidate: calibrated on validation plus
those held-out posts, registered with its parent model and the rounds' hashes, and
promoted (or refused) by `socialcare promote`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socialcare.core import paths
from socialcare.core.arrays import LabelArrays
from socialcare.core.label_store import round_files
from socialcare.core.options import option
from training.config import TrainOptions, starting_model
from training.finetune import encoder_layers

# Weights a reviewed post may count against a replayed one; adapting trains with each and
# keeps the one that scores best on the reviewed posts held out of training.
REVIEWED_WEIGHTS = (1.0, 2.0, 4.0, 8.0)


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
    # Heads only, 10 epochs: on a held-out writer group as good as the top two layers for
    # 3 epochs, within the noise, at a twentieth of the cost (benchmarks/README.md).
    epochs: int = option(10, help="epochs over the rounds and the replayed posts")
    trainable_layers: int = option(
        0, help="top transformer layers that learn besides the heads (the rest stay)"
    )
    learning_rate: float = option(5e-5, help="peak learning rate of those layers")
    head_learning_rate: float = option(1e-3, help="peak learning rate of the two heads")
    replay: int = option(
        800, help="posts of the model's own training files trained on again beside the rounds"
    )
    reviewed_weight: float | None = option(
        None,
        help="how much a reviewed post counts against a replayed one (default: each of "
        f"{', '.join(f'{w:g}' for w in REVIEWED_WEIGHTS)} is tried and the best on the "
        "held-out reviewed posts kept)",
    )
    reviewed_holdout: float = option(
        0.25, help="share of reviewed posts kept out of training (calibration and the gate)"
    )
    reviewed_decision_share: float | None = option(
        None,
        help="share of the decision's fit the held-out reviewed posts make up (1: they "
        "alone, for a service that sees only the new page); default: one validation post each",
    )
    output: Path | None = option(None, help="model directory (default: artifacts/models/<run>)")
    register: bool = option(True, help="register the candidate in the model store")


def adapt_options(opts: AdaptOptions) -> TrainOptions:
    """The `socialcare train` options that adapting amounts to."""
    parent = starting_model(
        opts.model,
        "adapt continues a fine-tuned one (a baseline retrains in seconds: "
        "socialcare train --kind baseline)",
    )
    info, layers = parent.info, parent.layers
    if not round_files(opts.labelled_dir):
        raise ValueError(f"{opts.labelled_dir}: no reviewers' round files, nothing to adapt to")
    provenance = info.get("provenance", {})
    labelled = opts.labelled_dir.resolve()
    # The parent's own training files (not its rounds), where they still exist here; else
    # the shipped splits, said aloud (they may hold posts the parent never saw).
    listed = [Path(p) for p in provenance.get("train_files", [])]
    train = [p for p in listed if p.exists() and p.resolve().parent != labelled]
    validation = [Path(p) for p in provenance.get("validation_files", []) if Path(p).exists()]
    for role, found, fallback in (
        ("training", train, paths.seed_split("train")),
        ("validation", validation, paths.seed_split("validation")),
    ):
        if not found:
            print(f"the parent's {role} files are not here: using {fallback} instead")
            found.append(fallback)
    if not 0 <= opts.trainable_layers <= layers:
        raise ValueError(f"--trainable-layers must be 0 to {layers}, not {opts.trainable_layers}")
    if opts.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, not {opts.epochs}")
    return TrainOptions(
        kind="finetune",
        train=train,
        train_sample=opts.replay,
        labelled_dir=opts.labelled_dir,
        validation=validation,
        base_model=str(parent.directory),
        text_prefix=info.get("text_prefix", ""),
        max_length=info["max_length"],
        epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        head_learning_rate=opts.head_learning_rate,
        frozen_layers=layers - opts.trainable_layers,
        reviewed_weight=opts.reviewed_weight,
        reviewed_holdout=opts.reviewed_holdout,
        reviewed_decision_share=opts.reviewed_decision_share,
        output=opts.output,
        register=opts.register,
        name=parent.name,
        parent=parent.tag,
    )


def run_adapt(opts: AdaptOptions) -> int:
    from training.train import print_result, train

    train_opts = adapt_options(opts)
    print(
        f"adapting {train_opts.parent}: heads and top {opts.trainable_layers} layers, "
        f"{opts.epochs} epochs, rounds in {opts.labelled_dir}, {opts.replay} replayed posts"
    )
    print_result(train(train_opts))
    print("next: socialcare promote <the tag above> (compares it with production)")
    return 0


# --- The fit: only the top layers and heads learn, from cached states of the rest ---


class FrozenStates:
    """Each post's token states where the frozen layers leave them, computed once.

    The layers below the trainable ones never change while adapting, so running them on
    every epoch and for every reviewed weight tried would repeat the same arithmetic: all
    of a step's encoder cost when only the heads learn, most of it with a top layer or two.
    """

    def __init__(self, model, tokens, arrays: LabelArrays, frozen: int, batch_size: int = 64):
        import torch

        ids, _ = tokens.encode(arrays.texts, arrays.parents)
        self.arrays = arrays
        self.states: list = [None] * len(ids)
        encoder = model.encoder
        with torch.inference_mode():
            for index, input_ids, mask in tokens.batches(ids, batch_size):
                mask_t = torch.from_numpy(mask)
                hidden = encoder.embeddings(input_ids=torch.from_numpy(input_ids))
                attention = _attention_mask(encoder, hidden, mask_t)
                for layer in encoder_layers(encoder)[:frozen]:
                    hidden = layer(hidden, attention)
                for row, i in enumerate(index):
                    self.states[i] = hidden[row, : len(ids[i])].clone()

    def __len__(self) -> int:
        return len(self.states)

    def batch(self, rows):
        """(states, attention mask) of ``rows``, padded to the longest of them."""
        import torch

        width = max(self.states[i].shape[0] for i in rows)
        hidden = torch.zeros(len(rows), width, self.states[rows[0]].shape[1])
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for row, i in enumerate(rows):
            n = self.states[i].shape[0]
            hidden[row, :n] = self.states[i]
            mask[row, :n] = 1
        return hidden, mask


def _attention_mask(encoder, hidden, mask):
    """The attention mask the encoder's layers expect (what its own forward builds)."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(
        config=encoder.config, inputs_embeds=hidden, attention_mask=mask
    )


def top_logits(model, frozen: int, hidden, mask):
    """Intent and sentiment logits from the states entering layer ``frozen``."""
    from socialcare.runtime.model import mean_pool

    attention = _attention_mask(model.encoder, hidden, mask)
    for layer in encoder_layers(model.encoder)[frozen:]:
        hidden = layer(hidden, attention)
    pooled = model.dropout(mean_pool(hidden, mask))
    return model.intent_head(pooled), model.sentiment_head(pooled)


def _length_batches(states: FrozenStates, batch_size: int, rng) -> list[list[int]]:
    """Shuffled batches of posts of similar length (little padding), in shuffled order."""
    lengths = np.array([s.shape[0] for s in states.states]) + rng.uniform(0, 8, len(states))
    order = np.argsort(lengths)
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _targets(arrays: LabelArrays, rows, weights: np.ndarray):
    import torch

    return (
        torch.from_numpy(arrays.intents[rows]).float(),
        torch.from_numpy(arrays.intent_known[rows].astype(np.int64)),
        torch.from_numpy(arrays.sentiment[rows]),
        torch.from_numpy(weights[rows]).float(),
    )


def train_top(
    model, frozen: int, states: FrozenStates, weights: np.ndarray, settings: TrainOptions
) -> None:
    """Train layers ``frozen``.. and both heads on cached states, each post weighing its
    weight: AdamW, linear warm-up (10%) and decay, ``settings.epochs`` epochs."""
    import torch

    from socialcare.runtime.model import masked_loss
    from training.finetune import mixed_precision

    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    top = [p for layer in encoder_layers(model.encoder)[frozen:] for p in layer.parameters()]
    heads = [*model.intent_head.parameters(), *model.sentiment_head.parameters()]
    optimizer = torch.optim.AdamW(
        [
            {"params": top, "lr": settings.learning_rate},
            {"params": heads, "lr": settings.head_learning_rate},
        ],
        weight_decay=settings.weight_decay,
    )
    plan = [_length_batches(states, settings.batch_size, rng) for _ in range(int(settings.epochs))]
    steps, warmup = sum(map(len, plan)), max(1, sum(map(len, plan)) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    autocast = mixed_precision(settings.precision)
    model.train()
    for rows in (rows for epoch in plan for rows in epoch):
        hidden, mask = states.batch(rows)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            intent, sentiment = top_logits(model, frozen, hidden, mask)
        targets = _targets(states.arrays, rows, weights)
        loss = masked_loss(intent.float(), sentiment.float(), *targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()


def frozen_logits(model, frozen: int, states: FrozenStates) -> tuple[np.ndarray, np.ndarray]:
    """Both heads' logits of ``states``' posts (the model in eval mode)."""
    import torch

    intent = np.zeros((len(states), states.arrays.intents.shape[1]), dtype=np.float32)
    sentiment = np.zeros((len(states), 3), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(states), 64):
            rows = list(range(start, min(start + 64, len(states))))
            i, s = top_logits(model, frozen, *states.batch(rows))
            intent[rows], sentiment[rows] = i.float().numpy(), s.float().numpy()
    return intent, sentiment


def reviewed_score(model, frozen: int, validation: FrozenStates, reviewed: FrozenStates, rule):
    """Mean of intent and sentiment macro-F1 on the held-out reviewed posts, decided as the
    model would be served with a decision fitted on validation alone (fitting it on the
    posts that score it would flatter every weight alike)."""
    from socialcare.core.evaluation import evaluate_predictions
    from training.calibration import fit_decision

    decision = fit_decision(*frozen_logits(model, frozen, validation), validation.arrays, rule)
    predictions = decision.decide(*frozen_logits(model, frozen, reviewed), reviewed.arrays.langs)
    scores = evaluate_predictions(reviewed.arrays, predictions)["overall"]
    heads = [scores["intent_macro_f1"], scores["sentiment"]["macro_f1"]]
    return float(np.mean([h for h in heads if h is not None]))


def fit_adapted(opts: TrainOptions, splits: dict, reviewed_rows: np.ndarray, output: Path) -> dict:
    """Train the parent's (``opts.base_model``) top layers and heads on ``splits["train"]``
    (``reviewed_rows``: its posts from reviewers' rounds) and save the model to ``output``;
    return what socialcare.json must record about it.

    Each weight of REVIEWED_WEIGHTS (or --reviewed-weight alone) is trained from the
    parent, and the one with the best `reviewed_score` kept, the smaller on a tie; without
    held-out reviewed posts, weight 1.
    """
    from transformers import AutoTokenizer

    from socialcare.runtime.model import IntentSentimentModel
    from socialcare.runtime.predictor import INFO_FILE
    from socialcare.runtime.tokens import TokenBatcher
    from training.runtimes import REVIEWED, VALIDATION

    parent = Path(opts.base_model)
    info = json.loads((parent / INFO_FILE).read_text(encoding="utf-8"))
    model = IntentSentimentModel.load(parent)
    model.encoder.get_input_embeddings().weight.requires_grad_(False)
    tokens = TokenBatcher.for_model(parent, info)
    frozen = opts.frozen_layers
    states = {
        name: FrozenStates(model, tokens, splits[name], frozen)
        for name in ("train", VALIDATION, REVIEWED)
        if name in splits
    }
    trainable = [*encoder_layers(model.encoder)[frozen:], model.intent_head, model.sentiment_head]
    start = [{k: v.clone() for k, v in part.state_dict().items()} for part in trainable]
    if opts.reviewed_weight is not None:
        weights = (opts.reviewed_weight,)
    elif REVIEWED in states and reviewed_rows.any():
        weights = REVIEWED_WEIGHTS
    else:
        weights = (1.0,)
    tried, best, kept = [], None, None
    for weight in weights:
        for part, saved in zip(trainable, start, strict=True):
            part.load_state_dict(saved)
        train_top(model, frozen, states["train"], np.where(reviewed_rows, weight, 1.0), opts)
        score = None
        if len(weights) > 1:
            rule = opts.threshold_rule()
            score = reviewed_score(model, frozen, states[VALIDATION], states[REVIEWED], rule)
            print(f"reviewed weight {weight:g}: held-out reviewed score {score:.4f}")
        tried.append({"reviewed_weight": weight, "reviewed_score": score})
        if best is None or (score is not None and score > best):
            best = score
            kept = [{k: v.clone() for k, v in part.state_dict().items()} for part in trainable]
            chosen = weight
    for part, saved in zip(trainable, kept, strict=True):
        part.load_state_dict(saved)
    model.eval().save(output)
    AutoTokenizer.from_pretrained(parent).save_pretrained(output)
    return {
        "kind": "finetune",
        "text_prefix": info["text_prefix"],
        "max_length": info["max_length"],
        "base_model": info.get("base_model", str(parent)),
        "base_model_path": str(parent),
        "training_precision": info.get("training_precision", "fp32"),
        "adapted": {
            "parent": opts.parent,
            "trainable_layers": len(trainable) - 2,
            "epochs": int(opts.epochs),
            "reviewed_weight": {"chosen": chosen, "tried": tried},
        },
    }
