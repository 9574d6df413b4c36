"""Posts for the reviewers to label: where they come from, the model's suggestions, the
order they are shown in.

Sources: the service's review queue, or a JSONL/CSV file of unlabelled posts. With a
model loaded, suggestions are its answers through the one prediction path
(socialcare.runtime.classify: the same as `POST /predict` gives); without one, queue
posts show what the service said when it queued them (ordered with the default
threshold), file posts show none. Posts with suggestions come in active-learning order
(socialcare.core.active_learning).

A record's ``source`` is the post's channel (facebook, x, forum...) when the input says,
as in the seed data; otherwise where the reviewer got it: ``review-queue`` or
``file:<name>``.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from socialcare.core import paths
from socialcare.core.active_learning import head_uncertainty, order_for_review
from socialcare.core.answers import Answer
from socialcare.core.label_store import current_round
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.records import DataError, read_csv, read_file
from socialcare.core.review_queue import QueueReader, ReviewQueue
from socialcare.core.schema import IncomingPost
from socialcare.runtime.classify import classify_posts
from socialcare.runtime.predictor import DEFAULT_THRESHOLD, Predictor
from socialcare.runtime.resolver import load_predictor

QUEUE = "queue"
EXAMPLES_DIR = paths.REPO_ROOT / "notebooks" / "examples"
EXAMPLE_POSTS = EXAMPLES_DIR / "posts.jsonl"
# Labels of the built-in example go here, never into data/ (which trains models).
EXAMPLE_ROUND_FILE = paths.ARTIFACTS_DIR / "labelled-example" / "round-001.jsonl"
NO_MODEL = ("", "none")
# Posts scored per model call while loading: few enough that the progress bar moves often,
# enough to keep the model's batches full.
SCORING_CHUNK = 32


class UnlabelledPost(IncomingPost):
    """A row of an input file: ``text`` required; ``id``, ``lang`` and channel optional."""

    source: str | None = None


@dataclass
class Suggestion:
    """The model's answer for one post, in the API's terms, and the thresholds behind it."""

    labels: list[str]
    intents: dict[str, float]
    sentiment: dict[str, float]
    thresholds: dict[str, float] | None
    model: str
    lang: str | None = None  # the post's language as the model took it (given or detected)

    @classmethod
    def from_prediction(cls, prediction: dict, model: str) -> "Suggestion":
        """From an API-format prediction: ``labels``, ``intents`` {intent: probability},
        ``sentiment`` {``label``, ``scores``}. A sentiment given as a bare label counts as
        certain; a missing intent probability as 0."""
        sentiment = prediction.get("sentiment") or {}
        if isinstance(sentiment, str):
            sentiment = {"label": sentiment}
        scores = sentiment.get("scores") or {sentiment.get("label"): 1.0}
        return cls(
            labels=[label for label in prediction.get("labels", []) if label in INTENTS],
            intents={
                name: float((prediction.get("intents") or {}).get(name, 0.0)) for name in INTENTS
            },
            sentiment={name: float(scores.get(name, 0.0)) for name in SENTIMENTS},
            thresholds=None,
            model=model,
        )

    @classmethod
    def from_answer(cls, answer: Answer, model: str) -> "Suggestion":
        """From the model's answer, with the thresholds that decided it."""
        suggestion = cls.from_prediction(answer.model_dump(), model)
        suggestion.thresholds = dict(answer.thresholds)
        suggestion.lang = answer.lang
        return suggestion

    @property
    def sentiment_label(self) -> str | None:
        """The most probable sentiment, or None when the model gave no sentiment."""
        best = max(self.sentiment, key=self.sentiment.get)
        return best if self.sentiment[best] > 0 else None


@dataclass
class Item:
    """One post to label, wherever it came from."""

    post_id: str
    text: str
    lang: str | None
    source: str
    parent_text: str | None = None  # the post this one replies to
    suggestion: Suggestion | None = None
    queue_id: int | None = None
    reasons: list[str] = field(default_factory=list)
    uncertainty: float | None = None
    uncertain_about: str | None = None


def post_id_for(text: str) -> str:
    """A stable id for a post that came without one: the same text always gets the same id,
    so a correction or a second reviewer's label joins the first."""
    return "post-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def default_source() -> str:
    """The review queue when this machine has one, else the built-in example."""
    return QUEUE if paths.REVIEW_QUEUE.exists() else str(EXAMPLE_POSTS)


def default_round_file(source: str | Path) -> Path:
    """Where labels go: the current round under data/labelled, or a scratch file for the
    built-in example (so example labels never reach the training data)."""
    if str(source) != QUEUE and Path(source).resolve().parent == EXAMPLES_DIR.resolve():
        return EXAMPLE_ROUND_FILE
    return current_round()


def load_items(
    source: str | Path,
    limit: int | None = None,
    queue_path: Path = paths.REVIEW_QUEUE,
    reader: QueueReader | None = None,
) -> list[Item]:
    """Posts to label from ``"queue"`` (the service's review queue) or a .jsonl/.csv file.

    From the queue, with ``reader`` (one per reviewer session), only the items this
    session has not read yet: loading again brings what was queued since, never twice.

    Raises DataError naming ``file:line: field`` for a bad row, ValueError for an unknown
    file type.
    """
    if str(source) == QUEUE:
        return _queue_items(queue_path, limit, reader)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a .jsonl or .csv file, or 'queue'")
    readers = {".jsonl": read_file, ".csv": read_csv}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: unknown file type; use .jsonl or .csv (or 'queue')")
    items, problems = [], []
    for _, parsed in readers[path.suffix.lower()](path, UnlabelledPost):
        if isinstance(parsed, list):
            problems.extend(parsed)
            continue
        items.append(
            Item(
                post_id=parsed.id or post_id_for(parsed.text),
                text=parsed.text,
                lang=parsed.lang,
                source=parsed.source or f"file:{path.name}",
                parent_text=parsed.parent_text,
            )
        )
    if problems:
        raise DataError(problems)
    return items[:limit] if limit is not None else items


def _queue_items(queue_path: Path, limit: int | None, reader: QueueReader | None) -> list[Item]:
    entries = reader.next(limit) if reader is not None else ReviewQueue(queue_path).pending(limit)
    return [
        Item(
            post_id=entry.post_id or post_id_for(entry.text),
            text=entry.text,
            lang=entry.lang,
            source="review-queue",
            parent_text=entry.parent_text,
            suggestion=Suggestion.from_prediction(entry.prediction, entry.model),
            queue_id=entry.queue_id,
            reasons=list(entry.reasons),
        )
        for entry in entries
    ]


def load_model(spec: str | Path | None) -> tuple[Predictor | None, str, str]:
    """(predictor or None, model name, a note for the reviewer) from any model name the
    resolver takes (socialcare.runtime.resolver: ``production``, ``latest``, a tag, a
    directory), or ``""``/``None`` for no model. Never raises: without a model the
    notebook still works, without suggestions."""
    if spec is None or str(spec).strip().lower() in NO_MODEL:
        return None, "", "No model chosen: posts come without suggestions, in source order."
    try:
        predictor = load_predictor(spec)
    except Exception as err:  # any failure to load leaves the reviewer working, with a note
        return (
            None,
            "",
            (
                f"No model loaded ({err}). Posts come without suggestions, in source order; "
                "set MODEL to a model directory or a tag from `socialcare models`."
            ),
        )
    return predictor, predictor.tag, f"Suggestions from the model {predictor.tag}."


def suggest(
    items: Sequence[Item],
    predictor: Predictor,
    model: str,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = SCORING_CHUNK,
) -> None:
    """Fill each item's suggestion with the model's answer (the one prediction path), a
    chunk at a time; ``progress(scored, total)`` is called after each chunk."""
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        posts = [
            IncomingPost(text=i.text, id=i.post_id, lang=i.lang, parent_text=i.parent_text)
            for i in chunk
        ]
        for item, answer in zip(chunk, classify_posts(predictor, posts), strict=True):
            item.suggestion = Suggestion.from_answer(answer, model)
        if progress is not None:
            progress(start + len(chunk), len(items))


def review_order(items: Sequence[Item], k: int | None = None) -> list[int]:
    """Indices in review order: posts with suggestions by active learning, then any
    without, in source order. Sets each suggested item's ``uncertainty`` and
    ``uncertain_about`` (the decision that makes it uncertain, shown to the reviewer)."""
    with_model = [i for i, item in enumerate(items) if item.suggestion is not None]
    rest = [i for i, item in enumerate(items) if item.suggestion is None]
    order = rest
    if with_model:
        s = [items[i].suggestion for i in with_model]
        p = np.array([[x.intents[name] for name in INTENTS] for x in s])
        q = np.array([[x.sentiment[name] for name in SENTIMENTS] for x in s])
        # A queue item carries no thresholds: the default stands in for the tuned ones.
        t = np.array(
            [[(x.thresholds or {}).get(name, DEFAULT_THRESHOLD) for name in INTENTS] for x in s]
        )
        heads = head_uncertainty(p, q, t)
        for row, i in enumerate(with_model):
            worst = int(heads[row].argmax())
            items[i].uncertainty = float(heads[row, worst])
            if worst < len(INTENTS):
                about = f"{INTENTS[worst]} {p[row, worst]:.2f} vs threshold {t[row, worst]:.2f}"
            else:
                first, second = np.argsort(-q[row], kind="stable")[:2]
                about = (
                    f"sentiment {SENTIMENTS[first]} {q[row, first]:.2f} "
                    f"vs {SENTIMENTS[second]} {q[row, second]:.2f}"
                )
            items[i].uncertain_about = about
        texts = [items[i].text for i in with_model]
        order = [with_model[j] for j in order_for_review(p, q, t, texts)] + rest
    return order[:k] if k is not None else order
