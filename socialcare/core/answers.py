"""What the model says about a post: one record, whoever asks (API, CLI, notebooks)."""

from pydantic import BaseModel, Field

from socialcare.core.labels import LANGS, Intent, Sentiment
from socialcare.core.language import LanguageCode


class SentimentResult(BaseModel):
    label: Sentiment
    scores: dict[Sentiment, float]


class PostAnswer(BaseModel):
    """The model's answer for one post as every client sees it: the intents decided, their
    calibrated probabilities, and the sentiment."""

    id: str | None = Field(description="the post's id, as given")
    lang: LanguageCode | None = Field(
        description="ISO 639-1 code, given or detected (null when undetermined)"
    )
    labels: list[Intent]
    intents: dict[Intent, float]
    sentiment: SentimentResult


class Answer(PostAnswer):
    """A PostAnswer with what decided it: the thresholds of the post's language, and
    whether the text was longer than the model reads."""

    thresholds: dict[Intent, float]
    truncated: bool

    def public(self) -> PostAnswer:
        return PostAnswer.model_validate(self.model_dump(include=set(PostAnswer.model_fields)))

    def other_review_reasons(self) -> list[str]:
        """Why a reviewer should see the post, besides the model's uncertainty (which the
        response policy's review band decides)."""
        reasons = []
        if self.lang is not None and self.lang not in LANGS:
            reasons.append(f"language: {self.lang} (the model knows {', '.join(LANGS)})")
        if self.truncated:
            reasons.append("truncated: the text is longer than the model reads")
        return reasons
