"""The shipped data reads like what insurers receive: data v2's style targets, measured on
the shipped files themselves, so that they cannot drift silently (see data/README.md)."""

import json
import re
from collections import Counter

import pytest

from socialcare.core import paths
from socialcare.core.labels import LANGS
from socialcare.core.records import load_posts
from socialcare.core.style import load_insurers, opening, profile, words

COMBINATIONS = [
    ("factual_error", "humour"),
    ("complaint", "praise"),
    ("praise", "question"),
    ("complaint", "humour"),
    ("question", "factual_error"),
]
STOCK_OPENINGS = re.compile(r"\s*(eftersom|nu när|siccome|visto che)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def by_lang():
    posts = load_posts([paths.seed_split(name) for name in paths.SPLITS])
    return {lang: [p for p in posts if p.lang == lang] for lang in LANGS}


@pytest.fixture(scope="module")
def profiles(by_lang):
    insurers = load_insurers(paths.INSURERS_FILE)
    return {lang: profile(posts, lang, insurers[lang]) for lang, posts in by_lang.items()}


@pytest.mark.parametrize("lang", LANGS)
def test_style_targets(profiles, lang):
    p = profiles[lang]
    assert p["posts"] >= 2500
    assert p["share_40_words_or_more"] >= 0.20
    assert p["share_10_words_or_fewer"] >= 0.25
    assert p["share_mentions"] >= 0.20
    assert p["share_hashtags"] >= 0.05 and p["share_links"] >= 0.05
    assert p["share_emoji_inside_of_emoji_posts"] >= 0.40
    assert p["share_chat_or_dialect"] >= 0.10
    assert p["share_missing_diacritics"] >= 0.10
    assert p["share_replies"] >= 0.10


@pytest.mark.parametrize("lang", LANGS)
def test_insurers_are_many_and_no_cue(profiles, lang):
    p = profiles[lang]
    assert p["insurers_named"] >= 30
    assert p["top_insurer_share"] <= 0.04
    cues = {key: value for key, value in p.items() if key.startswith("cue_")}
    assert all(0.75 <= value <= 1.33 for value in cues.values()), cues


@pytest.mark.parametrize("lang", LANGS)
def test_label_mix_targets(by_lang, profiles, lang):
    posts = by_lang[lang]
    assert sum(not p.labels for p in posts) / len(posts) >= 0.15
    humour = [p for p in posts if "humour" in p.labels]
    assert sum(p.sentiment == "positive" for p in humour) / len(humour) >= 0.15
    assert profiles[lang]["share_humour_about_kin_or_pets"] <= 0.25
    both = sum({"complaint", "question"} <= set(p.labels) for p in posts)
    assert both / len(posts) >= 0.07
    for pair in COMBINATIONS:
        assert sum(set(pair) <= set(p.labels) for p in posts) >= 20, pair


@pytest.mark.parametrize("lang", LANGS)
def test_no_intent_posts_are_mostly_stories_and_news(by_lang, lang):
    """The census of data/quality/v2/no_intent (each no-intent post's kind, read by a
    labeller blind to everything else) covers exactly the shipped no-intent posts, and at
    least a third of them are anecdotes or shared news, not filler."""
    census = paths.REPO_ROOT / "data" / "quality" / "v2" / "no_intent" / f"kinds-{lang}.ndjson"
    kinds = {}
    for line in census.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        kinds[record["id"]] = record["kind"]
    assert set(kinds) == {p.id for p in by_lang[lang] if not p.labels}
    assert set(kinds.values()) <= {"anecdote", "news", "remark", "spam", "off_topic"}
    stories = sum(kind in ("anecdote", "news") for kind in kinds.values())
    assert stories / len(kinds) >= 1 / 3


@pytest.mark.parametrize("lang", LANGS)
def test_openings_vary(by_lang, lang):
    posts = by_lang[lang]
    openings = Counter(opening(p.text) for p in posts if len(words(p.text)) >= 3)
    common = {text: n for text, n in openings.items() if n > 0.01 * len(posts)}
    assert common == {}
    assert sum(bool(STOCK_OPENINGS.match(p.text)) for p in posts) <= 0.01 * len(posts)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    tokens = [word.lower() for word in words(text)]
    return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}


def test_no_guide_example_or_close_paraphrase(by_lang):
    """No post holds half or more of an example sentence of LABELING.md: of its word
    trigrams, at least half and at least two (one shared trigram of a four-word example,
    "när får jag", is ordinary Swedish, not a copy)."""
    guide = (paths.REPO_ROOT.parent / "shared" / "LABELING.md").read_text(encoding="utf-8")
    examples = [e for e in re.findall(r'"([^"\n]{12,80})"', guide) if len(words(e)) >= 4]
    assert len(examples) >= 8  # the guide's quoted examples were found
    copies = []
    for posts in by_lang.values():
        for post in posts:
            grams = _trigrams(post.text)
            for example in examples:
                wanted = _trigrams(example)
                if len(grams & wanted) >= max(2, 0.5 * len(wanted)):
                    copies.append((post.id, example))
    assert copies == []
