"""The shipped seed data: valid, covered as LABELING.md and the data card promise."""

import re
from collections import Counter

import pytest

from socialcare.core import paths
from socialcare.core.agreement import agreement_table
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.records import load_posts, validate
from socialcare.core.stats import counts_table
from socialcare.core.text import post_key


@pytest.fixture(scope="module")
def splits():
    return {name: load_posts([paths.seed_split(name)]) for name in paths.SPLITS}


@pytest.fixture(scope="module")
def posts(splits):
    return [post for split in splits.values() for post in split]


def test_all_shipped_data_validates():
    count, problems = validate([paths.DATA_DIR])
    assert problems == []
    assert count >= 5000


def test_no_text_in_two_splits(splits):
    seen: dict[str, str] = {}
    for name, split in splits.items():
        for post in split:
            other = seen.setdefault(post_key(post.text, post.parent_text), name)
            assert other == name, f"{post.id} is in {name} and {other}"


def test_split_proportions_per_language(splits):
    for lang in LANGS:
        sizes = {name: sum(p.lang == lang for p in split) for name, split in splits.items()}
        total = sum(sizes.values())
        assert total >= 2500
        assert sizes["train"] / total == pytest.approx(0.70, abs=0.02)
        assert sizes["validation"] / total == pytest.approx(0.15, abs=0.02)


@pytest.mark.parametrize("lang", LANGS)
def test_label_coverage(posts, lang):
    mine = [p for p in posts if p.lang == lang]
    intents = Counter(label for p in mine for label in p.labels)
    assert all(intents[intent] >= 150 for intent in INTENTS), intents
    multi = sum(len(p.labels) >= 2 for p in mine) / len(mine)
    assert 0.15 <= multi <= 0.25  # the no-intent share is a style target: test_seed_style
    sentiments = Counter(p.sentiment for p in mine)
    assert all(sentiments[s] / len(mine) >= 0.2 for s in SENTIMENTS), sentiments


@pytest.mark.parametrize("split", paths.SPLITS)
def test_every_label_in_every_split_and_language(splits, split):
    for lang in LANGS:
        mine = [p for p in splits[split] if p.lang == lang]
        intents = Counter(label for p in mine for label in p.labels)
        assert all(intents[intent] >= 20 for intent in INTENTS), (split, lang, intents)


def test_each_writer_in_one_split(splits):
    """Validation and test are made of writers (v2: writer briefs) that train never saw."""
    seen: dict[str, str] = {}
    for name, split in splits.items():
        for post in split:
            assert post.writer, f"{post.id} has no writer"
            other = seen.setdefault(post.writer, name)
            assert other == name, f"writer {post.writer} is in {name} and {other}"
    held_out = {p.writer for name in ("validation", "test") for p in splits[name]}
    assert not any(writer.startswith("writer-") for writer in held_out)  # v1: train only


def _card_block(name: str) -> str:
    card = (paths.DATA_DIR / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", card, re.S)
    assert match, f"data card has no {name} block"
    return match.group(1)


def test_data_card_counts_match_the_files(splits):
    assert _card_block("counts") == counts_table(splits)


def test_data_card_agreement_comes_from_the_two_passes():
    first = load_posts(paths.FIRST_PASSES)
    second = load_posts(paths.SECOND_PASSES)
    assert {p.annotator for p in first}.isdisjoint({p.annotator for p in second})
    assert all(sum(p.lang == lang for p in second) >= 150 for lang in LANGS)
    assert _card_block("agreement") == agreement_table(first, second)


@pytest.mark.skipif(not paths.PUBLIC_DATA_DIR.is_dir(), reason="no ../shared/data/public here")
def test_data_card_style_profile_comes_from_the_files():
    from socialcare.cli.data import style_table

    expected = style_table([paths.SEED_DIR], paths.PUBLIC_DATA_DIR, paths.INSURERS_FILE)
    assert _card_block("style") == expected
