"""Load a trained model directory (fine-tuned or baseline) and turn texts into predictions.

Used by `socialcare predict`, `socialcare evaluate`, the service and the notebooks: one
code path from logits to calibrated probabilities to labels.

A fine-tuned model runs on one of three runtimes: ``torch`` (the saved weights),
``onnx-fp32`` (the same network exported to ONNX, same logits) or ``onnx-int8`` (its
MatMul weights quantised to int8 block-wise: about 1.2-1.7x faster on CPU). Training
records which one is served in socialcare.json (``runtime``) and tunes the thresholds on
that runtime's logits; see training/runtimes.py.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.runtime.tokens import TokenBatcher

INFO_FILE = "socialcare.json"
BASELINE_FILE = "baseline.joblib"
DEFAULT_THRESHOLD = 0.5
ANY_LANG = "*"

TORCH, ONNX_FP32, ONNX_INT8 = "torch", "onnx-fp32", "onnx-int8"
# SmoothQuant + per-tensor dynamic int8 (training/smoothquant.py): faster than the
# block-wise ONNX_INT8, less faithful; the quality gate chooses between them.
ONNX_INT8_SMOOTH = "onnx-int8-smooth"
RUNTIMES = (TORCH, ONNX_FP32, ONNX_INT8, ONNX_INT8_SMOOTH)
ONNX_FILES = {
    ONNX_FP32: "model.onnx",
    ONNX_INT8: "model.int8.onnx",
    ONNX_INT8_SMOOTH: "model.int8-smooth.onnx",
}
# The exported graph's interface (training/export.py writes it, the predictor feeds it).
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUTS = ("intent_logits", "sentiment_logits")


def model_labels() -> dict[str, list[str]]:
    """The label set as a model records it (socialcare.json ``labels``)."""
    return {"intents": list(INTENTS), "sentiments": list(SENTIMENTS)}


def check_labels(info: dict, where: Path) -> None:
    """Refuse a model whose heads were trained on another label set than this code's."""
    saved = info.get("labels")
    if saved != model_labels():
        raise ValueError(
            f"{where}: labels: the model's label set {saved} differs from this code's "
            f"{model_labels()}; retrain it, or use the code version it was trained with"
        )


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def onnx_session(path: Path, threads: int | None = None, spinning: bool = True):
    """An ONNX Runtime CPU session tuned for this model: created once, shared by all calls.

    One batch at a time uses every core (intra-op threads); the graph is a plain chain, so
    sequential execution and no inter-op pool; all graph optimisations (fusions) on.
    ``spinning``: worker threads busy-wait for the next op (lowest latency when the cores
    are the model's alone); off, they sleep and leave the cores to other processes.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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

    def decide(
        self,
        intent_logits: np.ndarray,
        sentiment_logits: np.ndarray,
        langs: Sequence[str | None],
        truncated: np.ndarray | None = None,
    ) -> "Predictions":
        """Calibrated probabilities and labels of N posts' logits (``langs`` pick each
        post's thresholds; ``truncated``: which texts the model read only in part)."""
        intent_prob = self.intent_probs(intent_logits)
        thresholds = self.threshold_matrix(langs)
        return Predictions(
            intent_prob,
            intent_prob >= thresholds,
            self.sentiment_probs(sentiment_logits),
            thresholds,
            np.zeros(len(intent_prob), dtype=bool) if truncated is None else truncated,
        )


@dataclass
class Predictions:
    """Calibrated probabilities and decisions for N posts (columns in INTENTS/SENTIMENTS order)."""

    intent_prob: np.ndarray  # (N, intents)
    intent_pred: np.ndarray  # (N, intents) bool
    sentiment_prob: np.ndarray  # (N, sentiments)
    thresholds: np.ndarray  # (N, intents)
    truncated: np.ndarray  # (N,) bool: the model read only the first max_length tokens


class Predictor:
    """A trained model directory, ready to predict. ``kind`` is "finetune" or "baseline".

    ``runtime`` (fine-tuned models only): "torch", "onnx-fp32" or "onnx-int8"; by default
    the one socialcare.json says is served, else ONNX fp32 when ``model.onnx`` exists (its
    logits are torch's), else torch. ``threads``: cores for ONNX Runtime (default: all
    this process may use); ``spinning``: see `onnx_session`.
    """

    def __init__(
        self,
        directory: Path,
        batch_size: int = 32,
        runtime: str | None = None,
        threads: int | None = None,
        spinning: bool = True,
        tag: str | None = None,
        info: dict | None = None,
    ):
        self.directory = Path(directory)
        self.tag = tag or str(self.directory)
        info_path = self.directory / INFO_FILE
        if info is None:
            if not info_path.exists():
                raise FileNotFoundError(f"{self.directory}: no {INFO_FILE}; not a socialcare model")
            info = json.loads(info_path.read_text(encoding="utf-8"))
        self.info = info
        check_labels(info, info_path)
        self.kind = self.info["kind"]
        self.decision = Decision(**self.info.get("decision", {}))
        self.batch_size = batch_size
        if self.kind == "finetune":
            self.runtime = self._pick_runtime(runtime)
            self._load_finetuned(threads, spinning)
        elif self.kind == "baseline":
            if runtime not in (None, "sklearn"):
                raise ValueError(
                    f"{self.directory}: a baseline model runs on scikit-learn; runtime "
                    f"{runtime!r} applies to fine-tuned models only (leave it unset)"
                )
            import joblib

            self.runtime = "sklearn"
            self._baseline = joblib.load(self.directory / BASELINE_FILE)
        else:
            raise ValueError(f"{info_path}: unknown model kind {self.kind!r}")

    def _pick_runtime(self, runtime: str | None) -> str:
        if runtime is None:
            runtime = self.info.get("runtime")
        if runtime is None:
            # Unrecorded (a model exported after training): ONNX fp32 reproduces the torch
            # logits its thresholds were tuned on; int8 would need its own calibration.
            exported = (self.directory / ONNX_FILES[ONNX_FP32]).exists()
            runtime = ONNX_FP32 if exported else TORCH
        if runtime not in RUNTIMES:
            raise ValueError(
                f"{self.directory / INFO_FILE}: runtime: unknown {runtime!r}; "
                f"expected one of {', '.join(RUNTIMES)}"
            )
        if runtime in ONNX_FILES and not (self.directory / ONNX_FILES[runtime]).exists():
            raise FileNotFoundError(
                f"{self.directory / ONNX_FILES[runtime]}: missing, needed by runtime "
                f"{runtime!r}; export it with `python -m training.export {self.directory}` "
                f"or load the model with runtime='torch'"
            )
        return runtime

    def _load_finetuned(self, threads: int | None, spinning: bool) -> None:
        self._tokens = TokenBatcher.for_model(self.directory, self.info)
        if self.runtime == TORCH:
            from socialcare.runtime.model import IntentSentimentModel

            self._model = IntentSentimentModel.load(self.directory)
        else:
            self._session = onnx_session(
                self.directory / ONNX_FILES[self.runtime], threads, spinning
            )

    def logits(
        self, texts: Sequence[str], parents: Sequence[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw (uncalibrated) intent and sentiment logits.

        A head the model was never trained on (say, intents of a model trained on a
        sentiment-only corpus) answers "no": intent probability 0, uniform sentiment.
        """
        intent, sentiment, _ = self._forward(texts, parents)
        return intent, sentiment

    def _forward(
        self, texts: Sequence[str], parents: Sequence[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Logits of both heads and which texts were truncated. ``parents``: the post each
        text replies to (or None); the baseline reads the text alone."""
        if self.kind == "baseline":
            intent, sentiment = baseline_logits(self._baseline, texts)
            truncated = np.zeros(len(texts), dtype=bool)  # TF-IDF reads the whole text
        else:
            intent, sentiment, truncated = self._finetuned_logits(texts, parents)
        trained = self.info.get("trained_heads", ["intents", "sentiment"])
        if "intents" not in trained:
            intent = np.full_like(intent, -np.inf)
        if "sentiment" not in trained:
            sentiment = np.zeros_like(sentiment)
        return intent, sentiment, truncated

    def _finetuned_logits(
        self, texts: Sequence[str], parents: Sequence[str | None] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        intent = np.zeros((len(texts), len(INTENTS)), dtype=np.float32)
        sentiment = np.zeros((len(texts), len(SENTIMENTS)), dtype=np.float32)
        ids, truncated = self._tokens.encode(texts, parents)
        run = self._run_torch if self.runtime == TORCH else self._run_onnx
        for index, input_ids, attention_mask in self._tokens.batches(ids, self.batch_size):
            intent[index], sentiment[index] = run(input_ids, attention_mask)
        return intent, sentiment, truncated

    def _run_torch(
        self, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
            )
        return out["intent_logits"].float().numpy(), out["sentiment_logits"].float().numpy()

    def _run_onnx(
        self, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        feed = dict(zip(ONNX_INPUTS, (input_ids, attention_mask), strict=True))
        intent, sentiment = self._session.run(list(ONNX_OUTPUTS), feed)
        return intent, sentiment

    def predict(
        self,
        texts: Sequence[str],
        langs: Sequence[str | None] | None = None,
        parents: Sequence[str | None] | None = None,
    ) -> Predictions:
        """Calibrated predictions; ``langs`` pick each post's thresholds, ``parents`` are the
        posts that replies answer (None where a post is no reply)."""
        intent_logits, sentiment_logits, truncated = self._forward(texts, parents)
        langs = langs or [None] * len(texts)
        return self.decision.decide(intent_logits, sentiment_logits, langs, truncated)


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
