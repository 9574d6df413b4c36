"""The labelled-post record: one schema for the data files, training, serving and reviewers."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.language import LanguageCode


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace only")
    return value


# Text with something in it besides whitespace (a post's text, an id, a policy's reason).
NonBlank = Annotated[str, AfterValidator(not_blank)]
# The same rule as a JSON Schema pattern, for the API's clients and fuzzers: one character
# that str.isspace() calls no space (regex engines other than Python's leave \x1c-\x1f
# out of \s, so they are named).
NON_BLANK_PATTERN = r"[^\s\x1c-\x1f]"
PostText = NonBlank


class Post(BaseModel):
    """One labelled post, as stored one per line in the JSONL data files.

    Either ``labels`` or ``sentiment`` may be missing (a post labelled only for
    sentiment still trains the sentiment head), but not both. ``labels == []`` means
    "labelled: no intent", which is different from ``labels`` missing.
    """

    # Unknown keys are refused so that a typo ("label", "sentimet") cannot silently drop a label.
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonBlank
    text: PostText
    lang: str
    labels: list[str] | None = None
    sentiment: str | None = None
    annotator: str | None = None
    labelled_at: datetime | None = None
    source: str | None = None
    # The post this one replies to, for thread replies: its labels are what the reply
    # means under that parent.
    parent_text: PostText | None = None
    # Who wrote the post (writer or writer-brief id): splits keep each writer in one split.
    writer: str | None = None

    @field_validator("lang")
    @classmethod
    def _known_lang(cls, value: str) -> str:
        if value not in LANGS:
            raise ValueError(f"{value!r} is not a labelled language; use one of {', '.join(LANGS)}")
        return value

    @field_validator("labels")
    @classmethod
    def _known_unique_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [label for label in value if label not in INTENTS]
        if unknown:
            raise ValueError(
                f"unknown intent {', '.join(map(repr, unknown))}; "
                f"expected any of {', '.join(INTENTS)}"
            )
        repeated = sorted({label for label in value if value.count(label) > 1})
        if repeated:
            raise ValueError(f"intent {', '.join(map(repr, repeated))} repeated; list each once")
        return value

    @field_validator("sentiment")
    @classmethod
    def _known_sentiment(cls, value: str | None) -> str | None:
        if value is not None and value not in SENTIMENTS:
            raise ValueError(
                f"unknown sentiment {value!r}; expected one of {', '.join(SENTIMENTS)}"
            )
        return value

    @model_validator(mode="after")
    def _has_some_label(self) -> "Post":
        if self.labels is None and self.sentiment is None:
            raise ValueError("a record needs 'labels', 'sentiment' or both")
        return self


class IncomingPost(BaseModel):
    """A post to classify: only ``text`` is required. Other keys (labels...) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: PostText
    id: str | None = None
    lang: LanguageCode | None = None
    parent_text: str | None = None
