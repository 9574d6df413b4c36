"""The style profile on posts whose answers can be counted by hand."""

import pytest

from socialcare.core.schema import Post
from socialcare.core.style import Insurer, opening, profile, profiles_table


def post(i: int, text: str, labels=(), **fields) -> Post:
    return Post(
        id=f"p{i}", text=text, lang="sv", labels=list(labels), sentiment="neutral", **fields
    )


INSURERS = [
    Insurer("Pling Försäkring", ("Pling", "@plingforsakring")),
    Insurer("Knopp", ("Knopp",)),
]
POSTS = [
    post(1, "Pling har höjt priset igen, varför?", ["complaint", "question"]),
    post(2, "tack @plingforsakring 🙏 för hjälpen idag", ["praise"]),
    post(3, "asså vad e det här för väder #storm https://example.se/x"),
    post(4, " ".join(["ord"] * 45) + " HALLÅ", ["complaint"]),
    post(5, "samma här", ["complaint"], parent_text="Pling svarar aldrig"),
    post(6, "forsakring pa bilen kostar mer nu ✨", ["complaint"]),
]


def test_profile_counts_what_a_reader_would():
    p = profile(POSTS, "sv", INSURERS)
    assert p["posts"] == 6
    assert p["share_40_words_or_more"] == pytest.approx(1 / 6)
    assert p["share_10_words_or_fewer"] == pytest.approx(5 / 6)
    assert p["share_mentions"] == pytest.approx(1 / 6)
    assert p["share_hashtags"] == p["share_links"] == pytest.approx(1 / 6)
    assert p["share_emoji"] == pytest.approx(2 / 6)
    # "🙏" is followed by words, "✨" closes its post.
    assert p["share_emoji_inside_of_emoji_posts"] == pytest.approx(1 / 2)
    assert p["share_chat_or_dialect"] == pytest.approx(1 / 6)  # asså, e
    assert p["share_missing_diacritics"] == pytest.approx(1 / 6)  # forsakring, pa
    assert p["share_all_caps_word"] == pytest.approx(1 / 6)  # HALLÅ
    assert p["share_replies"] == pytest.approx(1 / 6)
    # Pling is named in posts 1 and 2 (by name and by handle); the parent does not count.
    assert p["insurers_named"] == 1 and p["top_insurer_share"] == pytest.approx(2 / 6)
    # complaint: 4 of 6 posts overall, 1 of the 2 naming an insurer: (1/2) / (4/6).
    assert p["cue_complaint"] == pytest.approx(0.75)
    assert p["cue_praise"] == pytest.approx((1 / 2) / (1 / 6))
    assert p["cue_humour"] is None


def test_openings_and_the_table():
    assert opening("Hej! Jag undrar, när kommer pengarna?") == "hej jag undrar"
    same = [post(i, f"Hej jag undrar om nummer {i}") for i in range(3)] + [post(9, "Annat här nu")]
    p = profile(same, "sv")
    assert p["share_shared_opening"] == pytest.approx(3 / 4)
    assert p["top_opening_share"] == pytest.approx(3 / 4)
    table = profiles_table({"ours sv": p})
    assert "| share_shared_opening | 75.0% |" in table
    assert "insurers_named" not in table  # no insurer list, no insurer rows
