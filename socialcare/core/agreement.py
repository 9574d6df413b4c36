"""Agreement between annotators of the same posts.

Cohen's kappa between two labelling passes, and Krippendorff's alpha (nominal) for posts
labelled by any number of annotators, each missing some posts.
"""

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from socialcare.core.labels import INTENTS
from socialcare.core.schema import Post


@dataclass(frozen=True)
class Agreement:
    """Kappa and raw agreement for one label (an intent, or sentiment) over n posts."""

    label: str
    n: int
    kappa: float
    observed: float  # share of posts on which the two passes agree


def _agreement(label: str, a: list, b: list) -> Agreement:
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    # Kappa is undefined when both passes use one single value; perfect agreement then is 1.
    from sklearn.metrics import cohen_kappa_score  # sklearn loads only when needed

    kappa = 1.0 if len(set(a) | set(b)) == 1 else float(cohen_kappa_score(a, b))
    return Agreement(label, len(a), kappa, observed)


def pairwise_agreement(first: list[Post], second: list[Post]) -> list[Agreement]:
    """Per-intent and sentiment agreement on the posts both passes labelled (matched by id)."""
    by_id = {post.id: post for post in first}
    pairs = [(by_id[post.id], post) for post in second if post.id in by_id]
    if not pairs:
        raise ValueError("the two passes share no post id")
    results = []
    for intent in INTENTS:
        with_labels = [(a, b) for a, b in pairs if a.labels is not None and b.labels is not None]
        results.append(
            _agreement(
                intent,
                [intent in a.labels for a, _ in with_labels],
                [intent in b.labels for _, b in with_labels],
            )
        )
    with_sentiment = [(a, b) for a, b in pairs if a.sentiment and b.sentiment]
    results.append(
        _agreement(
            "sentiment",
            [a.sentiment for a, _ in with_sentiment],
            [b.sentiment for _, b in with_sentiment],
        )
    )
    return results


def agreement_table(first: list[Post], second: list[Post]) -> str:
    """A Markdown table of kappa and raw agreement per label, overall and per language."""
    groups = {"all": (first, second)}
    for lang in sorted({post.lang for post in second}):
        groups[lang] = ([p for p in first if p.lang == lang], [p for p in second if p.lang == lang])
    lines = ["| label | lang | posts | Cohen's kappa | raw agreement |", "|---|---|---|---|---|"]
    for lang, (a, b) in groups.items():
        for row in pairwise_agreement(a, b):
            lines.append(
                f"| {row.label} | {lang} | {row.n} | {row.kappa:.3f} | {row.observed:.1%} |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class GroupAgreement:
    """Krippendorff's alpha for one label over posts labelled by any number of annotators.

    ``posts`` counts the posts with at least two annotations of this label (the only ones
    that say anything about agreement), ``annotations`` the labels they carry in all.
    """

    label: str
    posts: int
    annotations: int
    alpha: float
    observed: float  # share of pairs of annotations of one post that agree


def _coincidences(units: list[list[Hashable]]) -> tuple[list[Hashable], np.ndarray]:
    """Krippendorff's coincidence matrix over the values used in units with 2+ values."""
    values = sorted({value for unit in units for value in unit}, key=repr)
    index = {value: i for i, value in enumerate(values)}
    matrix = np.zeros((len(values), len(values)))
    for unit in units:
        counts = np.bincount([index[value] for value in unit], minlength=len(values))
        # Each ordered pair of different annotations of one post, weighted 1 / (m - 1) so that
        # every post adds its number of annotations, however many annotators it had.
        matrix += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    return values, matrix


def krippendorff_alpha(units: Iterable[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha (nominal) of the values each unit (post) got from its annotators.

    A unit lists the values of the annotators who labelled it, so any number of annotators
    and missing annotations are fine; units with fewer than two values are left out.
    alpha = 1 - D_o / D_e from the coincidence matrix (Krippendorff 2011, "Computing
    Krippendorff's alpha-reliability"). When every annotation holds the same single value
    there is nothing to disagree on and alpha is undefined; we return 1.0, as
    ``pairwise_agreement`` does for kappa.
    """
    pairable = [list(unit) for unit in units if len(unit) >= 2]
    if not pairable:
        raise ValueError("no post has two or more annotations: agreement is undefined")
    values, matrix = _coincidences(pairable)
    if len(values) == 1:
        return 1.0
    totals = matrix.sum(axis=1)
    n = totals.sum()
    observed_disagreement = matrix.sum() - np.trace(matrix)
    expected_disagreement = (n**2 - (totals**2).sum()) / (n - 1)
    return float(1.0 - observed_disagreement / expected_disagreement)


def _group_agreement(label: str, units: list[list[Hashable]]) -> GroupAgreement:
    pairable = [unit for unit in units if len(unit) >= 2]
    _, matrix = _coincidences(pairable)
    return GroupAgreement(
        label=label,
        posts=len(pairable),
        annotations=sum(len(unit) for unit in pairable),
        alpha=krippendorff_alpha(pairable),
        observed=float(np.trace(matrix) / matrix.sum()),
    )


def group_agreement(annotations: Iterable[Post]) -> list[GroupAgreement]:
    """Per-intent and sentiment alpha over posts annotated more than once (grouped by id).

    ``annotations`` holds one record per (post, annotator): resolve corrections first, so
    that an annotator who fixed a label is not counted as agreeing or disagreeing with
    themselves.
    """
    by_id: dict[str, list[Post]] = {}
    for post in annotations:
        by_id.setdefault(post.id, []).append(post)
    groups = [group for group in by_id.values() if len(group) >= 2]
    if not groups:
        raise ValueError("no post was annotated more than once: agreement is undefined")
    results = []
    for intent in INTENTS:
        units = [[intent in p.labels for p in group if p.labels is not None] for group in groups]
        if any(len(unit) >= 2 for unit in units):
            results.append(_group_agreement(intent, units))
    units = [[p.sentiment for p in group if p.sentiment is not None] for group in groups]
    if any(len(unit) >= 2 for unit in units):
        results.append(_group_agreement("sentiment", units))
    return results
