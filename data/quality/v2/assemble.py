"""Build the shipped data set v2 from its audit trail (rerun it to check the result).

    .venv/bin/python data/quality/v2/assemble.py            # writes data/seed/ and the passes
    .venv/bin/python data/quality/v2/assemble.py --to-label data/quality/v2/writers/sv-e.jsonl

Inputs, all in this folder unless said: the v1 posts (``data/seed/``, with their writer
recovered from ``data/quality/first_pass.jsonl`` for the consensus posts), the revisions
of v1 posts (``v1_revisions.ndjson``), the writers' posts and labels (``writers/``), the
blind second pass (``second_pass/``) and the third pass on every disagreement
(``adjudication-<lang>[-N].csv``). The raw files are ``.ndjson`` (JSON Lines that are not
post records: `socialcare validate` reads ``.jsonl`` only); what they become is.

Outputs: ``first_pass.jsonl`` and ``second_pass.jsonl`` (both passes as full records,
for `socialcare agreement`) and ``data/seed/{train,validation,test}.jsonl`` split by
writer (v1's label-first writers in train only).
"""

import argparse
import csv
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from socialcare.core import paths  # noqa: E402
from socialcare.core.records import load_posts, write_posts  # noqa: E402
from socialcare.core.schema import Post  # noqa: E402
from socialcare.core.splits import DEFAULT_FRACTIONS, writer_split  # noqa: E402
from socialcare.core.text import post_key  # noqa: E402

# All a blind labeller sees of a post.
BLIND_FIELDS = ("id", "lang", "text", "parent_text")
V1_WRITERS = frozenset(f"writer-{lang}-{x}" for lang in ("sv", "it") for x in "abcd")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def v1_posts() -> list[Post]:
    """The v1 posts with their writer, revised where the v2 audit asked.

    Reads them from ``data/seed/``, so that a rerun finds them already assembled: a post
    keeps the writer it has, and a revised post (id ending ``-r``) is not revised again.
    """
    seed = load_posts([paths.seed_split(split) for split in paths.SPLITS])
    seed = [post for post in seed if not post.id.startswith("v2-")]
    first_writer = {r["id"]: r["annotator"] for r in read_jsonl(paths.FIRST_PASSES[0])}
    revisions = {r["id"]: r["text"] for r in read_jsonl(HERE / "v1_revisions.ndjson")}
    posts = []
    for post in seed:
        writer = post.writer or (
            post.annotator if post.annotator in V1_WRITERS else first_writer[post.id]
        )
        update = {"writer": writer}
        if post.id in revisions:
            # A revised post is a new post: the old text keeps its id in the v1 passes.
            update |= {"id": post.id + "-r", "text": revisions[post.id]}
        posts.append(post.model_copy(update=update))
    return posts


def _labels(cell: str) -> list[str]:
    return [label for label in cell.split("+") if label]


def v2_passes(taken: set[str]) -> tuple[list[Post], list[Post], list[Post]]:
    """(writers' pass, blind pass, final records) of the doubly labelled v2 posts.

    A post that repeats one already in the set (``taken``: their duplicate keys; two
    writers both wrote "Källa?") is left out, as `socialcare validate` would refuse it.
    """
    written = [r for path in sorted((HERE / "writers").glob("*.ndjson")) for r in read_jsonl(path)]
    blind = {
        r["id"]: r
        for path in sorted((HERE / "second_pass").glob("*.ndjson"))
        for r in read_jsonl(path)
    }
    resolved = resolutions()
    first, second, final = [], [], []
    for record in written:
        if record["id"] not in blind:
            continue  # not labelled twice yet: not shipped
        post = Post.model_validate(record)
        key = post_key(post.text, post.parent_text)
        if key in taken:
            print(f"left out {post.id}: a duplicate of another post")
            continue
        taken.add(key)
        other = blind[record["id"]]
        second.append(
            post.model_copy(
                update={"labels": other["labels"], "sentiment": other["sentiment"],
                        "annotator": "labeller-" + post.lang}
            )
        )  # fmt: skip
        first.append(post)
        agreed = set(post.labels) == set(other["labels"]) and post.sentiment == other["sentiment"]
        if agreed:
            labels, sentiment = post.labels, post.sentiment
        elif record["id"] in resolved:
            row = resolved[record["id"]]
            labels, sentiment = _labels(row["final_labels"]), row["final_sentiment"]
        else:
            continue  # a disagreement not resolved yet: not shipped
        final.append(
            post.model_copy(
                update={"labels": labels, "sentiment": sentiment, "annotator": "consensus"}
            )
        )
    return first, second, final


def write_batches(writer_files: list[Path], size: int = 250, seed: int = 2026) -> None:
    """The blind labellers' batches of these writers' posts: id, lang, text and parent only,
    shuffled, under neutral names (``<lang>-NN``, numbered on from the batches there are)."""
    out = HERE / "to_label"
    out.mkdir(exist_ok=True)
    for path in writer_files:
        rows = read_jsonl(path)
        random.Random(seed).shuffle(rows)
        lang = rows[0]["lang"]
        for start in range(0, len(rows), size):
            number = len(list(out.glob(f"{lang}-*.ndjson"))) + 1
            batch = out / f"{lang}-{number:02d}.ndjson"
            batch.write_text(
                "".join(
                    json.dumps({k: r[k] for k in BLIND_FIELDS if k in r}, ensure_ascii=False) + "\n"
                    for r in rows[start : start + size]
                ),
                encoding="utf-8",
            )
            print(f"{batch}: {len(rows[start : start + size])} posts")


def resolutions() -> dict[str, dict]:
    """The third pass's decisions so far, by post id."""
    resolved = {}
    for path in sorted(HERE.glob("adjudication-*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            resolved |= {row["id"]: row for row in csv.DictReader(handle)}
    return resolved


def write_disagreements(seed: int = 7) -> None:
    """Every post the two passes labelled differently and the third pass has not resolved
    yet, per language, with both labels: ``disagreements-<lang>[-N].ndjson``. Which pass
    comes as ``first`` is drawn at random per post, so the adjudicator cannot side with
    the writer."""
    first, second, _ = v2_passes(set())
    blind = {post.id: post for post in second}
    done = resolutions()
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {"sv": [], "it": []}
    for post in first:
        passes = [blind[post.id], post]
        agreed = {*passes[0].labels} == {*post.labels} and passes[0].sentiment == post.sentiment
        if agreed or post.id in done:
            continue
        rng.shuffle(passes)
        row = {k: v for k, v in post.model_dump().items() if k in BLIND_FIELDS and v}
        for name, labelled in zip(("first", "second"), passes, strict=True):
            row[name] = {"labels": labelled.labels, "sentiment": labelled.sentiment}
        rows[post.lang].append(row)
    for lang, mine in rows.items():
        rounds = len(list(HERE.glob(f"disagreements-{lang}*.ndjson")))
        path = HERE / (
            f"disagreements-{lang}-{rounds + 1}.ndjson"
            if rounds
            else f"disagreements-{lang}.ndjson"
        )
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mine), "utf-8")
        print(f"{path}: {len(mine)} disagreements")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--to-label", nargs="+", type=Path, metavar="WRITER_FILE",
        help="only write the blind batches of these writers' files",
    )  # fmt: skip
    parser.add_argument(
        "--disagreements", action="store_true", help="only write the third pass's input"
    )
    args = parser.parse_args()
    if args.disagreements:
        write_disagreements()
        return
    if args.to_label:
        write_batches(args.to_label)
        return
    old = v1_posts()
    first, second, new = v2_passes({post_key(p.text, p.parent_text) for p in old})
    write_posts(HERE / "first_pass.jsonl", first)
    write_posts(HERE / "second_pass.jsonl", second)
    splits = writer_split(old + new, DEFAULT_FRACTIONS, seed=13, train_only=V1_WRITERS)
    for name, posts in splits.items():
        write_posts(paths.seed_split(name), posts)
        print(f"{name}: {len(posts)} posts")
    print(f"v1: {len(old)}, v2 doubly labelled: {len(first)}, shipped: {len(new)}")


if __name__ == "__main__":
    main()
