"""Posts to label arrays (with masks for missing labels), shared by every model kind."""

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

    def take(self, rows: np.ndarray) -> "LabelArrays":
        """The posts at ``rows`` (a fold, a language)."""
        return LabelArrays(
            texts=[self.texts[i] for i in rows],
            langs=[self.langs[i] for i in rows],
            parents=[self.parents[i] for i in rows],
            intents=self.intents[rows],
            intent_known=self.intent_known[rows],
            sentiment=self.sentiment[rows],
        )


def encode_posts(posts: list[Post]) -> LabelArrays:
    """Label arrays of posts, in INTENTS/SENTIMENTS column order."""
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
    )
