"""Where a model goes wrong, and how two models differ: the logic of error_analysis.ipynb.

Scores, the confusion matrix, per-language F1 and reliability diagrams come from
``socialcare.core.evaluation`` (the code `socialcare evaluate` and the promotion gate use), so
the notebook shows the same numbers; this module adds per-intent confusion matrices, the
worst mistakes with their texts, and a side-by-side comparison of two models on the gate's
scores.
"""

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from socialcare.core import paths
from socialcare.core.arrays import IGNORE, LabelArrays, encode_posts
from socialcare.core.evaluation import evaluate_predictions, write_plots
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.records import load_posts, write_posts
from socialcare.core.schema import Post
from socialcare.runtime.classify import answer
from socialcare.runtime.predictor import INFO_FILE, Predictions
from socialcare.runtime.registry import list_models
from socialcare.runtime.resolver import load_predictor, resolve_model

# The built-in example's weaker model trains on every EXAMPLE_SUBSAMPLE-th training post.
EXAMPLE_SUBSAMPLE = 5


@dataclass
class Analysis:
    """One model's predictions on labelled posts, with the scores ``evaluate`` gives them."""

    tag: str
    posts: list[Post]
    arrays: LabelArrays
    predictions: Predictions
    metrics: dict


def analyse(model: str | Path | None, data: Sequence[Path]) -> Analysis:
    """Predict the labelled posts in ``data`` with ``model`` and score them.

    ``model``: a registered tag, a model directory, or None for the production model (else
    the newest registered one).
    """
    predictor = load_predictor(model)
    tag = predictor.tag
    posts = load_posts(data)
    arrays = encode_posts(posts)
    predictions = predictor.predict(arrays.texts, arrays.langs, arrays.parents)
    metrics = evaluate_predictions(arrays, predictions)
    return Analysis(tag, posts, arrays, predictions, metrics)


def standard_plots(analysis: Analysis, out_dir: Path) -> dict[str, Path]:
    """The plots of `socialcare evaluate` (sentiment confusion, intent F1 by language,
    reliability diagrams) for this analysis, by name ("sentiment_confusion", ...)."""
    a, p = analysis.arrays, analysis.predictions
    written = write_plots(
        analysis.metrics,
        a.sentiment,
        p.sentiment_prob,
        a.intents,
        a.intent_known,
        p.intent_prob,
        Path(out_dir),
    )
    return {path.stem: path for path in written}


def plot_intent_confusion(analysis: Analysis):
    """One 2x2 confusion matrix per intent (true no/yes against predicted no/yes).

    Read the off-diagonal cells: bottom-left are missed posts (the costly ones for
    complaints, questions and factual errors), top-right false alarms.
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import multilabel_confusion_matrix

    known = analysis.arrays.intent_known
    matrices = multilabel_confusion_matrix(
        analysis.arrays.intents[known], analysis.predictions.intent_pred[known].astype(int)
    )
    fig = Figure(figsize=(3 * len(INTENTS), 3.4), layout="constrained")
    for ax, intent, matrix in zip(fig.subplots(1, len(INTENTS)), INTENTS, matrices, strict=True):
        ax.imshow(matrix, cmap="Blues")
        for (row, col), count in np.ndenumerate(matrix):
            dark = count > matrix.max() / 2
            ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "k")
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_xlabel("predicted")
        ax.set_title(intent)
    fig.axes[0].set_ylabel("true")
    fig.suptitle(f"{analysis.tag}: intent decisions ({int(known.sum())} posts)")
    return fig


def worst_mistakes(analysis: Analysis, n: int = 15) -> pd.DataFrame:
    """The ``n`` most confident wrong decisions, each with its post's text.

    One row per wrong decision: a missed or false intent (confidence: the probability the
    model gave its wrong answer) or a wrong sentiment (the probability of the wrong class).
    Confident mistakes are where a label may be wrong, or the model has learnt a shortcut.
    """
    a, p = analysis.arrays, analysis.predictions
    rows = []
    for i, post in enumerate(analysis.posts):
        predicted = answer(p, i, post.id, post.lang)
        common = {
            "id": post.id,
            "lang": post.lang,
            "true labels": ", ".join(post.labels or []),
            "predicted labels": ", ".join(predicted.labels),
            "true sentiment": post.sentiment,
            "predicted sentiment": predicted.sentiment.label,
            "text": post.text,
        }
        if a.intent_known[i]:
            for k, intent in enumerate(INTENTS):
                truth, decided, prob = a.intents[i, k], p.intent_pred[i, k], p.intent_prob[i, k]
                if bool(truth) != bool(decided):
                    kind = f"missed {intent}" if truth else f"false {intent}"
                    confidence = 1.0 - prob if truth else prob
                    rows.append({"mistake": kind, "confidence": float(confidence), **common})
        if a.sentiment[i] != IGNORE:
            best = int(p.sentiment_prob[i].argmax())
            if best != a.sentiment[i]:
                kind = f"sentiment {SENTIMENTS[a.sentiment[i]]} -> {SENTIMENTS[best]}"
                confidence = float(p.sentiment_prob[i, best])
                rows.append({"mistake": kind, "confidence": confidence, **common})
    columns = ["mistake", "confidence", "id", "lang", "true labels", "predicted labels"]
    columns += ["true sentiment", "predicted sentiment", "text"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("confidence", ascending=False, kind="stable").head(n)


def mistake_counts(analysis: Analysis):
    """Missed posts and false alarms per intent and language, as bars."""
    from matplotlib.figure import Figure

    a, p = analysis.arrays, analysis.predictions
    langs = list(analysis.metrics["by_lang"])
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / max(len(langs), 1)
    positions = np.arange(len(INTENTS))
    for ax, (title, wanted_truth) in zip(
        axes, [("missed (false negatives)", 1), ("false alarms (false positives)", 0)], strict=True
    ):
        for j, lang in enumerate(langs):
            rows = a.intent_known & (np.asarray(a.langs) == lang)
            wrong = (a.intents[rows] == wanted_truth) & (p.intent_pred[rows] != wanted_truth)
            offset = (j - (len(langs) - 1) / 2) * width
            ax.bar(positions + offset, wrong.sum(axis=0), width, label=lang)
        ax.set_xticks(positions, INTENTS, rotation=20)
        ax.set_title(title)
    axes[0].set_ylabel("posts")
    axes[1].legend(title="lang")
    fig.suptitle(f"{analysis.tag}: intent mistakes by language")
    return fig


def compare_models(first: Analysis, second: Analysis):
    """The promotion gate's scores of two models on the same posts, side by side.

    Left: each score of both models. Right: second minus first, in F1 points; a bar left of
    zero is a score the second model loses.
    """
    from matplotlib.figure import Figure

    from training.promote import gate_scores

    if first.metrics["n_posts"] != second.metrics["n_posts"]:
        raise ValueError("compare two analyses of the same posts (same --data files)")
    ours, theirs = gate_scores(first.metrics), gate_scores(second.metrics)
    names = [name for name in ours if ours[name] is not None and theirs.get(name) is not None]
    a = np.array([100 * ours[name] for name in names])
    b = np.array([100 * theirs[name] for name in names])
    positions = np.arange(len(names))
    fig = Figure(figsize=(12, 0.35 * len(names) + 1.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    left.barh(positions - 0.2, a, 0.4, label=first.tag)
    left.barh(positions + 0.2, b, 0.4, label=second.tag)
    left.set_yticks(positions, names)
    left.invert_yaxis()
    left.set_xlim(0, 100)
    left.set_xlabel("F1 (points)")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    delta = b - a
    right.barh(positions, delta, color=np.where(delta < 0, "tab:red", "tab:green"))
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("second - first (points)")
    fig.suptitle(f"{first.tag} vs {second.tag} on {first.metrics['n_posts']} posts")
    return fig


def choose_models(
    model: str | None, other: str | None, workdir: Path = paths.ARTIFACTS_DIR / "examples"
) -> tuple[str, str]:
    """Two models to analyse and compare: the ones given, else registered ones, else examples.

    ``model`` None: the production model (else the newest). ``other`` None: the newest other
    registered model. Where the store has too few, two example baselines are trained into
    ``workdir`` (seconds), so that the notebook runs on a fresh clone.
    """
    registered = [str(m.tag) for m in list_models()]
    if model is None and registered:
        model = resolve_model().tag
    if other is None:
        other = next((tag for tag in registered if tag != model), None)
    if model is None or other is None:
        full, small = example_models(workdir)
        model, other = model or str(full), other or str(small if model is None else full)
    return model, other


def example_models(workdir: Path) -> tuple[Path, Path]:
    """Two baselines trained on the seed data: one on all of train, one on a fifth of it.

    Reused when already there. They show what the notebook does on a fresh clone; the
    weaker one gives the comparison something to find.
    """
    from training.config import TrainOptions
    from training.train import train

    workdir = Path(workdir)
    full, small = workdir / "baseline-full", workdir / "baseline-fifth"
    subset = workdir / "train-fifth.jsonl"
    if not subset.exists():
        posts = load_posts([paths.seed_split("train")])
        write_posts(subset, posts[::EXAMPLE_SUBSAMPLE])
    for directory, train_file in ((full, paths.seed_split("train")), (small, subset)):
        if not (directory / INFO_FILE).exists():
            options = TrainOptions(
                kind="baseline",
                train=[train_file],
                test=[],
                output=directory,
                register=False,
                labelled_rounds=False,
            )
            # Training's progress lines would bury the notebook's first cell.
            with contextlib.redirect_stdout(io.StringIO()):
                result = train(options)
            print(f"trained the example model {result.directory}")
    return full, small
