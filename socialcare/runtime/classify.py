"""The one path from posts to answers, for `POST /predict`, `socialcare predict` and the
reviewers' suggestions alike, so that the same post gets the same answer everywhere.

A post without ``lang`` has it detected; the thresholds are those of the post's language
(sv, it), else the language-independent ones (other or undetermined languages); a reply
is read with the post it answers (``parent_text``).
"""

from collections.abc import Sequence

import numpy as np

from socialcare.core.answers import Answer, SentimentResult
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.language import detect_languages
from socialcare.core.schema import IncomingPost
from socialcare.runtime.predictor import Predictions, Predictor


def post_languages(posts: Sequence[IncomingPost]) -> list[str | None]:
    """Each post's language: as given, else detected (None when it cannot be told)."""
    langs = [post.lang for post in posts]
    missing = [i for i, lang in enumerate(langs) if lang is None]
    if missing:
        detected = detect_languages([posts[i].text for i in missing])
        for i, lang in zip(missing, detected, strict=True):
            langs[i] = lang
    return langs


def classify_posts(predictor: Predictor, posts: Sequence[IncomingPost]) -> list[Answer]:
    """The model's answers for ``posts``, in their order."""
    if not posts:
        return []
    langs = post_languages(posts)
    # Thresholds exist for the labelled languages only; others get the "any" ones.
    model_langs = [lang if lang in LANGS else None for lang in langs]
    predictions = predictor.predict(
        [post.text for post in posts], model_langs, [post.parent_text for post in posts]
    )
    return [
        answer(predictions, i, post.id, lang)
        for i, (post, lang) in enumerate(zip(posts, langs, strict=True))
    ]


def answer(predictions: Predictions, i: int, post_id: str | None, lang: str | None) -> Answer:
    """Row ``i`` of ``predictions`` as an Answer."""
    scores = dict(zip(SENTIMENTS, map(float, predictions.sentiment_prob[i]), strict=True))
    return Answer(
        id=post_id,
        lang=lang,
        labels=[name for name, on in zip(INTENTS, predictions.intent_pred[i], strict=True) if on],
        intents=dict(zip(INTENTS, map(float, predictions.intent_prob[i]), strict=True)),
        sentiment=SentimentResult(
            label=SENTIMENTS[int(np.argmax(predictions.sentiment_prob[i]))], scores=scores
        ),
        thresholds=dict(zip(INTENTS, map(float, predictions.thresholds[i]), strict=True)),
        truncated=bool(predictions.truncated[i]),
    )
