"""The HTTP contract of `POST /predict`: request and response models.

Shared by the service and the typed client, so both always agree. The request limits are
part of the schema because pydantic checks them before any of our code runs, which is
what turns every bad request into a 400 naming the field. ``PredictRequest`` has the
default limits (socialcare.core.limits; the client's); the service's schema is
``request_model(settings.max_posts, settings.max_text_chars)``.
"""

from datetime import datetime
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from serving.policy import Action
from socialcare.core.answers import Answer, PostAnswer
from socialcare.core.limits import MAX_POSTS, MAX_TEXT_CHARS
from socialcare.core.schema import IncomingPost, PostText

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


def _posts(max_posts: int) -> Any:
    return Field(
        min_length=1, max_length=max_posts, examples=[[EXAMPLE_POST.model_dump(mode="json")]]
    )


class PredictRequest(BaseModel):
    model_config = _PRIVATE
    posts: list[ApiPost] = _posts(MAX_POSTS)


@cache
def request_model(max_posts: int, max_text_chars: int) -> type[PredictRequest]:
    """``PredictRequest`` at these limits (the service's settings)."""
    text = Annotated[PostText, Field(max_length=max_text_chars)]
    post = create_model("ApiPost", __base__=ApiPost, text=(text, ...))
    return create_model(
        "PredictRequest", __base__=PredictRequest, posts=(list[post], _posts(max_posts))
    )


class PostPrediction(PostAnswer):
    """The model's answer for one post and what to do about it."""

    action: Action
    needs_review: bool
    review_reasons: list[str] = Field(
        default_factory=list, description="why a reviewer should look at it"
    )

    @classmethod
    def of(cls, answer: Answer, action: Action, review_reasons: list[str]) -> "PostPrediction":
        """``answer`` with the action to take and the reasons to review it (if any)."""
        return cls(
            **answer.public().model_dump(),
            action=action,
            needs_review=bool(review_reasons),
            review_reasons=review_reasons,
        )


class PredictResponse(BaseModel):
    model: str = Field(description="registered model tag, name:version")
    policy_version: str
    predictions: list[PostPrediction] = Field(description="one per input post, in input order")
