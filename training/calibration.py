"""Temperature scaling and per-intent decision thresholds, fitted on validation only."""

from collections.abc import Sequence
from dataclasses import dataclass, field

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
# The most a threshold may flag of the posts without its intent. Without a limit, F-beta
# at beta 2 set Italian complaint to 0.05 and flagged 56% of new writers' posts without a
# complaint; 15% was chosen by cross-validation on validation among 0.10-0.20 and no
# limit (benchmarks/results/decision_layer.md).
MAX_FALSE_ALARM_RATE = 0.15


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


@dataclass(frozen=True)
class ThresholdRule:
    """How per-intent thresholds are chosen on validation.

    ``betas``: F-beta per intent (the cost weighting: beta > 1 favours recall);
    ``max_false_alarm_rate``: no threshold may flag more than this share of the posts
    without the intent (a weak intent at beta 2 would otherwise flag half the page);
    ``per_language``: a table per language besides the pooled one.
    """

    betas: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BETAS))
    max_false_alarm_rate: float | None = MAX_FALSE_ALARM_RATE
    # Off by default: chosen by cross-validation on validation for the data-v2 models
    # (benchmarks/results/decision_layer.md); per language, a few hundred posts are noise.
    per_language: bool = False
    # The share of the decision's fit that held-out reviewed posts make up (None: each
    # counts as one validation post; 1: they alone). More follows a new page's traffic
    # and forgets the old one's (benchmarks/results/learning_curve.md).
    reviewed_share: float | None = None


DEFAULT_RULE = ThresholdRule()


def threshold_curves(
    probs: np.ndarray, truth: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """F-beta and false-alarm rate at each threshold of THRESHOLD_GRID."""
    pred = probs[:, None] >= THRESHOLD_GRID[None, :]
    positive = truth[:, None]
    tp = np.sum(pred & positive, axis=0).astype(float)
    fp = np.sum(pred & ~positive, axis=0).astype(float)
    fn = np.sum(~pred & positive, axis=0).astype(float)
    denominator = (1 + beta**2) * tp + beta**2 * fn + fp
    f_beta = np.divide(
        (1 + beta**2) * tp, denominator, out=np.zeros_like(tp), where=denominator > 0
    )
    return f_beta, fp / max(1, int(np.sum(~truth)))


def best_threshold(
    probs: np.ndarray,
    truth: np.ndarray,
    beta: float,
    max_false_alarm_rate: float | None = MAX_FALSE_ALARM_RATE,
) -> float:
    """The grid threshold with the highest F-beta among those that flag at most
    ``max_false_alarm_rate`` of the posts without the intent (all of them when none does);
    ties go to the one nearest 0.5."""
    scores, false_alarms = threshold_curves(
        np.asarray(probs, dtype=float), np.asarray(truth, dtype=bool), beta
    )
    if max_false_alarm_rate is not None and (false_alarms <= max_false_alarm_rate).any():
        scores = np.where(false_alarms <= max_false_alarm_rate, scores, -1.0)
    order = sorted(range(len(THRESHOLD_GRID)), key=lambda i: abs(THRESHOLD_GRID[i] - 0.5))
    best = max(order, key=lambda i: scores[i])  # max keeps the first (nearest 0.5) of ties
    return float(THRESHOLD_GRID[best])


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    langs: Sequence[str],
    rule: ThresholdRule = DEFAULT_RULE,
) -> dict[str, dict[str, float]]:
    """Per-intent thresholds (pooled under "*", and per language where data allows)."""
    truth = labels.astype(bool)
    langs_array = np.asarray(langs)

    def best(rows, j: int, intent: str) -> float:
        beta = rule.betas.get(intent, 1.0)
        return best_threshold(probs[rows, j], truth[rows, j], beta, rule.max_false_alarm_rate)

    everyone = np.ones(len(langs_array), dtype=bool)
    table = {ANY_LANG: {intent: best(everyone, j, intent) for j, intent in enumerate(INTENTS)}}
    if rule.per_language:
        for lang in sorted(set(langs)):
            rows = langs_array == lang
            table[lang] = {
                intent: best(rows, j, intent)
                if truth[rows, j].sum() >= MIN_POSITIVES_PER_LANGUAGE
                else table[ANY_LANG][intent]
                for j, intent in enumerate(INTENTS)
            }
    return table


def fit_decision(
    intent_logits: np.ndarray,
    sentiment_logits: np.ndarray,
    labelled: LabelArrays,
    rule: ThresholdRule = DEFAULT_RULE,
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
        decision.thresholds = tune_thresholds(probs, labelled.intents[known], known_langs, rule)
    rated = has_sentiment(labelled.sentiment)
    if rated.any():
        decision.sentiment_temperature = fit_sentiment_temperature(
            sentiment_logits[rated], labelled.sentiment[rated]
        )
    return decision
