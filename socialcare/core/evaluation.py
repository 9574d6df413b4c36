"""Scores, plots and tables for a model's predictions on labelled posts.

One evaluation for every model kind (baseline, fine-tuned), used by `socialcare evaluate`,
the notebooks and the promotion gate, so that their numbers can be compared.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from socialcare.core.arrays import has_sentiment
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS

CALIBRATION_BINS = 10


def _reliability(
    probs: np.ndarray, correct: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: count, mean confidence and accuracy (NaN in empty bins)."""
    # Multiplying rather than comparing with np.linspace edges keeps 0.3 in [0.3, 0.4):
    # linspace(0, 1, 11)[3] is 0.30000000000000004. 1.0 is folded into the last bin.
    index = np.minimum((probs * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=probs, minlength=bins) / counts
        accuracy = np.bincount(index, weights=correct.astype(float), minlength=bins) / counts
    return counts, confidence, accuracy


def evaluate_predictions(labelled, predictions) -> dict:
    """``evaluate`` for labelled posts as encoded for training (``core.arrays.LabelArrays``:
    langs, intents, intent_known, sentiment) and a predictor's ``Predictions``."""
    return evaluate(
        labelled.langs,
        labelled.intents,
        labelled.intent_known,
        predictions.intent_prob,
        predictions.intent_pred,
        labelled.sentiment,
        predictions.sentiment_prob,
    )


def expected_calibration_error(probs: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Equal-width-bin ECE: sum over bins of (n_bin / N) * |accuracy - mean confidence|.

    ``probs`` are confidences in [0, 1] and ``correct`` says whether each prediction was right.
    Bins are [0, 1/bins), ..., [1 - 1/bins, 1]; a confidence of exactly 1.0 is in the last bin.
    """
    probs = np.asarray(probs, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if probs.ndim != 1 or probs.shape != correct.shape:
        raise ValueError(
            f"probs {probs.shape} and correct {correct.shape} must be 1-D and of equal length"
        )
    if probs.size == 0:
        raise ValueError("no predictions: the ECE of an empty set is undefined")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise ValueError(
            f"confidences must lie in [0, 1], found {probs.min()}..{probs.max()}; "
            "pass probabilities, not logits"
        )
    counts, confidence, accuracy = _reliability(probs, correct, bins)
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - confidence[filled])
    return float(np.sum(counts[filled] / probs.size * gaps))


def _intent_confidence(true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (post, intent) pair as one yes/no prediction at 0.5: confidence and correctness.

    Calibration judges the probability itself ("0.8 should be right 80% of the time"), so it
    uses the side the probability favours, max(p, 1 - p), not the caller's tuned thresholds.
    """
    return np.maximum(prob, 1.0 - prob).ravel(), ((prob >= 0.5) == (true == 1)).ravel()


def _sentiment_confidence(true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-class probability and whether the top class is the true one."""
    return prob.max(axis=1), prob.argmax(axis=1) == true


def _per_class(names: Sequence[str], true: np.ndarray, pred: np.ndarray, **kwargs) -> dict:
    """Precision, recall, F1 and support per class; 0.0 where a ratio is undefined."""
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, average=None, zero_division=0, **kwargs
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }


def _no_scores(names: Sequence[str]) -> dict:
    """Per-class scores of a subset with no labels.

    None (JSON null) rather than 0.0: a subset without labels has no score and must not read
    as a model that failed on it.
    """
    return {name: {"precision": None, "recall": None, "f1": None, "support": 0} for name in names}


def _intent_scores(true: np.ndarray, prob: np.ndarray, pred: np.ndarray) -> dict:
    if len(true) == 0:
        return {
            "intents": {
                name: dict(scores, false_alarm_rate=None, ece=None)
                for name, scores in _no_scores(INTENTS).items()
            },
            **dict.fromkeys(
                ("intent_macro_f1", "intent_micro_f1", "intent_exact_match", "intent_ece")
            ),
        }
    intents = _per_class(INTENTS, true, pred)
    for j, name in enumerate(INTENTS):
        # What a team pays for a threshold beside its recall: the share of posts without the
        # intent that get it anyway, and how far the intent's own probabilities are off.
        without = true[:, j] == 0
        false_alarms = float(np.mean(pred[without, j] == 1)) if without.any() else None
        intents[name]["false_alarm_rate"] = false_alarms
        intents[name]["ece"] = expected_calibration_error(
            *_intent_confidence(true[:, j], prob[:, j])
        )
    return {
        "intents": intents,
        # Unweighted over all five intents, including any absent from this subset (F1 0.0 by
        # zero_division=0): macro-F1 then always averages the same five numbers, so a language
        # that lacks an intent is not flattered by averaging over fewer, easier ones.
        "intent_macro_f1": float(np.mean([scores["f1"] for scores in intents.values()])),
        "intent_micro_f1": float(f1_score(true, pred, average="micro", zero_division=0)),
        "intent_exact_match": float(np.mean(np.all(pred == true, axis=1))),
        "intent_ece": expected_calibration_error(*_intent_confidence(true, prob)),
    }


def _sentiment_scores(true: np.ndarray, prob: np.ndarray) -> dict:
    if len(true) == 0:
        return {
            "macro_f1": None,
            "accuracy": None,
            "per_class": _no_scores(SENTIMENTS),
            "confusion": [[0] * len(SENTIMENTS) for _ in SENTIMENTS],
            "ece": None,
        }
    pred = prob.argmax(axis=1)
    classes = list(range(len(SENTIMENTS)))
    per_class = _per_class(SENTIMENTS, true, pred, labels=classes)
    return {
        # Unweighted over all three classes, absent ones included, as for intents.
        "macro_f1": float(np.mean([scores["f1"] for scores in per_class.values()])),
        "accuracy": float(np.mean(pred == true)),
        "per_class": per_class,
        "confusion": confusion_matrix(true, pred, labels=classes).tolist(),
        "ece": expected_calibration_error(*_sentiment_confidence(true, prob)),
    }


def _check_shapes(n: int, arrays: dict[str, tuple[np.ndarray, tuple[int, ...]]]) -> None:
    for name, (array, shape) in arrays.items():
        if array.shape != shape:
            raise ValueError(
                f"{name} has shape {array.shape}, expected {shape}: one row per post "
                f"({n} posts), columns in the order of socialcare.core.labels"
            )


def evaluate(
    langs: Sequence[str],
    intent_true: np.ndarray,
    intent_known: np.ndarray,
    intent_prob: np.ndarray,
    intent_pred: np.ndarray,
    sentiment_true: np.ndarray,
    sentiment_prob: np.ndarray,
) -> dict:
    """Scores of N posts' predictions, overall and per language, as a JSON-serialisable dict.

    ``intent_true``/``intent_pred`` are (N, intents) 0/1, ``intent_prob`` (N, intents) and
    ``sentiment_prob`` (N, sentiments), columns in INTENTS/SENTIMENTS order. Rows where
    ``intent_known`` is False are left out of intent scores, and rows where ``sentiment_true``
    (an index into SENTIMENTS) is -1 out of sentiment scores. ``intent_pred`` carries the
    caller's thresholded decisions; sentiment is predicted as the argmax of its probabilities.
    Nothing is rounded; scores of a subset without labels are None.
    """
    langs = np.asarray(langs, dtype=str)
    n = len(langs)
    intent_true = np.asarray(intent_true, dtype=int)
    intent_known = np.asarray(intent_known, dtype=bool)
    intent_prob = np.asarray(intent_prob, dtype=float)
    intent_pred = np.asarray(intent_pred, dtype=int)
    sentiment_true = np.asarray(sentiment_true, dtype=int)
    sentiment_prob = np.asarray(sentiment_prob, dtype=float)
    _check_shapes(
        n,
        {
            "intent_true": (intent_true, (n, len(INTENTS))),
            "intent_known": (intent_known, (n,)),
            "intent_prob": (intent_prob, (n, len(INTENTS))),
            "intent_pred": (intent_pred, (n, len(INTENTS))),
            "sentiment_true": (sentiment_true, (n,)),
            "sentiment_prob": (sentiment_prob, (n, len(SENTIMENTS))),
        },
    )
    if n and not ((sentiment_true >= -1) & (sentiment_true < len(SENTIMENTS))).all():
        raise ValueError(
            f"sentiment_true must be an index into {SENTIMENTS} or -1 for unknown, "
            f"found {sorted(set(sentiment_true.tolist()))}"
        )

    def scores(rows: np.ndarray) -> dict:
        with_intent = rows & intent_known
        with_sentiment = rows & has_sentiment(sentiment_true)
        return {
            **_intent_scores(
                intent_true[with_intent], intent_prob[with_intent], intent_pred[with_intent]
            ),
            "sentiment": _sentiment_scores(
                sentiment_true[with_sentiment], sentiment_prob[with_sentiment]
            ),
            "n_intent": int(with_intent.sum()),
            "n_sentiment": int(with_sentiment.sum()),
        }

    present = set(langs.tolist())
    # Known languages in their fixed order, then any other, so tables always read the same way.
    ordered = [lang for lang in LANGS if lang in present] + sorted(present - set(LANGS))
    return {
        "n_posts": n,
        "overall": scores(np.ones(n, dtype=bool)),
        "by_lang": {lang: scores(langs == lang) for lang in ordered},
    }


def _format(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def write_plots(
    metrics: dict,
    sentiment_true: np.ndarray,
    sentiment_prob: np.ndarray,
    intent_true: np.ndarray,
    intent_known: np.ndarray,
    intent_prob: np.ndarray,
    out_dir: Path,
) -> list[Path]:
    """Write the confusion matrix, per-language intent F1 and reliability diagrams as PNGs.

    ``metrics`` is what :func:`evaluate` returned for the same arrays; the reliability
    diagrams need the probabilities themselves. Returns the paths written.
    """
    # A bare Figure renders through the Agg canvas without touching pyplot's global backend,
    # so calling this from a notebook neither switches its backend nor leaks open figures.
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overall = metrics["overall"]
    paths = []

    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    confusion = np.asarray(overall["sentiment"]["confusion"])
    image = ax.imshow(confusion, cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        dark = count > confusion.max() / 2
        ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(SENTIMENTS)), SENTIMENTS)
    ax.set_yticks(range(len(SENTIMENTS)), SENTIMENTS)
    ax.set_xlabel("predicted sentiment")
    ax.set_ylabel("true sentiment")
    ax.set_title(f"Sentiment confusion (n={overall['n_sentiment']})")
    fig.colorbar(image, ax=ax, label="posts")
    paths.append(out_dir / "sentiment_confusion.png")
    fig.savefig(paths[-1], dpi=120)

    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    groups = {"overall": overall, **metrics["by_lang"]}
    width = 0.8 / len(groups)
    positions = np.arange(len(INTENTS) + 1)
    for i, (name, scores) in enumerate(groups.items()):
        f1 = [scores["intents"][intent]["f1"] for intent in INTENTS] + [scores["intent_macro_f1"]]
        # A language without intent labels has None scores; NaN draws no bar for them.
        heights = [np.nan if value is None else value for value in f1]
        ax.bar(positions + (i - (len(groups) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(positions, [*INTENTS, "macro"])
    ax.set_ylim(0, 1)
    ax.set_xlabel("intent")
    ax.set_ylabel("F1")
    ax.set_title("Intent F1 by language")
    ax.legend(title="subset")
    paths.append(out_dir / "intent_f1_by_lang.png")
    fig.savefig(paths[-1], dpi=120)

    intent_known = np.asarray(intent_known, dtype=bool)
    sentiment_true = np.asarray(sentiment_true, dtype=int)
    with_sentiment = has_sentiment(sentiment_true)
    panels = [
        (
            "Intents (each post × intent)",
            _intent_confidence(
                np.asarray(intent_true)[intent_known], np.asarray(intent_prob)[intent_known]
            ),
            overall["intent_ece"],
        ),
        (
            "Sentiment (top class)",
            _sentiment_confidence(
                sentiment_true[with_sentiment], np.asarray(sentiment_prob)[with_sentiment]
            ),
            overall["sentiment"]["ece"],
        ),
    ]
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    centres = (np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS
    for ax, (title, (confidence, correct), ece) in zip(
        fig.subplots(1, 2, sharey=True), panels, strict=True
    ):
        counts, mean_confidence, accuracy = _reliability(confidence, correct, CALIBRATION_BINS)
        ax.bar(centres, accuracy, 1 / CALIBRATION_BINS, edgecolor="black", label="accuracy")
        ax.plot(mean_confidence, accuracy, "o", color="darkorange", label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}: ECE {_format(ece, '.3f')}, n={counts.sum()}")
        ax.legend(loc="upper left")
    fig.suptitle(f"Reliability ({CALIBRATION_BINS} equal-width bins)")
    paths.append(out_dir / "calibration.png")
    fig.savefig(paths[-1], dpi=120)
    return paths


def format_scores(metrics: dict) -> str:
    """A Markdown table of the headline scores: one row overall and one per language."""
    header = [
        "intent macro-F1",
        *(f"{intent} F1" for intent in INTENTS),
        "sentiment macro-F1",
        "sentiment accuracy",
        "intent ECE",
        "sentiment ECE",
    ]
    lines = ["| lang | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
    for name, scores in {"overall": metrics["overall"], **metrics["by_lang"]}.items():
        cells = [
            _format(scores["intent_macro_f1"], ".1%"),
            *(_format(scores["intents"][intent]["f1"], ".1%") for intent in INTENTS),
            _format(scores["sentiment"]["macro_f1"], ".1%"),
            _format(scores["sentiment"]["accuracy"], ".1%"),
            _format(scores["intent_ece"], ".3f"),
            _format(scores["sentiment"]["ece"], ".3f"),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_intent_decisions(metrics: dict, thresholds: dict[str, dict[str, float]]) -> str:
    """Per language and intent: the threshold in use and what it gives on these posts
    (recall, false-alarm rate = share of posts without the intent that get it, precision)
    and how well calibrated the intent's probabilities are (ECE). ``thresholds`` as in a
    model's decision: per language, with "*" for any other."""
    header = ["threshold", "recall", "false-alarm rate", "precision", "ECE", "posts with it"]
    lines = ["| lang | intent | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 2)]
    for lang, scores in metrics["by_lang"].items():
        table = thresholds.get(lang, thresholds.get("*", {}))
        for intent in INTENTS:
            row = scores["intents"][intent]
            cells = [
                _format(table.get(intent), ".2f"),
                _format(row["recall"], ".1%"),
                _format(row.get("false_alarm_rate"), ".1%"),
                _format(row["precision"], ".1%"),
                _format(row.get("ece"), ".3f"),
                str(row["support"]),
            ]
            lines.append(f"| {lang} | {intent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
