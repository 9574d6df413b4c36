"""Fixed train/validation/test splits of the seed data: by writer, or stratified by label."""

import random
from collections import Counter

from socialcare.core.schema import Post

DEFAULT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}


def _strata(post: Post) -> list[str]:
    """The stratification keys of a post: its language crossed with each of its labels."""
    keys = [f"{post.lang}:sentiment={post.sentiment}"]
    keys += [f"{post.lang}:intent={label}" for label in post.labels or []]
    if not post.labels:
        keys.append(f"{post.lang}:no-intent")
    return keys


def stratified_split(
    posts: list[Post], fractions: dict[str, float] = DEFAULT_FRACTIONS, seed: int = 13
) -> dict[str, list[Post]]:
    """Split multi-label posts so that every (language, label) keeps the split proportions.

    Iterative stratification (Sechidis et al., 2011): posts whose rarest key is
    rarest are placed first, each into the split that most lacks that key.
    """
    rng = random.Random(seed)
    order = list(posts)
    rng.shuffle(order)
    totals = Counter(key for post in order for key in _strata(post))
    wanted = {
        split: {key: n * share for key, n in totals.items()} for split, share in fractions.items()
    }
    room = {split: len(order) * share for split, share in fractions.items()}
    order.sort(key=lambda post: min(totals[key] for key in _strata(post)))

    result: dict[str, list[Post]] = {split: [] for split in fractions}
    for post in order:
        keys = _strata(post)
        rarest = min(keys, key=lambda key: totals[key])
        split = max(fractions, key=lambda s: (wanted[s][rarest], room[s]))
        result[split].append(post)
        room[split] -= 1
        for key in keys:
            wanted[split][key] -= 1
    for split_posts in result.values():
        split_posts.sort(key=lambda post: post.id)
    return result


def writer_split(
    posts: list[Post],
    fractions: dict[str, float] = DEFAULT_FRACTIONS,
    seed: int = 13,
    train_only: frozenset[str] = frozenset(),
) -> dict[str, list[Post]]:
    """Split so that each writer (``Post.writer``: a writer or a writer's brief) lands in
    one split only, per language: validation and test then measure posts by writers the
    model never saw, as a new insurer's page will be.

    Writers in ``train_only`` always go to train (e.g. older, label-first prototypes
    that would make the held-out splits easier than real traffic). The others are dealt
    out like cards, richest first in the language's rarest intent (so that every split
    gets some of the few writers who wrote it; ties in seeded random order): each goes to
    the split furthest behind its share of the posts, preferring a held-out split that
    has no brief of the same writer yet (the part of the id before ``-b``).
    """
    missing = sorted({post.id for post in posts if not post.writer})[:5]
    if missing:
        raise ValueError(f"posts without a writer cannot be split by writer: {missing}...")
    rng = random.Random(seed)
    result: dict[str, list[Post]] = {name: [] for name in fractions}
    for lang in sorted({post.lang for post in posts}):
        groups: dict[str, list[Post]] = {}
        for post in posts:
            if post.lang == lang:
                groups.setdefault(post.writer, []).append(post)
        dealt = [writer for writer in sorted(groups) if writer not in train_only]
        total = sum(len(group) for group in groups.values())
        wanted = {name: fractions[name] * total for name in fractions if name != "train"}
        wanted["train"] = sum(len(groups[w]) for w in dealt) - sum(wanted.values())
        placed = dict.fromkeys(fractions, 0)
        parents: dict[str, set[str]] = {name: set() for name in fractions}
        for writer in _richest_first(dealt, groups, rng):
            size, parent = len(groups[writer]), _parent(writer)
            room = [n for n in fractions if placed[n] + size / 2 <= wanted[n]] or ["train"]
            name = max(
                room,
                key=lambda n: (
                    n == "train" or parent not in parents[n],
                    (wanted[n] - placed[n]) / max(wanted[n], 1),
                ),
            )
            placed[name] += size
            parents[name].add(parent)
            result[name].extend(groups[writer])
        for writer in train_only & groups.keys():
            result["train"].extend(groups[writer])
    for split_posts in result.values():
        split_posts.sort(key=lambda post: post.id)
    return result


def _richest_first(
    writers: list[str], groups: dict[str, list[Post]], rng: random.Random
) -> list[str]:
    """Writers by their share of the rarest intent among them, highest first; ties in
    seeded random order."""
    counts = Counter(label for w in writers for post in groups[w] for label in post.labels or [])
    order = list(writers)
    rng.shuffle(order)
    if not counts:
        return order
    rarest = min(counts, key=lambda label: (counts[label], label))

    def share(writer: str) -> float:
        mine = groups[writer]
        return sum(rarest in (post.labels or []) for post in mine) / len(mine)

    return sorted(order, key=share, reverse=True)


def _parent(writer: str) -> str:
    return writer.split("-b")[0]
