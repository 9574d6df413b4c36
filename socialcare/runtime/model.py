"""The two-headed classifier: one encoder, a multi-label intent head and a sentiment head.

Shared by training (which fits it) and serving (which loads it), so neither imports the other.
"""

from pathlib import Path

import torch
from torch import nn

from socialcare.core.arrays import IGNORE
from socialcare.core.labels import INTENTS, SENTIMENTS

HEADS_FILE = "heads.safetensors"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding excluded (how e5 was trained to embed)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class IntentSentimentModel(nn.Module):
    """Shared encoder + intent head (sigmoid, BCE) + sentiment head (softmax, cross-entropy).

    A post missing its intent labels (``intent_mask`` 0) or its sentiment (``IGNORE``)
    adds no loss to that head, so sentiment-only corpora can be mixed in.
    """

    def __init__(self, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, len(INTENTS))
        self.sentiment_head = nn.Linear(hidden, len(SENTIMENTS))
        # Labels travel with the weights, as transformers writes them (config.json): the
        # intent head's in id2label/label2id, the sentiment head's beside them.
        encoder.config.id2label = dict(enumerate(INTENTS))
        encoder.config.label2id = {name: i for i, name in enumerate(INTENTS)}
        encoder.config.sentiment_id2label = dict(enumerate(SENTIMENTS))
        encoder.config.sentiment_label2id = {name: i for i, name in enumerate(SENTIMENTS)}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        intent_labels: torch.Tensor | None = None,
        intent_mask: torch.Tensor | None = None,
        sentiment_labels: torch.Tensor | None = None,
        post_weight: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        out = {
            "intent_logits": self.intent_head(pooled),
            "sentiment_logits": self.sentiment_head(pooled),
        }
        if intent_labels is not None and sentiment_labels is not None:
            out["loss"] = masked_loss(
                out["intent_logits"],
                out["sentiment_logits"],
                intent_labels,
                intent_mask,
                sentiment_labels,
                post_weight,
            )
        return out

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory)
        heads = {f"intent_head.{k}": v for k, v in self.intent_head.state_dict().items()}
        heads |= {f"sentiment_head.{k}": v for k, v in self.sentiment_head.state_dict().items()}
        save_file({k: v.contiguous() for k, v in heads.items()}, directory / HEADS_FILE)

    @classmethod
    def load(cls, directory: Path) -> "IntentSentimentModel":
        from safetensors.torch import load_file
        from transformers import AutoModel

        from socialcare.runtime.registry import torch_weights_dir

        directory = torch_weights_dir(directory)  # a stored model's may be an entry apart
        encoder = AutoModel.from_pretrained(directory, add_pooling_layer=False)
        config = encoder.config
        saved = tuple(
            [name for _, name in sorted(table.items(), key=lambda item: int(item[0]))]
            for table in (config.id2label, getattr(config, "sentiment_id2label", {}))
        )
        if saved != (list(INTENTS), list(SENTIMENTS)):
            raise ValueError(
                f"{directory}/config.json: id2label: the model's labels {saved} differ from "
                f"this code's {list(INTENTS)}, {list(SENTIMENTS)}"
            )
        model = cls(encoder)
        heads = load_file(directory / HEADS_FILE)
        model.intent_head.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("intent_head.")}
        )
        model.sentiment_head.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("sentiment_head.")}
        )
        return model.eval()


def masked_loss(
    intent_logits: torch.Tensor,
    sentiment_logits: torch.Tensor,
    intent_labels: torch.Tensor,
    intent_mask: torch.Tensor,
    sentiment_labels: torch.Tensor,
    post_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE over posts with intent labels + cross-entropy over posts with a sentiment, each
    a mean weighted by ``post_weight`` (default 1 per post)."""
    weight = (
        torch.ones_like(intent_mask, dtype=torch.float32)
        if post_weight is None
        else post_weight.float()
    )
    per_post = nn.functional.binary_cross_entropy_with_logits(
        intent_logits, intent_labels.float(), reduction="none"
    ).mean(dim=1)
    mask = intent_mask.float() * weight
    intent_loss = (per_post * mask).sum() / mask.sum().clamp(min=1e-6)
    has_sentiment = sentiment_labels != IGNORE
    if has_sentiment.any():
        per_post = nn.functional.cross_entropy(
            sentiment_logits[has_sentiment], sentiment_labels[has_sentiment], reduction="none"
        )
        rated = weight[has_sentiment]
        sentiment_loss = (per_post * rated).sum() / rated.sum().clamp(min=1e-6)
    else:
        sentiment_loss = sentiment_logits.sum() * 0.0
    return intent_loss + sentiment_loss
