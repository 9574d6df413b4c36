"""Label quality: alpha on hand-computed cases, consensus and ties, cleanlab on planted errors."""

import numpy as np
import pytest

from socialcare.core.agreement import group_agreement, krippendorff_alpha
from socialcare.core.arrays import encode_posts
from socialcare.core.label_store import append_label, make_label, round_path
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.schema import Post
from socialcare.review.label_quality import (
    OutOfFold,
    agreement_frame,
    consensus,
    label_issues,
    load_annotations,
    out_of_fold_probabilities,
)


def note(post_id, annotator, labels, sentiment, lang="it"):
    return Post(
        id=post_id,
        text=f"post {post_id}",
        lang=lang,
        labels=labels,
        sentiment=sentiment,
        annotator=annotator,
    )


# Three annotators a, b, c; c skipped post 2.
TOY = [
    note("1", "a", ["complaint"], "negative"),
    note("1", "b", ["complaint"], "negative"),
    note("1", "c", [], "negative"),
    note("2", "a", ["complaint"], "negative"),
    note("2", "b", ["complaint"], "positive"),
    note("3", "a", [], "positive"),
    note("3", "b", [], "positive"),
    note("3", "c", [], "neutral"),
]


def test_alpha_on_a_hand_computed_case():
    rows = {row.label: row for row in group_agreement(TOY)}
    # Coincidences, each post's ordered pairs weighted 1 / (annotators - 1):
    # complaint: post 1 (yes, yes, no) adds yes-yes 1, yes-no 1, no-yes 1; post 2 (yes, yes)
    # adds yes-yes 2; post 3 (no, no, no) adds no-no 3. So n_yes = n_no = 4, n = 8,
    # D_o = 2 / 8, D_e = (4*4 + 4*4) / (8*7) = 32/56, alpha = 1 - (2/8) / (32/56) = 9/16.
    assert rows["complaint"].alpha == pytest.approx(9 / 16)
    assert rows["complaint"].observed == pytest.approx(6 / 8)
    # sentiment: post 1 (neg x3) adds neg-neg 3; post 2 (neg, pos) neg-pos 1, pos-neg 1;
    # post 3 (pos, pos, neu) pos-pos 1, pos-neu 1, neu-pos 1. n_neg 4, n_pos 3, n_neu 1,
    # n = 8; D_o = 4/8, D_e = (64 - 16 - 9 - 1) / 56 = 38/56, alpha = 1 - 28/38 = 5/19.
    assert rows["sentiment"].alpha == pytest.approx(5 / 19)
    assert rows["sentiment"].observed == pytest.approx(4 / 8)
    assert rows["sentiment"].posts == 3
    assert rows["sentiment"].annotations == 8
    assert rows["praise"].alpha == 1.0  # nobody ever gave it


def test_alpha_matches_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal data:
    # 4 observers, 12 units, missing values; the paper's result is alpha = 0.743.
    observers = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units = [
        [v for v in unit if v != "."] for unit in zip(*(o.split() for o in observers), strict=True)
    ]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_alpha_with_two_annotators_and_no_gaps_is_near_kappa():
    # With two coders and no gaps alpha is Scott's pi corrected for sample size:
    # alpha = 1 - (n - 1)/n * (1 - pi). Here pi: observed 3/4, pooled yes share 3/8,
    # expected 1 - 2*(3/8)*(5/8) = 34/64, pi = (48/64 - 34/64)/(30/64) = 7/15.
    a, b = [True, True, False, False], [True, False, False, False]
    alpha = krippendorff_alpha(list(zip(a, b, strict=True)))
    assert alpha == pytest.approx(1 - 7 / 8 * (1 - 7 / 15))


def test_agreement_needs_a_post_labelled_twice():
    with pytest.raises(ValueError, match="more than once"):
        group_agreement([note("1", "a", [], "neutral"), note("2", "b", [], "neutral")])
    with pytest.raises(ValueError, match="two or more"):
        krippendorff_alpha([["x"], []])


def test_agreement_frame_has_every_label_overall_and_per_language():
    toy_sv = [note(f"s{p.id}", p.annotator, p.labels, p.sentiment, lang="sv") for p in TOY[:5]]
    frame = agreement_frame(TOY + toy_sv)
    assert set(frame["lang"]) == {"all", "sv", "it"}
    italian = frame[(frame["lang"] == "it") & (frame["label"] == "sentiment")]
    assert italian["alpha"].item() == pytest.approx(5 / 19)
    assert len(frame[frame["lang"] == "all"]) == 6  # five intents and sentiment


def test_a_language_without_double_labels_is_left_out_of_the_table():
    single_sv = [note("s1", "a", [], "neutral", lang="sv")]
    frame = agreement_frame(TOY + single_sv)
    assert set(frame["lang"]) == {"all", "it"}


def test_a_corrected_label_counts_once_with_its_latest_value(tmp_path):
    def save(round_no, post_id, annotator, labels, sentiment):
        record = make_label(
            post_id, f"post {post_id}", "sv", labels, sentiment, annotator, "review-queue"
        )
        append_label(round_path(round_no, tmp_path), record)

    save(1, "p1", "anna", ["praise"], "positive")
    save(1, "p1", "bo", [], "neutral")
    save(2, "p1", "anna", [], "neutral")  # anna corrects herself: now she agrees with bo
    annotations = load_annotations([tmp_path])
    assert len(annotations) == 2
    rows = {row.label: row for row in group_agreement(annotations)}
    assert rows["sentiment"].observed == 1.0
    assert rows["praise"].posts == 1 and rows["praise"].annotations == 2


def test_consensus_is_the_majority_and_ties_are_flagged():
    results = {c.id: c for c in consensus(TOY)}
    assert results["1"].labels == ("complaint",)  # 2 of 3
    assert results["1"].sentiment == "negative"
    assert results["1"].tied == ()
    assert not results["1"].unanimous
    assert results["2"].labels == ("complaint",)
    assert results["2"].sentiment is None  # negative vs positive, one each
    assert results["2"].tied == ("sentiment",)
    assert results["3"].sentiment == "positive"  # 2 of 3
    split = consensus([note("9", "a", ["humour"], "neutral"), note("9", "b", [], "neutral")])
    assert split[0].labels == () and split[0].tied == ("humour",)
    alone = consensus([note("8", "a", ["question"], "neutral")])
    assert alone[0].unanimous and alone[0].labels == ("question",)


def _synthetic_out_of_fold(n: int, planted: set[int]) -> OutOfFold:
    """Posts whose out-of-fold probabilities back their labels, except the planted ones."""
    rng = np.random.default_rng(0)
    posts, sentiment_prob, intent_prob = [], [], []
    for i in range(n):
        sentiment = SENTIMENTS[i % 3]
        has_question = i % 4 == 0
        probs = np.full(3, 0.1)
        probs[i % 3] = 0.8
        question = 0.8 if has_question else 0.1
        if i in planted:  # the model is surer of another sentiment, and of the other answer
            probs = np.full(3, 0.02)
            probs[(i + 1) % 3] = 0.96
            question = 0.02 if has_question else 0.96
        noise = rng.uniform(0.0, 0.04, 3)
        sentiment_prob.append((probs + noise) / (probs + noise).sum())
        row = np.full(len(INTENTS), 0.05) + rng.uniform(0.0, 0.04, len(INTENTS))
        row[INTENTS.index("question")] = question
        intent_prob.append(row)
        labels = ["question"] if has_question else []
        posts.append(note(f"p{i:03d}", "a", labels, sentiment))
    return OutOfFold(
        posts, encode_posts(posts), np.array(intent_prob), np.array(sentiment_prob), folds=5
    )


def test_label_issues_lists_labels_that_contradict_confident_predictions():
    planted = {3, 17, 42, 77, 101, 150}
    oof = _synthetic_out_of_fold(180, planted)
    issues = label_issues(oof)
    planted_ids = {f"p{i:03d}" for i in planted}
    assert set(issues.loc[issues["head"] == "sentiment", "id"]) == planted_ids
    assert set(issues.loc[issues["head"] == "question", "id"]) == planted_ids
    assert set(issues["head"]) == {"sentiment", "question"}
    row = issues[(issues["id"] == "p042") & (issues["head"] == "sentiment")].iloc[0]
    # p042 is labelled negative (42 % 3 == 0); the model is sure it is neutral.
    assert (row["given"], row["suggested"]) == ("negative", "neutral")
    assert row["model_prob"] > 0.8 and row["quality"] < 0.1
    row = issues[(issues["id"] == "p003") & (issues["head"] == "question")].iloc[0]
    assert (row["given"], row["suggested"]) == ("no", "yes")
    assert issues["quality"].is_monotonic_increasing  # most suspect first


class _Memory:
    """Stands in for a fitted baseline pipeline: says "seen" for its training texts only."""

    def __init__(self, texts):
        self.seen = set(texts)

    def decision_function(self, texts):
        return np.array([[5.0 if t in self.seen else -5.0] * len(INTENTS) for t in texts])

    def predict_log_proba(self, texts):
        seen, unseen = [0.98, 0.01, 0.01], [0.01, 0.01, 0.98]
        return np.log([seen if t in self.seen else unseen for t in texts])


def test_out_of_fold_probabilities_come_from_models_that_never_saw_the_post(monkeypatch):
    fits = []

    def fit(train, seed):
        fits.append(train)
        memory = _Memory(train.texts)
        return {"intents": memory, "sentiment": memory}

    monkeypatch.setattr("training.baseline.fit_baseline", fit)
    posts = [
        note(f"{lang}{i}", "a", [], SENTIMENTS[i % 3], lang=lang)
        for lang in ("sv", "it")
        for i in range(15)
    ]
    oof = out_of_fold_probabilities(posts, folds=3)
    assert len(fits) == 3
    # Every post was scored by a model that had not seen it...
    assert np.all(oof.intent_prob < 0.01)
    assert np.all(oof.sentiment_prob.argmax(axis=1) == 2)
    # ...and trained the other two, each of which saw every sentiment in both languages.
    appearances = [sum(p.text in fold.texts for fold in fits) for p in posts]
    assert appearances == [2] * len(posts)
    for fold in fits:
        assert {(lang, int(s)) for lang, s in zip(fold.langs, fold.sentiment, strict=True)} == {
            (lang, s) for lang in ("sv", "it") for s in range(3)
        }


def test_out_of_fold_needs_every_sentiment_in_every_fold():
    posts = [note(str(i), "a", [], "neutral") for i in range(6)]
    posts += [note("p", "a", [], "positive"), note("n", "a", [], "negative")]
    with pytest.raises(ValueError, match="fewer than 3 posts"):
        out_of_fold_probabilities(posts, folds=3)
