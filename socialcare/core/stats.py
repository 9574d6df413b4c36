"""Counts of posts per language, split, intent and sentiment, as Markdown tables."""

from collections import Counter

from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.schema import Post


def label_counts(posts: list[Post]) -> Counter:
    """Counter over keys such as 'posts', 'no_intent', 'multi_intent', an intent or a sentiment."""
    counts: Counter = Counter()
    for post in posts:
        counts["posts"] += 1
        if post.labels is not None:
            counts.update(post.labels)
            counts["no_intent"] += not post.labels
            counts["multi_intent"] += len(post.labels) >= 2
        if post.sentiment is not None:
            counts[post.sentiment] += 1
    return counts


COLUMNS = ("posts", *INTENTS, "no_intent", "multi_intent", *SENTIMENTS)


def counts_table(splits: dict[str, list[Post]]) -> str:
    """A Markdown table: one row per split × language, plus per-language and overall totals."""
    header = "| split | lang | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]

    def row(name: str, lang: str, posts: list[Post]) -> str:
        counts = label_counts(posts)
        return f"| {name} | {lang} | " + " | ".join(str(counts[c]) for c in COLUMNS) + " |"

    everything = [post for posts in splits.values() for post in posts]
    for name, posts in splits.items():
        for lang in LANGS:
            lines.append(row(name, lang, [p for p in posts if p.lang == lang]))
    for lang in LANGS:
        lines.append(row("all", lang, [p for p in everything if p.lang == lang]))
    lines.append(row("all", "all", everything))
    return "\n".join(lines)
