"""The HTTP contract of `POST /predict`: request, response and error models.

Shared by the service, its OpenAPI document and the typed client, so all three always
agree. The request limits are part of the schema: pydantic checks them before any of our
code runs (serving.contract), and the OpenAPI document states them (minLength,
maxLength, pattern, maxItems, enums) so that generated clients know them too.
``PredictRequest`` has the default limits (socialcare.core.limits; the client's); the
service's schema is ``request_model(settings.max_posts, settings.max_text_chars)``.

Unknown fields are ignored, in a post and at the top level: listening tools send their
own (author, likes...) and must not break when they add one.
"""

from datetime import datetime
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, create_model

from serving.policy import Action
from socialcare.core.answers import Answer, PostAnswer
from socialcare.core.language import LanguageCode
from socialcare.core.limits import MAX_POSTS, MAX_TEXT_CHARS
from socialcare.core.schema import NON_BLANK_PATTERN, IncomingPost, not_blank

# Error messages must not echo post text into logs or responses (privacy).
_PRIVATE = ConfigDict(hide_input_in_errors=True)


def text_field(max_chars: int, description: str) -> Any:
    """A post's text at this limit, as pydantic checks it and as the OpenAPI document says.

    The pattern is the "not blank" rule of every post text (PostText); it comes first
    because pydantic leaves constraints after a validator out of the JSON Schema."""
    limits = Field(
        min_length=1, max_length=max_chars, pattern=NON_BLANK_PATTERN, description=description
    )
    return Annotated[str, limits, AfterValidator(not_blank)]


TEXT = "the post's text: at least one character that is not a space"
PARENT_TEXT = "the post this one replies to (same limits as text)"


class ApiPost(IncomingPost):
    """One post to classify. Only ``text`` is required; unknown fields are ignored."""

    model_config = _PRIVATE
    text: text_field(MAX_TEXT_CHARS, TEXT)
    id: str | None = Field(None, examples=["fb-123"])
    lang: LanguageCode | None = Field(
        None, description="ISO 639-1 code, lower case; detected when absent", examples=["sv"]
    )
    created_at: AwareDatetime | None = Field(
        None,
        description="when the post was published, RFC 3339 with its offset (due times count "
        "from it)",
    )
    channel: str | None = Field(None, examples=["facebook"])
    parent_text: text_field(MAX_TEXT_CHARS, PARENT_TEXT) | None = None


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
    post = create_model(
        "ApiPost",
        __base__=ApiPost,
        text=(text_field(max_text_chars, TEXT), ...),
        parent_text=(text_field(max_text_chars, PARENT_TEXT) | None, None),
    )
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


class FieldError(BaseModel):
    """What is wrong with one part of a request."""

    loc: list[str | int] = Field(
        description='path to the field at fault, e.g. ["posts", 0, "text"]; [] for the whole body'
    )
    msg: str = Field(description="what is wrong and how to fix it (never the value itself)")
    type: str = Field(description="machine-readable kind, e.g. string_too_long, json_invalid")


class ApiError(BaseModel):
    """The body of every error the service answers (4xx, and 503 when it cannot answer now)."""

    error: str = Field(description="what went wrong, in one line")
    detail: list[FieldError] = Field(
        default_factory=list, description="one entry per problem in the request (may be empty)"
    )
