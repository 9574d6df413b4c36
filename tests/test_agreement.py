import pytest

from socialcare.core.agreement import pairwise_agreement
from socialcare.core.schema import Post


def make(id, labels, sentiment):
    return Post(id=id, text=f"post {id}", lang="it", labels=labels, sentiment=sentiment)


def test_kappa_on_a_hand_computed_case():
    # complaint: A = [1,1,0,0], B = [1,0,0,0] -> observed 3/4, expected (2/4*1/4 + 2/4*3/4) = 1/2,
    # kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5
    # sentiment: A = [neg, neg, pos, neu], B = [neg, neu, pos, neu] -> observed 3/4,
    # expected = (2*1 + 1*2 + 1*1)/16 = 5/16, kappa = (12/16 - 5/16)/(11/16) = 7/11
    first = [
        make("1", ["complaint"], "negative"),
        make("2", ["complaint"], "negative"),
        make("3", [], "positive"),
        make("4", [], "neutral"),
    ]
    second = [
        make("1", ["complaint"], "negative"),
        make("2", [], "neutral"),
        make("3", [], "positive"),
        make("4", [], "neutral"),
    ]
    rows = {row.label: row for row in pairwise_agreement(first, second)}
    assert rows["complaint"].kappa == pytest.approx(0.5)
    assert rows["complaint"].observed == pytest.approx(0.75)
    assert rows["sentiment"].kappa == pytest.approx(7 / 11)
    assert rows["praise"].kappa == 1.0  # neither pass ever used it
    assert rows["sentiment"].n == 4


def test_posts_are_matched_by_id_not_position():
    first = [make("1", ["praise"], "positive"), make("2", [], "neutral")]
    second = [make("2", [], "neutral"), make("1", ["praise"], "positive")]
    assert all(row.kappa == 1.0 for row in pairwise_agreement(first, second))


def test_no_shared_ids_is_an_error():
    with pytest.raises(ValueError, match="share no post id"):
        pairwise_agreement([make("1", [], "neutral")], [make("2", [], "neutral")])
