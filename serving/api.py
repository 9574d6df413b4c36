"""The HTTP contract of `POST /predict`: request and response models.

Shared by the service and the typed client, so both always agree. Limits come from
the environment (set by `socialcare serve`) because pydantic checks them before any
of our code runs, which is what turns every bad request into a 400 naming the field.
"""

import os
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from serving.policy import Action
from socialcare.core.labels import Intent, Sentiment
from socialcare.core.schema import IncomingPost, PostText

MAX_POSTS = int(os.environ.get("SOCIALCARE_MAX_POSTS", "256"))
MAX_TEXT_CHARS = int(os.environ.get("SOCIALCARE_MAX_TEXT_CHARS", "5000"))

# Error messages must not echo post text into logs or responses (privacy).
_PRIVATE = ConfigDict(hide_input_in_errors=True)


class ApiPost(IncomingPost):
    """One post to classify. Only ``text`` is required; unknown keys are ignored."""

    model_config = _PRIVATE
    text: Annotated[PostText, Field(max_length=MAX_TEXT_CHARS)]
    id: str | None = Field(None, examples=["fb-123"])
    lang: str | None = Field(
        None, description="ISO 639-1 code; detected when absent", examples=["sv"]
    )
    created_at: datetime | None = Field(
        None, description="when the post was published (due times count from it)"
    )
    channel: str | None = Field(None, examples=["facebook"])
    parent_text: str | None = Field(None, description="the post this one replies to")


EXAMPLE_POST = ApiPost(
    text="Tre veckor sedan jag anmälde skadan och ingen har hört av sig. Vad händer?",
    id="fb-123",
    lang="sv",
    created_at=datetime.fromisoformat("2026-11-20T10:00:00+00:00"),
    channel="facebook",
)


class PredictRequest(BaseModel):
    model_config = _PRIVATE
    posts: list[ApiPost] = Field(
        min_length=1, max_length=MAX_POSTS, examples=[[EXAMPLE_POST.model_dump(mode="json")]]
    )


class SentimentResult(BaseModel):
    label: Sentiment
    scores: dict[Sentiment, float]


class PostPrediction(BaseModel):
    id: str | None
    lang: str | None = Field(description="given, or detected (null when undetermined)")
    labels: list[Intent]
    intents: dict[Intent, float]
    sentiment: SentimentResult
    action: Action
    needs_review: bool
    review_reasons: list[str] = Field(
        default_factory=list, description="why a reviewer should look at it"
    )


class PredictResponse(BaseModel):
    model: str = Field(description="registered model tag, name:version")
    policy_version: str
    predictions: list[PostPrediction] = Field(description="one per input post, in input order")
