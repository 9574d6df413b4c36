"""Temperature scaling and per-intent decision thresholds, fitted on validation only."""

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from socialcare.core.arrays import LabelArrays, has_sentiment
from socialcare.core.labels import INTENTS
from socialcare.runtime.predictor import ANY_LANG, Decision, sigmoid, softmax

# A missed complaint, question or factual error costs more than a false alarm (the team
# must answer those within the hour), so their thresholds maximise recall-leaning F-beta.
DEFAULT_BETAS = {
    "complaint": 2.0,
    "question": 1.5,
    "factual_error": 1.5,
    "humour": 1.0,
    "praise": 1.0,
}
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
# Below this many positives a language's own threshold is noise: it uses the pooled one.
MIN_POSITIVES_PER_LANGUAGE = 15


def _fit_temperature(loss) -> float:
    """Minimise a loss over log-temperature (so T stays positive), T in [0.05, 20]."""
    result = minimize_scalar(
        lambda log_t: loss(np.exp(log_t)), bounds=(np.log(0.05), np.log(20)), method="bounded"
    )
    return float(np.exp(result.x))


def fit_intent_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """One temperature for all intent logits, minimising binary cross-entropy."""

    def bce(t: float) -> float:
        p = np.clip(sigmoid(logits / t), 1e-7, 1 - 1e-7)
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

    return _fit_temperature(bce)


def fit_sentiment_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """One temperature for the sentiment logits, minimising cross-entropy."""

    def nll(t: float) -> float:
        p = softmax(logits / t)[np.arange(len(labels)), labels]
        return float(-np.mean(np.log(np.clip(p, 1e-12, None))))

    return _fit_temperature(nll)


def best_threshold(probs: np.ndarray, truth: np.ndarray, beta: float) -> float:
    """The grid threshold with the highest F-beta; ties go to the one nearest 0.5."""
    best, best_score = 0.5, -1.0
    for threshold in sorted(THRESHOLD_GRID, key=lambda t: abs(t - 0.5)):
        pred = probs >= threshold
        tp = float(np.sum(pred & truth))
        fp = float(np.sum(pred & ~truth))
        fn = float(np.sum(~pred & truth))
        denominator = (1 + beta**2) * tp + beta**2 * fn + fp
        score = (1 + beta**2) * tp / denominator if denominator else 0.0
        if score > best_score:
            best, best_score = float(threshold), score
    return best


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    langs: Sequence[str],
    betas: dict[str, float] = DEFAULT_BETAS,
    per_language: bool = True,
) -> dict[str, dict[str, float]]:
    """Per-intent thresholds (pooled under "*", and per language where data allows)."""
    truth = labels.astype(bool)
    langs_array = np.asarray(langs)
    table = {
        ANY_LANG: {
            intent: best_threshold(probs[:, j], truth[:, j], betas.get(intent, 1.0))
            for j, intent in enumerate(INTENTS)
        }
    }
    if per_language:
        for lang in sorted(set(langs)):
            rows = langs_array == lang
            table[lang] = {
                intent: best_threshold(probs[rows, j], truth[rows, j], betas.get(intent, 1.0))
                if truth[rows, j].sum() >= MIN_POSITIVES_PER_LANGUAGE
                else table[ANY_LANG][intent]
                for j, intent in enumerate(INTENTS)
            }
    return table


def fit_decision(
    intent_logits: np.ndarray,
    sentiment_logits: np.ndarray,
    labelled: LabelArrays,
    betas: dict[str, float] = DEFAULT_BETAS,
    per_language: bool = True,
) -> Decision:
    """Calibrate both heads on ``labelled`` posts' logits, then tune thresholds on the
    calibrated intent probabilities.

    A head without validation labels keeps temperature 1 (and default thresholds).
    """
    decision = Decision()
    known = labelled.intent_known.astype(bool)
    if known.any():
        decision.intent_temperature = fit_intent_temperature(
            intent_logits[known], labelled.intents[known]
        )
        probs = sigmoid(intent_logits[known] / decision.intent_temperature)
        known_langs = [lang for lang, k in zip(labelled.langs, known, strict=True) if k]
        decision.thresholds = tune_thresholds(
            probs, labelled.intents[known], known_langs, betas, per_language
        )
    rated = has_sentiment(labelled.sentiment)
    if rated.any():
        decision.sentiment_temperature = fit_sentiment_temperature(
            sentiment_logits[rated], labelled.sentiment[rated]
        )
    return decision
