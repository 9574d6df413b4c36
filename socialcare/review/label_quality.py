"""Label quality: do annotators agree, what do they agree on, and which labels look wrong.

The logic of ``notebooks/label_quality.ipynb``:

- agreement (Krippendorff's alpha, nominal) per intent and for sentiment over posts
  labelled by two or more annotators, overall and per language;
- consensus labels by majority, with ties flagged for an adjudicator;
- likely label errors: cleanlab's confident learning on out-of-fold probabilities of the
  TF-IDF baseline (each post scored by a model that never saw it), for sentiment and for
  each intent, as a review list.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from socialcare.core import paths
from socialcare.core.agreement import group_agreement
from socialcare.core.arrays import LabelArrays, encode_posts, has_sentiment
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.schema import Post

# Krippendorff's guidance: alpha >= 0.8 is reliable, 0.667-0.8 allows tentative conclusions.
RELIABLE_ALPHA, TENTATIVE_ALPHA = 0.8, 0.667


def annotation_files(labelled_dir: Path = paths.LABELLED_DIR) -> list[Path]:
    """The shipped double-labelled passes, then every reviewers' round in ``labelled_dir``."""
    from socialcare.core.label_store import round_files

    return [*paths.FIRST_PASSES, *paths.SECOND_PASSES, *round_files(labelled_dir)]


def load_annotations(files: Iterable[Path]) -> list[Post]:
    """One record per (post, annotator), the latest: a corrected label replaces the first."""
    from socialcare.core.label_store import latest_labels

    return latest_labels(files)


# ---------------------------------------------------------------- agreement


def agreement_frame(annotations: Sequence[Post]) -> pd.DataFrame:
    """Alpha and observed agreement per label (intents, sentiment), overall and per language.

    One row per (label, lang) with the number of posts annotated more than once.
    """
    rows = []
    langs = [lang for lang in LANGS if any(p.lang == lang for p in annotations)]
    for lang in ["all", *langs]:
        subset = [p for p in annotations if lang in ("all", p.lang)]
        ids = Counter(p.id for p in subset)
        if lang != "all" and max(ids.values()) < 2:
            continue  # nobody labelled a post of this language twice: nothing to measure
        for row in group_agreement(subset):
            rows.append(
                {
                    "label": row.label,
                    "lang": lang,
                    "posts": row.posts,
                    "annotations": row.annotations,
                    "alpha": row.alpha,
                    "observed": row.observed,
                }
            )
    return pd.DataFrame(rows)


def plot_agreement(frame: pd.DataFrame):
    """Bars of alpha per label and language, with Krippendorff's reliability lines."""
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(frame["label"]))
    langs = list(dict.fromkeys(frame["lang"]))
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(langs)
    positions = np.arange(len(labels))
    for i, lang in enumerate(langs):
        alpha = frame[frame["lang"] == lang].set_index("label")["alpha"].reindex(labels)
        ax.bar(positions + (i - (len(langs) - 1) / 2) * width, alpha, width, label=lang)
    ax.axhline(RELIABLE_ALPHA, color="green", linestyle="--", label=f"reliable ({RELIABLE_ALPHA})")
    ax.axhline(
        TENTATIVE_ALPHA, color="darkorange", linestyle=":", label=f"tentative ({TENTATIVE_ALPHA})"
    )
    ax.set_xticks(positions, labels)
    ax.set_ylim(min(0.0, float(np.nanmin(frame["alpha"]))), 1.0)
    ax.set_ylabel("Krippendorff's alpha")
    ax.set_title("Agreement between annotators of the same posts")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


# ---------------------------------------------------------------- consensus


@dataclass(frozen=True)
class Consensus:
    """The majority's labels of one post and what its annotators split evenly on.

    ``labels`` holds the intents more than half of the annotators gave; ``sentiment`` the one
    most gave (None when two sentiments tie, or nobody gave one). ``tied`` names each intent
    (and "sentiment") on which the annotators split evenly: an adjudicator must decide.
    """

    id: str
    lang: str
    text: str
    annotators: tuple[str, ...]
    labels: tuple[str, ...] | None
    sentiment: str | None
    tied: tuple[str, ...]
    unanimous: bool


def _consensus(group: list[Post]) -> Consensus:
    with_intents = [p.labels for p in group if p.labels is not None]
    labels, tied = None, []
    if with_intents:
        labels = []
        for intent in INTENTS:
            votes = sum(intent in given for given in with_intents)
            if 2 * votes > len(with_intents):
                labels.append(intent)
            elif 2 * votes == len(with_intents):
                tied.append(intent)
    given = Counter(p.sentiment for p in group if p.sentiment is not None)
    sentiment = None
    if given:
        (top, count), *rest = given.most_common()
        if rest and rest[0][1] == count:
            tied.append("sentiment")
        else:
            sentiment = top
    unanimous = len({frozenset(g) for g in with_intents}) <= 1 and len(given) <= 1
    return Consensus(
        id=group[0].id,
        lang=group[0].lang,
        text=group[0].text,
        annotators=tuple(p.annotator or "?" for p in group),
        labels=None if labels is None else tuple(labels),
        sentiment=sentiment,
        tied=tuple(tied),
        unanimous=unanimous,
    )


def consensus(annotations: Iterable[Post]) -> list[Consensus]:
    """Majority labels of each post (grouped by id), in the order posts first appear."""
    by_id: dict[str, list[Post]] = {}
    for post in annotations:
        by_id.setdefault(post.id, []).append(post)
    return [_consensus(group) for group in by_id.values()]


def consensus_frame(results: Iterable[Consensus]) -> pd.DataFrame:
    """The consensus as a table; posts with ties first, then those the annotators split on."""
    frame = pd.DataFrame(
        [
            {
                "id": c.id,
                "lang": c.lang,
                "annotators": len(c.annotators),
                "labels": ", ".join(c.labels) if c.labels is not None else None,
                "sentiment": c.sentiment,
                "tied": ", ".join(c.tied),
                "unanimous": c.unanimous,
                "text": c.text,
            }
            for c in results
        ]
    )
    if frame.empty:
        return frame
    order = np.lexsort((frame["unanimous"].to_numpy(), frame["tied"].eq("").to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


# ---------------------------------------------------------------- likely label errors


@dataclass
class OutOfFold:
    """Each post's probabilities from a baseline trained on the other folds (never on it)."""

    posts: list[Post]
    arrays: LabelArrays
    intent_prob: np.ndarray  # (N, intents), from each one-vs-rest decision function
    sentiment_prob: np.ndarray  # (N, sentiments)
    folds: int


def out_of_fold_probabilities(posts: Sequence[Post], folds: int = 5, seed: int = 13) -> OutOfFold:
    """Cross-validated probabilities of the TF-IDF baseline (training/baseline.py).

    Folds are stratified by language and sentiment, so every training fold sees every
    sentiment. cleanlab needs out-of-sample probabilities: a model scoring posts it was
    trained on has memorised their labels, wrong ones included.
    """
    from sklearn.model_selection import StratifiedKFold

    from socialcare.runtime.predictor import baseline_logits, sigmoid, softmax
    from training.baseline import fit_baseline

    arrays = encode_posts(list(posts))
    counts = Counter(arrays.sentiment[has_sentiment(arrays.sentiment)].tolist())
    thin = [SENTIMENTS[i] for i in range(len(SENTIMENTS)) if counts.get(i, 0) < folds]
    if folds < 2 or thin:
        raise ValueError(
            f"cannot cross-validate {len(arrays.texts)} posts in {folds} folds: "
            + (
                f"sentiment {', '.join(thin)} has fewer than {folds} posts; add posts or lower "
                "the number of folds"
                if thin
                else "use 2 folds or more"
            )
        )
    strata = [f"{lang}/{s}" for lang, s in zip(arrays.langs, arrays.sentiment, strict=True)]
    intent_prob = np.zeros(arrays.intents.shape)
    sentiment_prob = np.zeros((len(arrays.texts), len(SENTIMENTS)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_rows, held_out in splitter.split(np.zeros(len(strata)), strata):
        pipelines = fit_baseline(arrays.take(train_rows), seed=seed)
        intent, sentiment = baseline_logits(pipelines, [arrays.texts[i] for i in held_out])
        intent_prob[held_out] = sigmoid(intent)
        sentiment_prob[held_out] = softmax(sentiment)
    return OutOfFold(list(posts), arrays, intent_prob, sentiment_prob, folds)


def out_of_fold_scores(oof: OutOfFold) -> dict:
    """How good the out-of-fold baseline is (evaluation.evaluate at threshold 0.5).

    The review list is only as good as these probabilities: a weak model flags hard posts,
    not wrong labels.
    """
    from socialcare.core.evaluation import evaluate

    a = oof.arrays
    return evaluate(
        a.langs,
        a.intents,
        a.intent_known,
        oof.intent_prob,
        oof.intent_prob >= 0.5,
        a.sentiment,
        oof.sentiment_prob,
    )


def label_issues(oof: OutOfFold) -> pd.DataFrame:
    """The review list: one row per label cleanlab finds likely wrong, most suspect first.

    Sentiment uses ``cleanlab.filter.find_label_issues``; intents, being multi-label, use
    ``find_multilabel_issues_per_class``, which says which intent of a post looks wrong.
    ``quality`` is cleanlab's label quality score (self-confidence: the out-of-fold
    probability of the label as given); ``model_prob`` is the probability of the suggestion.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class
    from cleanlab.rank import get_label_quality_scores

    a = oof.arrays
    rows = []

    def add(i: int, head: str, given: str, suggested: str, quality: float, prob: float):
        post = oof.posts[i]
        rows.append(
            {
                "id": post.id,
                "lang": post.lang,
                "head": head,
                "given": given,
                "suggested": suggested,
                "quality": float(quality),
                "model_prob": float(prob),
                "labels": ", ".join(post.labels or []),
                "sentiment": post.sentiment,
                "text": post.text,
            }
        )

    known = np.flatnonzero(has_sentiment(a.sentiment))
    if len(known):
        labels, probs = a.sentiment[known], oof.sentiment_prob[known]
        flagged = find_label_issues(labels, probs)
        quality = get_label_quality_scores(labels, probs)
        for j in np.flatnonzero(flagged):
            best = int(probs[j].argmax())
            given = SENTIMENTS[labels[j]]
            add(known[j], "sentiment", given, SENTIMENTS[best], quality[j], probs[j, best])

    known = np.flatnonzero(a.intent_known)
    if len(known):
        labels = [np.flatnonzero(row).tolist() for row in a.intents[known]]
        probs = oof.intent_prob[known]
        flagged = find_multilabel_issues_per_class(labels, probs)
        quality = get_label_quality_scores_per_class(labels, probs)
        for j, k in zip(*np.nonzero(flagged), strict=True):
            on = bool(a.intents[known[j], k])
            prob = probs[j, k] if not on else 1.0 - probs[j, k]
            given, suggested = ("yes", "no") if on else ("no", "yes")
            add(known[j], INTENTS[k], given, suggested, quality[j, k], prob)

    columns = ["id", "lang", "head", "given", "suggested", "quality", "model_prob"]
    frame = pd.DataFrame(rows, columns=[*columns, "labels", "sentiment", "text"])
    return frame.sort_values(["quality", "id"], kind="stable").reset_index(drop=True)


def plot_issue_counts(issues: pd.DataFrame, oof: OutOfFold):
    """Flagged labels per head and language, as a share of the posts labelled for that head."""
    from matplotlib.figure import Figure

    a = oof.arrays
    langs = [lang for lang in LANGS if lang in set(a.langs)]
    heads = ["sentiment", *INTENTS]
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(langs)
    positions = np.arange(len(heads))
    for i, lang in enumerate(langs):
        in_lang = np.asarray(a.langs) == lang
        labelled = {
            "sentiment": int((in_lang & has_sentiment(a.sentiment)).sum()),
            **dict.fromkeys(INTENTS, int((in_lang & a.intent_known).sum())),
        }
        counts = issues[issues["lang"] == lang]["head"].value_counts()
        share = [100 * counts.get(h, 0) / labelled[h] if labelled[h] else np.nan for h in heads]
        bars = ax.bar(positions + (i - (len(langs) - 1) / 2) * width, share, width, label=lang)
        ax.bar_label(bars, [str(counts.get(h, 0)) for h in heads], fontsize="small")
    ax.set_xticks(positions, heads)
    ax.set_ylabel("% of labelled posts flagged")
    ax.set_title(f"Likely label errors (cleanlab, {oof.folds}-fold out-of-fold baseline)")
    ax.legend(title="lang")
    return fig
