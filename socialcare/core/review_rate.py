"""How wide the review band must be for the share of posts a team chose to review.

The service flags a post for review when one of its intents is close to its threshold:
closeness ``u = 1 - |p - t| / room`` (socialcare.core.active_learning.head_uncertainty)
of at least ``1 - band``. So the share of posts flagged at a band is the share whose
closest intent reaches ``1 - band``. Training records the percentiles of that closest
closeness on validation (``review_calibration`` in socialcare.json); the service turns the
policy's review rate into a band with them: ``band = 1 - percentile(100 * (1 - rate))``.
"""

from collections.abc import Sequence

import numpy as np

from socialcare.core.active_learning import head_uncertainty

PERCENTILES = np.arange(101)  # 0, 1, ..., 100


def closest_intent(intent_prob: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N,) each post's highest intent closeness to its threshold, in [0, 1]."""
    probs = np.asarray(intent_prob, dtype=float)
    no_sentiment = np.zeros((len(probs), 1))
    return head_uncertainty(probs, no_sentiment, thresholds)[:, :-1].max(axis=1)


def review_calibration(intent_prob: np.ndarray, thresholds: np.ndarray, split: str) -> dict:
    """What socialcare.json records: the percentiles of the closest intent's closeness."""
    closeness = closest_intent(intent_prob, thresholds)
    if not len(closeness):
        raise ValueError(f"{split}: no posts to calibrate the review rate on")
    return {
        "split": split,
        "posts": len(closeness),
        "closest_intent_percentiles": np.percentile(closeness, PERCENTILES).round(6).tolist(),
    }


def band_for_rate(percentiles: Sequence[float], rate: float) -> float:
    """The band that flags about ``rate`` of the posts the percentiles were taken on."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"a review rate is a share of posts between 0 and 1, not {rate}")
    if len(percentiles) != len(PERCENTILES):
        raise ValueError(f"expected {len(PERCENTILES)} percentiles, got {len(percentiles)}")
    cut = float(np.interp(100.0 * (1.0 - rate), PERCENTILES, percentiles))
    return float(np.clip(1.0 - cut, 0.0, 1.0))
