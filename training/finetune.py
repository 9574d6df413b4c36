"""Fine-tune the encoder with both heads using the Hugging Face Trainer.

Runs on the CPU by default and on the GPU when there is one; `accelerate launch` or
`torchrun` spread it over several GPUs with no code change (the Trainer handles it).
"""

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socialcare.core.arrays import LabelArrays, has_sentiment
from socialcare.runtime.model import IntentSentimentModel
from socialcare.runtime.predictor import INFO_FILE
from socialcare.runtime.tokens import TokenBatcher

LABEL_COLUMNS = ["intent_labels", "intent_mask", "sentiment_labels"]


@dataclass
class FinetuneSettings:
    base_model: str  # a path from_pretrained can load (already resolved)
    text_prefix: str  # saved in socialcare.json: the predictor reads it back from there
    max_length: int  # likewise
    epochs: float
    learning_rate: float
    head_learning_rate: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    patience: int
    freeze_embeddings: bool
    frozen_layers: int
    seed: int
    precision: str = "auto"  # "auto", "bf16" or "fp32" (see mixed_precision)


def encoder_layers(encoder) -> list:
    """The transformer blocks of a BERT-like encoder, bottom first (BERT and XLM-R name
    them ``encoder.layer``)."""
    blocks = getattr(getattr(encoder, "encoder", None), "layer", None)
    if blocks is None:
        raise ValueError(f"{type(encoder).__name__}: no encoder.layer to freeze layers of")
    return list(blocks)


def bf16_is_native() -> bool:
    """Whether this machine does bf16 arithmetic in hardware (a GPU that supports it, or
    a CPU with AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, may go
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def mixed_precision(precision: str) -> bool:
    """Whether to train under bf16 autocast. Weights, optimiser state and the saved model
    stay fp32; only the matrix products run in bf16, which on an AVX512-BF16 CPU makes a
    training step about 1.6 times faster (benchmarks/README.md)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "bf16" and not bf16_is_native():
        raise ValueError("--precision bf16: this machine has no native bf16 (use auto or fp32)")
    return precision == "bf16" or (precision == "auto" and bf16_is_native())


def _dataset(arrays: LabelArrays, tokens: TokenBatcher):
    """Token ids as the predictor will compute them (the same TokenBatcher), and targets."""
    from datasets import Dataset

    ids, _ = tokens.encode(arrays.texts, arrays.parents)
    columns = {
        "input_ids": ids,
        "attention_mask": [[1] * len(row) for row in ids],
        "length": [len(row) for row in ids],
        "intent_labels": arrays.intents.astype(np.float32).tolist(),
        "intent_mask": arrays.intent_known.astype(np.int64).tolist(),
        "sentiment_labels": arrays.sentiment.tolist(),
    }
    if arrays.weights is not None:  # the model's loss weighs each post by it
        columns["post_weight"] = arrays.weights.astype(np.float32).tolist()
    return Dataset.from_dict(columns)


def _macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(true, pred, average="macro", zero_division=0))


def selection_metrics(eval_prediction) -> dict[str, float]:
    """Validation scores that pick the best epoch: intents at 0.5 and sentiment argmax.

    A head without validation labels (a sentiment-only corpus has no intents) is not
    scored; the selection score is the mean of the heads that are.
    """
    intent_logits, sentiment_logits = eval_prediction.predictions
    intent_labels, intent_mask, sentiment_labels = eval_prediction.label_ids
    scores = {}
    known = intent_mask.astype(bool)
    if known.any():
        scores["intent_macro_f1"] = _macro_f1(
            intent_labels[known].astype(int), (intent_logits[known] > 0).astype(int)
        )
    labelled = has_sentiment(sentiment_labels)
    if labelled.any():
        scores["sentiment_macro_f1"] = _macro_f1(
            sentiment_labels[labelled], sentiment_logits[labelled].argmax(axis=1)
        )
    if not scores:
        raise ValueError("validation data has neither intent nor sentiment labels")
    return scores | {"selection_score": sum(scores.values()) / len(scores)}


def finetune(
    train: LabelArrays, validation: LabelArrays, settings: FinetuneSettings, output_dir: Path
) -> float:
    """Train, keep the epoch with the best validation score, save it to output_dir; return
    that score (`selection_metrics`' selection_score)."""
    from transformers import (
        AutoModel,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model)
    tokens = TokenBatcher(tokenizer, settings.text_prefix, settings.max_length)
    if (Path(settings.base_model) / INFO_FILE).exists():
        # A model of ours (socialcare adapt): continue from its encoder and both heads.
        model = IntentSentimentModel.load(Path(settings.base_model)).train()
        encoder = model.encoder
    else:
        encoder = AutoModel.from_pretrained(settings.base_model, add_pooling_layer=False)
        model = IntentSentimentModel(encoder)
    if settings.freeze_embeddings:
        # The 250k-piece embedding table is most of the weights; freezing it makes CPU
        # training several times cheaper and keeps rare pieces as pre-trained.
        encoder.get_input_embeddings().weight.requires_grad_(False)
    # Lower layers kept as pre-trained: no gradients to compute through them (faster on
    # CPU), and less to forget on small data.
    for layer in encoder_layers(encoder)[: settings.frozen_layers]:
        layer.requires_grad_(False)

    # The heads start from random weights: at the encoder's small learning rate they
    # would need many epochs to catch up, so they get their own, larger one.
    import torch

    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    head_params = [*model.intent_head.parameters(), *model.sentiment_head.parameters()]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": settings.learning_rate},
            {"params": head_params, "lr": settings.head_learning_rate},
        ],
        weight_decay=settings.weight_decay,
    )

    train_set = _dataset(train, tokens)
    steps_per_epoch = math.ceil(len(train_set) / settings.batch_size)
    bf16 = mixed_precision(settings.precision)
    with tempfile.TemporaryDirectory(prefix="socialcare-checkpoints-") as checkpoints:
        args = TrainingArguments(
            output_dir=checkpoints,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            warmup_steps=int(settings.warmup_ratio * steps_per_epoch * settings.epochs),
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,
            save_only_model=True,
            load_best_model_at_end=True,
            metric_for_best_model="selection_score",
            greater_is_better=True,
            train_sampling_strategy="group_by_length",
            label_names=LABEL_COLUMNS,
            logging_steps=max(1, steps_per_epoch // 4),
            report_to="none",
            seed=settings.seed,
            dataloader_num_workers=0,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=_dataset(validation, tokens),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=selection_metrics,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=settings.patience)],
            optimizers=(optimizer, None),
        )
        trainer.train()
    model = trainer.model.eval()
    model.save(output_dir)
    tokenizer.save_pretrained(output_dir)
    return float(trainer.state.best_metric)
