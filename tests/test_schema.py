import pytest
from pydantic import ValidationError

from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.schema import Post
from tests.conftest import post


def test_full_record_round_trips():
    record = post(annotator="a", labelled_at="2026-11-20T10:00:00Z", source="facebook")
    parsed = Post.model_validate(record)
    assert parsed.labels == ["question"]
    assert parsed.labelled_at.year == 2026
    assert Post.model_validate_json(parsed.model_dump_json()) == parsed


@pytest.mark.parametrize("missing", ["labels", "sentiment"])
def test_one_of_labels_or_sentiment_may_be_missing(missing):
    parsed = Post.model_validate(post(**{missing: None}))
    assert getattr(parsed, missing) is None


def test_record_with_neither_labels_nor_sentiment_is_invalid():
    with pytest.raises(ValidationError, match="needs 'labels', 'sentiment' or both"):
        Post.model_validate(post(labels=None, sentiment=None))


def test_empty_label_list_means_no_intent():
    assert Post.model_validate(post(labels=[])).labels == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"labels": ["complain"]}, "unknown intent 'complain'"),
        ({"labels": ["praise", "praise"]}, "intent 'praise' repeated"),
        ({"sentiment": "angry"}, "unknown sentiment 'angry'"),
        ({"lang": "en"}, "'en' is not a labelled language"),
        ({"text": "   "}, "must not be empty or whitespace only"),
        ({"label": ["praise"]}, "Extra inputs are not permitted"),
        ({"labels": "praise"}, "valid list"),
    ],
)
def test_bad_fields_are_refused_with_a_clear_message(fields, message):
    with pytest.raises(ValidationError, match=message):
        Post.model_validate(post(**fields))


def test_label_set_matches_the_labelling_guide():
    assert INTENTS == ("complaint", "question", "factual_error", "humour", "praise")
    assert SENTIMENTS == ("negative", "neutral", "positive")
