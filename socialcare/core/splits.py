"""Fixed, stratified train/validation/test splits of the seed data."""

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
