"""The review loop end to end, on a tiny model: the service queues the posts it is unsure
about, a reviewer labels them in the notebook's app, `socialcare adapt` learns them,
`socialcare promote` judges the candidate, and the restarted service serves production."""

import json
import time
from pathlib import Path

from serving.api import ApiPost
from serving.client import SocialCareClient
from socialcare.cli import main
from socialcare.core import paths
from socialcare.core.label_store import latest_labels, round_path
from socialcare.core.records import load_posts
from socialcare.core.review_queue import ReviewQueue
from socialcare.review.items import EXAMPLE_POSTS, QUEUE
from socialcare.review.labelling import LabellingApp
from socialcare.runtime import registry
from tests.test_training import seed_subset
from training.report import data_hash

# What a reviewer answers for the bundled example posts (../shared/LABELING.md). The
# English one (ex-en-01) is not labelled: the guide covers Swedish and Italian only.
EXAMPLE_LABELS = {
    "ex-sv-01": (["complaint"], "negative"),
    "ex-sv-02": (["complaint"], "negative"),
    "ex-sv-03": (["complaint", "question"], "negative"),
    "ex-sv-04": (["question"], "neutral"),
    "ex-sv-05": (["praise"], "positive"),
    "ex-sv-06": (["factual_error"], "negative"),
    "ex-sv-07": (["humour"], "neutral"),
    "ex-sv-08": (["complaint"], "negative"),
    "ex-sv-09": ([], "neutral"),
    "ex-sv-10": (["complaint", "question"], "negative"),
    "ex-it-01": (["complaint"], "negative"),
    "ex-it-02": (["question"], "neutral"),
    "ex-it-03": (["praise"], "positive"),
    "ex-it-04": (["factual_error"], "negative"),
    "ex-it-05": (["humour"], "neutral"),
    "ex-it-06": (["complaint"], "negative"),
    "ex-it-07": (["question", "factual_error"], "neutral"),
    "ex-it-08": ([], "neutral"),
    "ex-it-09": (["complaint", "question"], "negative"),
}
# Live traffic beside the example: seed training posts (both languages) the production
# model never saw (it trained on the first 120); the tiny model flags about half of them.
LIVE = slice(120, None, 40)


def production_model_of_a_fresh_clone(backbone: Path, root: Path) -> str:
    """`socialcare train` (tiny settings) under the default name, then in production, as
    `socialcare run` leaves a fresh clone: `--model production` and `socialcare adapt`'s
    default then name it, as they do for the team."""
    root.mkdir()
    files = seed_subset(root, {"train": 120, "validation": 60, "test": 60})
    args = ["train", "--base-model", str(backbone), "--output", str(root / "model")]
    args += ["--epochs", "1", "--max-length", "32", "--no-labelled-rounds"]
    args += ["--learning-rate", "1e-4"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0
    tag = str(registry.list_models()[0].tag)
    registry.mark_production(tag)
    return tag


def traffic() -> list[ApiPost]:
    """The bundled example posts and the live ones, as a listening tool sends them."""
    example = [json.loads(line) for line in EXAMPLE_POSTS.read_text().splitlines()]
    live = [post.model_dump() for post in load_posts([paths.seed_split("train")])[LIVE]]
    fields = ("id", "text", "lang", "parent_text")
    return [ApiPost(**{k: row[k] for k in fields if row.get(k)}) for row in example + live]


def queued_when_done(queue: Path, expected: int, timeout: float = 10.0) -> list:
    """The pending queue items once ``expected`` are there (the service writes them as it
    answers; a busy queue can hold them in memory a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = ReviewQueue(queue).pending()
        if len(pending) >= expected or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)


def label_the_queue(round_file: Path, queue: Path) -> tuple[list, list]:
    """A reviewer's session in the notebook's app: every queued post labelled as the
    guide says (the example's labels, else the seed's), other languages skipped.
    Returns (saved records, skipped post ids)."""
    seed = {post.id: post for post in load_posts([paths.seed_split("train")])}
    app = LabellingApp(round_file, "anna", QUEUE, "", queue_path=queue)
    saved, skipped = [], []
    while (item := app.current) is not None:
        if item.post_id in EXAMPLE_LABELS:
            labels, sentiment = EXAMPLE_LABELS[item.post_id]
            lang = "sv" if item.post_id.startswith("ex-sv") else "it"
        elif item.post_id in seed:
            post = seed[item.post_id]
            labels, sentiment, lang = post.labels or [], post.sentiment, post.lang
        else:  # another language: not for this guide
            skipped.append(item.post_id)
            app.skip()
            continue
        app.fill(labels, sentiment, lang)
        record = app.save()
        assert record is not None, app.status
        saved.append(record)
    return saved, skipped


def served_model(url: str) -> str:
    """The model tag a /predict answer names."""
    with SocialCareClient(url) as client:
        return client.predict_batch([ApiPost(text="Hej, när får jag besked?", lang="sv")]).model


def test_the_review_loop_runs_end_to_end(tiny_backbone, tmp_path, start_service, capsys):
    parent = production_model_of_a_fresh_clone(tiny_backbone, tmp_path / "parent")

    # 1. The service answers with the production model and queues what it is unsure
    # about: the English post always, the tiny model's uncertain ones too.
    service = start_service("production")
    with SocialCareClient(service.url) as client:
        answer = client.predict_batch(traffic())
    assert answer.model == parent
    flagged = {p.id: p.review_reasons for p in answer.predictions if p.needs_review}
    assert any(reason.startswith("language: en") for reason in flagged["ex-en-01"])
    pending = queued_when_done(service.queue, len(flagged))
    assert {item.post_id: item.reasons for item in pending} == flagged
    assert {item.model for item in pending} == {parent}

    # 2. A reviewer labels the queue in the notebook's app; each save leaves the queue.
    rounds = tmp_path / "labelled"
    saved, skipped = label_the_queue(round_path(1, rounds), service.queue)
    assert len(saved) >= 30 and skipped == ["ex-en-01"]
    assert {record.source for record in saved} == {"review-queue"}
    assert [item.post_id for item in ReviewQueue(service.queue).pending()] == skipped
    assert main(["validate", str(rounds)]) == 0
    assert {p.id for p in latest_labels([rounds])} == {r.id for r in saved}

    # 3. `socialcare adapt` (default: the production model) learns the round, and the
    # candidate says where it came from.
    output = tmp_path / "adapted"
    args = ["adapt", "--labelled-dir", str(rounds), "--output", str(output)]
    assert main([*args, "--epochs", "1", "--replay", "60", "--trainable-layers", "1"]) == 0
    provenance = json.loads((output / "socialcare.json").read_text())["provenance"]
    round_file = round_path(1, rounds)
    assert provenance["parent_model"] == parent
    assert provenance["file_sha256"][str(round_file)] == data_hash([round_file])
    held_out = set(provenance["reviewed_held_out"])
    assert held_out and held_out < {r.id for r in saved}
    [candidate] = [str(m.tag) for m in registry.list_models() if str(m.tag) != parent and
                   m.info.metadata.get("parent_model") == parent]  # fmt: skip
    assert registry.stage_of(registry.get_model(candidate)) == "candidate"
    capsys.readouterr()

    # 4. `socialcare promote` compares it with production on the test split and on the
    # reviewed posts it did not learn, and says why it decides as it does.
    log = tmp_path / "promotions.jsonl"
    code = main(["promote", candidate, "--log", str(log)])
    out = capsys.readouterr().out
    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["reference"] == parent and entry["reviewed_posts"] == len(held_out)
    scores = [check["score"] for check in entry["checks"]]
    assert "intent macro-F1 all" in scores and "reviewed posts: intent macro-F1 all" in scores
    assert all(f"| {score} |" in out for score in scores)  # each check, in the printed table
    worse = [check["score"] for check in entry["checks"] if not check["passed"]]
    if code == 0:
        assert entry["decision"] == "promoted" and not worse
        assert f"promoted: {candidate}: no score worse than {parent} by more than 1.0" in out
    else:
        # A refusal names the scores that dropped; production stays as it was.
        assert code == 1 and entry["decision"] == "refused" and worse
        reason = f"worse than {parent} by more than 1.0 points on: {', '.join(worse)}"
        assert f"refused: {candidate}: {reason}" in out
        assert str(registry.production_model().tag) == parent
        # `promote` has no override but its tolerance: the team takes the drop knowingly.
        assert main(["promote", candidate, "--log", str(log), "--tolerance", "100"]) == 0
        out = capsys.readouterr().out
    assert f"{candidate} is now production; {parent} archived" in out
    assert str(registry.production_model().tag) == candidate

    # 5. Restarted, the service serves the new production model.
    service.stop()
    restarted = start_service("production")
    assert served_model(restarted.url) == candidate
