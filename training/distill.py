"""`socialcare distill`: a smaller student that answers like the fine-tuned teacher.

The served model's speed is bounded by its 12 transformer layers (benchmarks/README.md:
fp32 is near what 2 cores can do). The student keeps every other one of the teacher's
layers (the top one always: the heads read it), starts from the teacher's weights and
heads, and learns the teacher's soft labels for both heads (temperature-scaled, as in
Hinton et al. 2015) beside the training posts' own labels. The texts it learns from are
the training posts plus variants of them that the teacher labels alone: each post as a
reply under another training post, and each post with a share of its words dropped.
All of them are our own posts; never the public benchmark corpora, never validation or
test. The result is an ordinary model: exported, gated, calibrated and thresholded on
validation, registered with its teacher's tag, promoted (or refused) by `socialcare
promote`.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socialcare.core import paths
from socialcare.core.arrays import IGNORE, LabelArrays
from socialcare.core.options import option
from training.config import TrainOptions, starting_model
from training.finetune import encoder_layers


@dataclass
class DistillOptions:
    """Train a student with fewer layers from a fine-tuned teacher (default: production)
    on the teacher's soft labels and the training labels; the student is calibrated,
    registered with its teacher's tag, and left for `socialcare promote` to judge."""

    teacher: str | None = option(
        None, help="model to distil: a tag, 'production' or a directory (default: production)"
    )
    layers: int = option(6, help="transformer layers of the student (every other one of 12)")
    epochs: int = option(3, help="epochs over the transfer set (the best on validation kept)")
    learning_rate: float = option(1e-4, help="peak learning rate of the student's layers")
    head_learning_rate: float = option(1e-3, help="peak learning rate of the two heads")
    temperature: float = option(2.0, help="softens the teacher's and the student's logits")
    hard_label_weight: float = option(
        0.5, help="share of the loss from the posts' own labels (the rest: the teacher's)"
    )
    augment: int = option(
        1, help="teacher-labelled variants per training post (replies, words dropped)"
    )
    train: list[Path] = option([paths.seed_split("train")], help="training JSONL files or folders")
    validation: list[Path] = option(
        [paths.seed_split("validation")], help="validation files: epoch choice, calibration"
    )
    test: list[Path] = option([paths.seed_split("test")], help="test files: scored once")
    labelled_dir: Path = option(paths.LABELLED_DIR, help="folder of the reviewers' round files")
    output: Path | None = option(None, help="model directory (default: artifacts/models/<run>)")
    register: bool = option(True, help="register the student in the model store")


def distill_options(opts: DistillOptions) -> TrainOptions:
    """The `socialcare train` options that distilling amounts to."""
    teacher = starting_model(opts.teacher, "distil a fine-tuned one")
    if not 1 <= opts.layers < teacher.layers:
        raise ValueError(f"--layers must be 1 to {teacher.layers - 1}, not {opts.layers}")
    if opts.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, not {opts.epochs}")
    if opts.augment < 0:
        raise ValueError(f"--augment must be at least 0, not {opts.augment}")
    if opts.temperature <= 0 or not 0 <= opts.hard_label_weight <= 1:
        raise ValueError("--temperature must be > 0 and --hard-label-weight within 0 to 1")
    return TrainOptions(
        kind="finetune",
        train=opts.train,
        labelled_dir=opts.labelled_dir,
        validation=opts.validation,
        test=opts.test,
        base_model=str(teacher.directory),
        text_prefix=teacher.info.get("text_prefix", ""),
        max_length=teacher.info["max_length"],
        epochs=opts.epochs,
        learning_rate=opts.learning_rate,
        head_learning_rate=opts.head_learning_rate,
        batch_size=32,
        output=opts.output,
        register=opts.register,
        name=teacher.name,
        teacher=teacher.tag,
        student_layers=opts.layers,
        distill_temperature=opts.temperature,
        hard_label_weight=opts.hard_label_weight,
        transfer_augment=opts.augment,
    )


def run_distill(opts: DistillOptions) -> int:
    from training.train import print_result, train

    train_opts = distill_options(opts)
    print(
        f"distilling {train_opts.teacher} into {opts.layers} layers: {opts.epochs} epochs, "
        f"temperature {opts.temperature:g}, {opts.augment} variant(s) per training post"
    )
    result = train(train_opts)
    print_result(result)
    teacher = _teacher_scores(Path(train_opts.base_model))
    for split, scores in teacher.items():
        print(f"teacher on {split}: intent macro-F1 {scores[0]:.3f}, sentiment {scores[1]:.3f}")
    print("next: socialcare promote <the tag above> (compares it with production)")
    return 0


def _teacher_scores(directory: Path) -> dict[str, tuple[float, float]]:
    metrics_file = directory / "metrics.json"
    if not metrics_file.exists():
        return {}
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    return {
        split: (m["overall"]["intent_macro_f1"], m["overall"]["sentiment"]["macro_f1"])
        for split, m in metrics.items()
        if isinstance(m, dict) and "overall" in m
    }


# --- The student: the teacher's layers, thinned ---


def kept_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers, the top one always (12 -> 6: 1, 3, 5, 7, 9, 11)."""
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


def make_student(teacher, layers: int):
    """A copy of ``teacher`` (an IntentSentimentModel) with only ``kept_layers`` of its
    transformer layers; embeddings and heads copied as they are."""
    from torch import nn

    student = copy.deepcopy(teacher)
    blocks = encoder_layers(student.encoder)
    keep = kept_layers(len(blocks), layers)
    student.encoder.encoder.layer = nn.ModuleList([blocks[i] for i in keep])
    student.encoder.config.num_hidden_layers = layers
    for index, block in enumerate(student.encoder.encoder.layer):  # attention's own index
        if hasattr(block.attention.self, "layer_idx"):
            block.attention.self.layer_idx = index
    return student, keep


# --- The transfer set: training posts and teacher-labelled variants ---


def transfer_texts(
    arrays: LabelArrays, augment: int, seed: int
) -> tuple[list[str], list[str | None]]:
    """The training texts, then ``augment`` variants of each: even ones as a reply under
    another training post (thread replies are what our data lacks most), odd ones with a
    fifth of their words dropped (shorter, less tidy posts)."""
    rng = np.random.default_rng(seed)
    texts, parents = list(arrays.texts), list(arrays.parents)
    n = len(arrays.texts)
    for round_ in range(augment):
        for i in range(n):
            text = arrays.texts[i]
            if round_ % 2 == 0 and n > 1:
                other = int(rng.integers(n - 1))
                texts.append(text)
                parents.append(arrays.texts[other + (other >= i)])
            else:
                words = text.split()
                kept = [w for w in words if rng.random() >= 0.2] or words[:1]
                texts.append(" ".join(kept))
                parents.append(arrays.parents[i])
    return texts, parents


def distill_loss(student_logits, teacher_logits, targets, temperature: float, hard: float):
    """(1 - hard) x the teacher's soft labels (BCE per intent, KL for sentiment, both x T²)
    + hard x the posts' own labels (masked: variants have none)."""
    import torch
    from torch.nn import functional

    from socialcare.runtime.model import masked_loss

    intent, sentiment = (x.float() for x in student_logits)
    teacher_intent, teacher_sentiment = teacher_logits
    t = temperature
    soft_intent = functional.binary_cross_entropy_with_logits(
        intent / t, torch.sigmoid(teacher_intent / t)
    )
    soft_sentiment = functional.kl_div(
        functional.log_softmax(sentiment / t, dim=1),
        functional.log_softmax(teacher_sentiment / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    soft = (soft_intent + soft_sentiment) * t * t
    if hard == 0:
        return soft
    return (1 - hard) * soft + hard * masked_loss(intent, sentiment, *targets)


def _padded(ids: list[list[int]], rows: list[int]):
    import torch

    width = max(len(ids[i]) for i in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for row, i in enumerate(rows):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
        mask[row, : len(ids[i])] = 1
    return input_ids, mask


def _selection_score(model, tokens, validation: LabelArrays) -> float:
    """Validation score that picks the best epoch (training.finetune.selection_metrics)."""
    import torch
    from transformers import EvalPrediction

    from training.finetune import selection_metrics

    ids, _ = tokens.encode(validation.texts, validation.parents)
    intent = np.zeros((len(ids), validation.intents.shape[1]), dtype=np.float32)
    sentiment = np.zeros((len(ids), 3), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for index, input_ids, mask in tokens.batches(ids, 64):
            out = model(torch.from_numpy(input_ids), torch.from_numpy(mask))
            intent[index] = out["intent_logits"].float().numpy()
            sentiment[index] = out["sentiment_logits"].float().numpy()

    labels = (validation.intents, validation.intent_known, validation.sentiment)
    return selection_metrics(EvalPrediction((intent, sentiment), labels))["selection_score"]


def fit_student(opts: TrainOptions, splits: dict, output: Path) -> dict:
    """Distil the teacher (``opts.base_model``) into ``opts.student_layers`` layers, trained
    on ``splits["train"]`` and its variants, the epoch with the best validation score kept;
    save it to ``output`` and return what socialcare.json must record about it."""
    import torch
    from transformers import AutoTokenizer

    from socialcare.runtime.model import IntentSentimentModel
    from socialcare.runtime.predictor import INFO_FILE, TORCH, Predictor
    from socialcare.runtime.tokens import TokenBatcher
    from training.finetune import mixed_precision
    from training.runtimes import VALIDATION

    teacher_dir = Path(opts.base_model)
    info = json.loads((teacher_dir / INFO_FILE).read_text(encoding="utf-8"))
    teacher_config = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    train = splits["train"]
    texts, parents = transfer_texts(train, opts.transfer_augment, opts.seed)
    # The teacher's logits as it is trained (torch fp32), not as it is served.
    teacher_intent, teacher_sentiment = Predictor(teacher_dir, runtime=TORCH, info=info).logits(
        texts, parents
    )
    tokens = TokenBatcher.for_model(teacher_dir, info)
    ids, _ = tokens.encode(texts, parents)
    n, extra = len(train.texts), len(texts) - len(train.texts)
    intents = np.concatenate([train.intents, np.zeros((extra, train.intents.shape[1]))])
    known = np.concatenate([train.intent_known, np.zeros(extra, dtype=bool)])
    sentiment = np.concatenate([train.sentiment, np.full(extra, IGNORE)])
    weights = np.concatenate([train.post_weights(), np.ones(extra)])

    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    student, keep = make_student(IntentSentimentModel.load(teacher_dir), opts.student_layers)
    student.encoder.get_input_embeddings().weight.requires_grad_(False)
    layers = [p for p in student.encoder.parameters() if p.requires_grad]
    heads = [*student.intent_head.parameters(), *student.sentiment_head.parameters()]
    optimizer = torch.optim.AdamW(
        [
            {"params": layers, "lr": opts.learning_rate},
            {"params": heads, "lr": opts.head_learning_rate or 1e-3},
        ],
        weight_decay=opts.weight_decay,
    )
    lengths = np.array([len(row) for row in ids])
    epochs = int(opts.epochs)
    per_epoch = -(-len(ids) // opts.batch_size)
    steps, warmup = epochs * per_epoch, max(1, int(opts.warmup_ratio * epochs * per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    autocast = mixed_precision(opts.precision)
    tried, best, kept = [], None, None
    for epoch in range(epochs):
        # Posts of similar length together (little padding), batches in random order.
        order = np.argsort(lengths + rng.uniform(0, 8, len(ids)))
        size = opts.batch_size
        batches = [order[i : i + size].tolist() for i in range(0, len(ids), size)]
        rng.shuffle(batches)
        student.train()
        for rows in batches:
            input_ids, mask = _padded(ids, rows)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = student(input_ids, mask)
            targets = (
                torch.from_numpy(intents[rows]).float(),
                torch.from_numpy(known[rows].astype(np.int64)),
                torch.from_numpy(sentiment[rows]),
                torch.from_numpy(weights[rows]).float(),
            )
            teacher = (
                torch.from_numpy(teacher_intent[rows]),
                torch.from_numpy(teacher_sentiment[rows]),
            )
            loss = distill_loss(
                (out["intent_logits"], out["sentiment_logits"]),
                teacher,
                targets,
                opts.distill_temperature,
                opts.hard_label_weight,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        score = _selection_score(student, tokens, splits[VALIDATION])
        print(f"epoch {epoch + 1}: validation score {score:.4f}")
        tried.append(round(score, 4))
        if best is None or score > best:
            best, kept = score, copy.deepcopy(student.state_dict())
    student.load_state_dict(kept)
    student.eval().save(output)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(output)
    return {
        "kind": "finetune",
        "text_prefix": info["text_prefix"],
        "max_length": info["max_length"],
        "base_model": info.get("base_model", str(teacher_dir)),
        "base_model_path": str(teacher_dir),
        "training_precision": "bf16" if autocast else "fp32",
        "distilled": {
            "teacher": opts.teacher,
            "teacher_layers": teacher_config["num_hidden_layers"],
            "kept_layers": keep,
            "transfer_posts": {"training": n, "variants": extra},
            "temperature": opts.distill_temperature,
            "hard_label_weight": opts.hard_label_weight,
            "epochs": epochs,
            "validation_score_per_epoch": tried,
        },
    }
