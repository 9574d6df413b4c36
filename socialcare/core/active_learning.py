"""Which post a reviewer should see next: the most uncertain first, near-duplicates spread out.

Uncertainty of post i (all terms in [0, 1], 1 = the model cannot tell):

- each intent j: ``u_ij = 1 - |p_ij - t_ij| / room_ij`` where ``room_ij`` is ``1 - t_ij``
  when ``p_ij >= t_ij`` and ``t_ij`` otherwise. Measured against the tuned threshold,
  not 0.5: a complaint threshold of 0.2 makes p = 0.25 a coin toss, not a safe "no";
  dividing by the room on that side makes p = 0 and p = 1 both count as certain;
- sentiment: ``u_i,sent = 1 - (q_i,first - q_i,second)``, one minus the margin between the
  two most probable classes (margin, not entropy: the reviewer decides between the top
  two, and the margin ignores how the rest is spread);
- ``u_i = max(max_j u_ij, u_i,sent)``: one label fixes every head at once, so a post is
  worth as much as its most uncertain decision. A mean would let a confident sentiment
  hide a borderline complaint.

Order (greedy, maximal marginal relevance): repeatedly pick the remaining post with the
highest ``u_i - diversity * max_{k in W} sim(i, k)``, where W are the last ``window`` posts
picked and ``sim`` is the cosine of character 3-5-gram TF-IDF vectors of the posts'
duplicate keys (socialcare.core.text.duplicate_key: case, punctuation, links and @mentions
ignored, so template posts and copy-paste campaigns score close to 1). Character n-grams
work for Swedish and Italian alike and catch inflected or misspelt variants. With the
default ``diversity = 0.5`` a near-copy of a just-shown post waits until the gap in
uncertainty to the next distinct post is above one half, or until it leaves the window;
``diversity = 0`` gives the pure uncertainty order. Ties keep the input order (queue order).
"""

from collections.abc import Sequence

import numpy as np

from socialcare.core.text import duplicate_key

DEFAULT_DIVERSITY = 0.5
DEFAULT_WINDOW = 10


def head_uncertainty(
    prob_intents: np.ndarray, prob_sentiment: np.ndarray, thresholds: np.ndarray | float
) -> np.ndarray:
    """(N, intents + 1) uncertainty of each decision: one column per intent, then sentiment.

    ``prob_intents`` (N, intents), ``thresholds`` broadcastable to it (one per post and
    intent, one per intent, or a scalar), ``prob_sentiment`` (N, sentiments).
    """
    p = np.asarray(prob_intents, dtype=float)
    q = np.asarray(prob_sentiment, dtype=float)
    if p.ndim != 2 or q.ndim != 2 or len(p) != len(q):
        raise ValueError(
            f"expected intent probabilities (N, intents) and sentiment probabilities "
            f"(N, sentiments) for the same N posts; got shapes {p.shape} and {q.shape}"
        )
    t = np.broadcast_to(np.asarray(thresholds, dtype=float), p.shape)
    if np.any((t <= 0) | (t >= 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    room = np.where(p >= t, 1.0 - t, t)
    intent_u = 1.0 - np.abs(p - t) / room
    if q.shape[1] >= 2:
        top2 = np.sort(q, axis=1)[:, -2:]
        sentiment_u = 1.0 - (top2[:, 1] - top2[:, 0])
    else:
        sentiment_u = np.zeros(len(q))
    return np.clip(np.column_stack([intent_u, sentiment_u]), 0.0, 1.0)


def uncertainty(
    prob_intents: np.ndarray, prob_sentiment: np.ndarray, thresholds: np.ndarray | float
) -> np.ndarray:
    """Per-post uncertainty in [0, 1]: the most uncertain of its decisions (module docstring)."""
    return head_uncertainty(prob_intents, prob_sentiment, thresholds).max(axis=1)


def similarity_matrix(texts: Sequence[str]) -> np.ndarray:
    """(N, N) cosine similarity of the posts' character n-gram TF-IDF vectors."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) == 0:
        return np.zeros((0, 0))
    vectors = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), preprocessor=duplicate_key, lowercase=False
    ).fit_transform(texts)
    return (vectors @ vectors.T).toarray()


def order_for_review(
    prob_intents: np.ndarray,
    prob_sentiment: np.ndarray,
    thresholds: np.ndarray | float,
    texts: Sequence[str],
    k: int | None = None,
    diversity: float = DEFAULT_DIVERSITY,
    window: int = DEFAULT_WINDOW,
) -> list[int]:
    """Indices of the posts in review order: the first ``k`` (default: all).

    Most uncertain first, a near-duplicate of one of the last ``window`` picks pushed back
    (formula in the module docstring). Memory is O(N²) for the similarities: order at
    most a few thousand posts at a time (a review queue, one batch of a file).
    """
    scores = uncertainty(prob_intents, prob_sentiment, thresholds)
    if len(texts) != len(scores):
        raise ValueError(f"{len(texts)} texts for {len(scores)} predictions")
    if diversity < 0 or window < 0:
        raise ValueError("diversity and window must not be negative")
    n = len(scores)
    k = n if k is None else max(0, min(k, n))
    if diversity == 0 or window == 0 or n < 2:
        # A stable sort keeps the input order among equally uncertain posts.
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    sim = similarity_matrix(texts)
    remaining = np.ones(n, dtype=bool)
    order: list[int] = []
    for _ in range(k):
        recent = order[-window:]
        penalty = sim[:, recent].max(axis=1) if recent else np.zeros(n)
        gain = np.where(remaining, scores - diversity * penalty, -np.inf)
        pick = int(np.argmax(gain))  # argmax returns the first maximum: input order on ties
        order.append(pick)
        remaining[pick] = False
    return order
