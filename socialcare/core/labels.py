"""The label set, defined once (see ../shared/LABELING.md). Everything imports it from here."""

from typing import Literal, get_args

Intent = Literal["complaint", "question", "factual_error", "humour", "praise"]
Sentiment = Literal["negative", "neutral", "positive"]

# Order matters: it fixes the column order of model heads and of every table we print.
INTENTS: tuple[str, ...] = get_args(Intent)
SENTIMENTS: tuple[str, ...] = get_args(Sentiment)
# The labelled languages: their posts get their own thresholds; others are flagged.
LANGS: tuple[str, ...] = ("sv", "it")
