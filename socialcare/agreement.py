"""Agreement between two labelling passes over the same posts (Cohen's kappa)."""

from dataclasses import dataclass

from sklearn.metrics import cohen_kappa_score

from socialcare.labels import INTENTS
from socialcare.schema import Post


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
