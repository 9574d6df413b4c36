"""Posts to label arrays (with masks for missing labels), shared by every model kind."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.schema import Post

IGNORE = -1  # sentiment index of a post labelled for intents only


def has_sentiment(sentiment: np.ndarray) -> np.ndarray:
    """Which rows of a sentiment index array carry a sentiment (not IGNORE)."""
    return sentiment != IGNORE


@dataclass
class LabelArrays:
    """Targets of N posts: multi-hot intents with a known-mask, sentiment index or IGNORE."""

    texts: list[str]
    langs: list[str]
    parents: list[str | None]  # the post each one replies to, or None
    intents: np.ndarray  # (N, intents) 0/1
    intent_known: np.ndarray  # (N,) bool: the post has intent labels (possibly none)
    sentiment: np.ndarray  # (N,) int, IGNORE when the post has no sentiment
    # (N,) float: how much each post counts in training (reviewed posts may count more)
    weights: np.ndarray | None = None

    def post_weights(self) -> np.ndarray:
        return np.ones(len(self.texts)) if self.weights is None else self.weights

    def take(self, rows: np.ndarray) -> "LabelArrays":
        """The posts at ``rows`` (a fold, a language)."""
        return LabelArrays(
            texts=[self.texts[i] for i in rows],
            langs=[self.langs[i] for i in rows],
            parents=[self.parents[i] for i in rows],
            intents=self.intents[rows],
            intent_known=self.intent_known[rows],
            sentiment=self.sentiment[rows],
            weights=None if self.weights is None else self.weights[rows],
        )


def encode_posts(posts: list[Post], weights: Sequence[float] | None = None) -> LabelArrays:
    """Label arrays of posts, in INTENTS/SENTIMENTS column order (``weights``: one per
    post, for training)."""
    if weights is not None and len(weights) != len(posts):
        raise ValueError(f"{len(weights)} weights for {len(posts)} posts")
    intents = np.zeros((len(posts), len(INTENTS)), dtype=np.int64)
    for i, post in enumerate(posts):
        for label in post.labels or []:
            intents[i, INTENTS.index(label)] = 1
    return LabelArrays(
        texts=[post.text for post in posts],
        langs=[post.lang for post in posts],
        parents=[post.parent_text for post in posts],
        intents=intents,
        intent_known=np.array([post.labels is not None for post in posts]),
        sentiment=np.array(
            [SENTIMENTS.index(p.sentiment) if p.sentiment else IGNORE for p in posts],
            dtype=np.int64,
        ),
        weights=None if weights is None else np.asarray(weights, dtype=float),
    )


def concat(parts: Sequence[LabelArrays]) -> LabelArrays:
    """The posts of ``parts``, one after the other."""
    if len(parts) == 1:
        return parts[0]
    weighted = any(part.weights is not None for part in parts)
    return LabelArrays(
        texts=[text for part in parts for text in part.texts],
        langs=[lang for part in parts for lang in part.langs],
        parents=[parent for part in parts for parent in part.parents],
        intents=np.concatenate([part.intents for part in parts]),
        intent_known=np.concatenate([part.intent_known for part in parts]),
        sentiment=np.concatenate([part.sentiment for part in parts]),
        weights=np.concatenate([part.post_weights() for part in parts]) if weighted else None,
    )
