"""Review order: most uncertain first, near-duplicates spread out."""

import numpy as np
import pytest

from socialcare.core.active_learning import order_for_review, similarity_matrix, uncertainty
from socialcare.core.labels import INTENTS

FLAT = [1 / 3, 1 / 3, 1 / 3]
SURE = [0.98, 0.01, 0.01]


def intents(**probs: float) -> list[float]:
    """A row of intent probabilities; unnamed intents are a confident 0."""
    return [probs.get(name, 0.0) for name in INTENTS]


def test_an_intent_is_most_uncertain_at_its_own_threshold_not_at_one_half():
    p = np.array([intents(complaint=0.2), intents(complaint=0.5), intents(complaint=1.0)])
    q = np.array([SURE] * 3)
    thresholds = np.array(intents(complaint=0.2, question=0.5, factual_error=0.5))
    thresholds[thresholds == 0] = 0.5
    u = uncertainty(p, q, thresholds)
    assert u[0] == pytest.approx(1.0)  # exactly on the tuned threshold 0.2
    assert u[1] == pytest.approx(1 - 0.3 / 0.8)  # 0.3 above it, out of 0.8 of room
    assert u[2] == pytest.approx(0.03)  # certain intents: the sentiment margin (0.97) rules


def test_sentiment_margin_counts_and_a_confident_head_does_not_hide_an_unsure_one():
    p = np.array([intents(), intents(), intents(praise=0.5)])
    q = np.array([FLAT, SURE, SURE])
    u = uncertainty(p, q, 0.5)
    assert u[0] == pytest.approx(1.0)  # a three-way tie of sentiments
    assert u[1] == pytest.approx(0.03)  # everything sure
    assert u[2] == pytest.approx(1.0)  # sure sentiment, borderline praise: still top


def test_per_post_thresholds_are_used_row_by_row():
    p = np.array([intents(question=0.3), intents(question=0.3)])
    t = np.full((2, len(INTENTS)), 0.5)
    t[0, INTENTS.index("question")] = 0.3
    u = uncertainty(p, np.array([SURE, SURE]), t)
    assert u[0] == pytest.approx(1.0) and u[1] < 0.7


def test_bad_shapes_and_thresholds_are_refused():
    with pytest.raises(ValueError, match="same N posts"):
        uncertainty(np.zeros((2, 5)), np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        uncertainty(np.zeros((1, 5)), np.array([FLAT]), 0.0)
    with pytest.raises(ValueError, match="3 texts for 2"):
        order_for_review(np.zeros((2, 5)), np.array([FLAT, FLAT]), 0.5, ["a", "b", "c"])


def test_without_diversity_the_order_is_by_uncertainty_and_ties_keep_queue_order():
    p = np.array([intents(complaint=c) for c in (0.05, 0.45, 0.9, 0.5, 0.5)])
    q = np.array([SURE] * 5)
    texts = [f"post {i}" for i in range(5)]
    order = order_for_review(p, q, 0.5, texts, diversity=0)
    assert order == [3, 4, 1, 2, 0]
    assert order_for_review(p, q, 0.5, texts, k=2, diversity=0) == [3, 4]


# Three copies of one campaign post, the most uncertain of all, and three distinct posts.
CAMPAIGN = [
    "Väntat sex veckor på besked om vattenskadan, helt oacceptabelt!!",
    "@user Väntat sex veckor på besked om vattenskadan. Helt oacceptabelt",
    "väntat SEX veckor på besked om vattenskadan helt oacceptabelt 😡",
]
DISTINCT = [
    "Qualcuno sa se la polizza casa copre la grandine sul tetto?",
    "Tack Maria på kundtjänst för snabb hjälp med bilskadan!",
    "Il mio gatto ha letto le condizioni generali e si è addormentato.",
]


def campaign_case() -> tuple[np.ndarray, np.ndarray, list[str]]:
    complaint = [0.50, 0.53, 0.46, 0.62, 0.66, 0.70]  # copies nearest the 0.5 threshold
    p = np.array([intents(complaint=c) for c in complaint])
    q = np.array([SURE] * 6)
    return p, q, CAMPAIGN + DISTINCT


def test_near_copies_are_similar_and_distinct_posts_are_not():
    sim = similarity_matrix(CAMPAIGN + DISTINCT)
    assert sim[0, 1] > 0.8 and sim[0, 2] > 0.8
    assert sim[0, 3:].max() < 0.3


def test_diversity_keeps_near_copies_from_being_shown_together():
    p, q, texts = campaign_case()
    plain = order_for_review(p, q, 0.5, texts, diversity=0)
    assert set(plain[:3]) == {0, 1, 2}  # pure uncertainty: the campaign, back to back

    order = order_for_review(p, q, 0.5, texts)
    assert sorted(order) == list(range(6))  # nothing lost, nothing repeated
    assert order[0] == 0  # the most uncertain post still comes first
    # Every distinct post (uncertainty 0.76 to 0.6) comes before the other copies (0.94,
    # 0.92), which lose half their similarity (about 0.9) to the copy just shown.
    assert order == [0, 3, 4, 5, 1, 2]


def test_a_copy_comes_back_once_it_leaves_the_window():
    p, q, texts = campaign_case()
    order = order_for_review(p, q, 0.5, texts, window=1)
    # With only the last pick remembered, the copies alternate with distinct posts.
    assert order[:5] == [0, 3, 1, 4, 2]
