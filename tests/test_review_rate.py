"""The review rate a team chooses becomes a band that flags that share of posts."""

import numpy as np
import pytest

from serving.policy import load_policy
from socialcare.core.review_rate import band_for_rate, closest_intent, review_calibration


def toy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    probs = rng.beta(0.6, 1.5, size=(n, 5))  # mostly low, some high, like intent heads
    thresholds = np.broadcast_to(rng.uniform(0.2, 0.6, size=5), probs.shape)
    return probs, thresholds


@pytest.mark.parametrize("rate", [0.03, 0.08, 0.20])
def test_the_band_flags_the_asked_share_of_posts(rate):
    probs, thresholds = toy(4000, seed=1)
    calibration = review_calibration(probs, thresholds, "validation")
    band = band_for_rate(calibration["closest_intent_percentiles"], rate)
    flagged = closest_intent(probs, thresholds) >= 1 - band
    assert flagged.mean() == pytest.approx(rate, abs=0.005)
    # On new posts of the same kind the share holds, within sampling noise.
    new_probs, _ = toy(4000, seed=2)
    assert (closest_intent(new_probs, thresholds) >= 1 - band).mean() == pytest.approx(
        rate, abs=0.02
    )


def test_a_higher_rate_widens_the_band_and_bad_rates_are_refused():
    probs, thresholds = toy(1000, seed=3)
    percentiles = review_calibration(probs, thresholds, "validation")["closest_intent_percentiles"]
    assert band_for_rate(percentiles, 0.05) < band_for_rate(percentiles, 0.15)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            band_for_rate(percentiles, bad)


def test_the_policy_uses_the_rate_when_the_model_is_calibrated():
    policy = load_policy()  # the shipped policy sets a review rate
    assert policy.review_rate is not None
    probs, thresholds = toy(2000, seed=4)
    calibration = review_calibration(probs, thresholds, "validation")
    band = policy.band_for(calibration)
    assert band == band_for_rate(calibration["closest_intent_percentiles"], policy.review_rate)
    assert policy.band_for(None) == policy.review_band  # a model without calibration
    # The band reaches the review reasons: a wider band flags a post a narrower one does not.
    intents = {
        "complaint": 0.30,
        "question": 0.0,
        "factual_error": 0.0,
        "humour": 0.0,
        "praise": 0.0,
    }
    limits = dict.fromkeys(intents, 0.5)
    assert policy.uncertain(intents, limits, band=0.5)
    assert not policy.uncertain(intents, limits, band=0.1)
