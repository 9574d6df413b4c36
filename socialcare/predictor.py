"""Load a trained model directory (fine-tuned or baseline) and turn texts into predictions.

Used by `socialcare predict`, `socialcare evaluate`, the service and the notebooks: one
code path from logits to calibrated probabilities to labels.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from socialcare.labels import INTENTS, SENTIMENTS

INFO_FILE = "socialcare.json"
BASELINE_FILE = "baseline.joblib"
DEFAULT_THRESHOLD = 0.5
ANY_LANG = "*"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@dataclass
class Decision:
    """How logits become labels: temperature scaling per head and per-intent thresholds.

    ``thresholds[lang][intent]``; the ``"*"`` entry applies to any language without its own.
    """

    intent_temperature: float = 1.0
    sentiment_temperature: float = 1.0
    thresholds: dict[str, dict[str, float]] = field(
        default_factory=lambda: {ANY_LANG: dict.fromkeys(INTENTS, DEFAULT_THRESHOLD)}
    )

    def intent_probs(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits / self.intent_temperature)

    def sentiment_probs(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits / self.sentiment_temperature)

    def threshold_matrix(self, langs: Sequence[str | None]) -> np.ndarray:
        """(N, intents) thresholds, each row those of the post's language."""
        rows = []
        for lang in langs:
            table = self.thresholds.get(lang or ANY_LANG, self.thresholds[ANY_LANG])
            rows.append([table[intent] for intent in INTENTS])
        return np.asarray(rows, dtype=float).reshape(len(rows), len(INTENTS))


@dataclass
class Predictions:
    """Calibrated probabilities and decisions for N posts (columns in INTENTS/SENTIMENTS order)."""

    intent_prob: np.ndarray  # (N, intents)
    intent_pred: np.ndarray  # (N, intents) bool
    sentiment_prob: np.ndarray  # (N, sentiments)
    thresholds: np.ndarray  # (N, intents)

    def record(self, i: int) -> dict:
        """The JSON-able prediction of post i: labels, intent probabilities, sentiment."""
        intents = {name: float(p) for name, p in zip(INTENTS, self.intent_prob[i], strict=True)}
        scores = {
            name: float(p) for name, p in zip(SENTIMENTS, self.sentiment_prob[i], strict=True)
        }
        return {
            "labels": [name for name, on in zip(INTENTS, self.intent_pred[i], strict=True) if on],
            "intents": intents,
            "sentiment": {
                "label": SENTIMENTS[int(np.argmax(self.sentiment_prob[i]))],
                "scores": scores,
            },
        }


class Predictor:
    """A trained model directory, ready to predict. ``kind`` is "finetune" or "baseline"."""

    def __init__(self, directory: Path, batch_size: int = 32):
        self.directory = Path(directory)
        info_path = self.directory / INFO_FILE
        if not info_path.exists():
            raise FileNotFoundError(f"{self.directory}: no {INFO_FILE}; not a socialcare model")
        self.info = json.loads(info_path.read_text(encoding="utf-8"))
        self.kind = self.info["kind"]
        self.decision = Decision(**self.info.get("decision", {}))
        self.batch_size = batch_size
        if self.kind == "finetune":
            self._load_finetuned()
        elif self.kind == "baseline":
            import joblib

            self._baseline = joblib.load(self.directory / BASELINE_FILE)
        else:
            raise ValueError(f"{info_path}: unknown model kind {self.kind!r}")

    def _load_finetuned(self) -> None:
        from transformers import AutoTokenizer

        from socialcare.model import IntentSentimentModel

        self._tokenizer = AutoTokenizer.from_pretrained(self.directory)
        self._model = IntentSentimentModel.load(self.directory)
        self._prefix = self.info.get("text_prefix", "")
        self._max_length = int(self.info.get("max_length", 256))

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw (uncalibrated) intent and sentiment logits.

        A head the model was never trained on (say, intents of a model trained on a
        sentiment-only corpus) answers "no": intent probability 0, uniform sentiment.
        """
        if self.kind == "baseline":
            intent, sentiment = baseline_logits(self._baseline, texts)
        else:
            intent, sentiment = self._finetuned_logits(texts)
        trained = self.info.get("trained_heads", ["intents", "sentiment"])
        if "intents" not in trained:
            intent = np.full_like(intent, -np.inf)
        if "sentiment" not in trained:
            sentiment = np.zeros_like(sentiment)
        return intent, sentiment

    def _finetuned_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        intent = np.zeros((len(texts), len(INTENTS)), dtype=np.float32)
        sentiment = np.zeros((len(texts), len(SENTIMENTS)), dtype=np.float32)
        # Length-sorted batches: little padding, so far fewer wasted FLOPs on CPU.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [self._prefix + texts[i] for i in index],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                out = self._model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )
                intent[index] = out["intent_logits"].float().numpy()
                sentiment[index] = out["sentiment_logits"].float().numpy()
        return intent, sentiment

    def predict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> Predictions:
        intent_logits, sentiment_logits = self.logits(texts)
        return self.decide(intent_logits, sentiment_logits, langs or [None] * len(texts))

    def decide(
        self, intent_logits: np.ndarray, sentiment_logits: np.ndarray, langs: Sequence[str | None]
    ) -> Predictions:
        intent_prob = self.decision.intent_probs(intent_logits)
        thresholds = self.decision.threshold_matrix(langs)
        return Predictions(
            intent_prob,
            intent_prob >= thresholds,
            self.decision.sentiment_probs(sentiment_logits),
            thresholds,
        )


def baseline_logits(pipelines: dict, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the TF-IDF + logistic-regression baseline, in the same form as the encoder's.

    Intent log-odds come from each one-vs-rest decision function; sentiment log-probabilities
    are valid softmax logits.
    """
    texts = list(texts)
    intent = np.zeros((len(texts), len(INTENTS)), dtype=np.float32)
    sentiment = np.zeros((len(texts), len(SENTIMENTS)), dtype=np.float32)
    if pipelines["intents"] is not None:
        intent[:] = np.asarray(pipelines["intents"].decision_function(texts)).reshape(intent.shape)
    if pipelines["sentiment"] is not None:
        sentiment[:] = pipelines["sentiment"].predict_log_proba(texts)
    return intent, sentiment


def write_info(directory: Path, info: dict, decision: Decision) -> None:
    """Write the model directory's socialcare.json (kind, text handling, decision, provenance)."""
    payload = dict(info, decision=asdict(decision))
    (directory / INFO_FILE).write_text(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
