"""A thread reply means what it means under its parent: the model reads the pair."""

import json

from socialcare.cli import main
from socialcare.core.labels import INTENTS
from socialcare.core.schema import IncomingPost
from socialcare.runtime.classify import classify_posts
from socialcare.runtime.predictor import Predictor

COMPLAINTS = [
    "har väntat sju veckor på besked om min skada",
    "ingen svarar i telefon och ärendet står still",
    "premien höjdes igen utan förklaring",
    "ni har fortfarande inte betalat ut ersättningen",
]
THANKS = [
    "tack för snabb och trevlig hjälp med skadan",
    "pengarna kom redan idag tack",
    "bästa service jag fått tack så mycket",
    "tack för att ni ringde upp så fort",
]
REPLIES = ["samma här", "samma för mig", "håller med", "precis samma"]


def thread_posts(prefix: str, copies: int) -> list[dict]:
    """Short replies whose labels come only from their parent: a complaint, or thanks."""
    posts = []
    for n in range(copies):
        for i, reply in enumerate(REPLIES):
            for j, (parents, labels, sentiment) in enumerate(
                [(COMPLAINTS, ["complaint"], "negative"), (THANKS, ["praise"], "positive")]
            ):
                parent = parents[(i + n) % len(parents)]
                posts.append(
                    {"id": f"{prefix}-{n}-{i}-{j}", "text": reply, "parent_text": parent,
                     "lang": "sv", "labels": labels, "sentiment": sentiment}
                )  # fmt: skip
    # The parents themselves, so that every sentiment and label is present on its own too.
    for k, text in enumerate(COMPLAINTS + THANKS):
        complaint = k < len(COMPLAINTS)
        posts.append(
            {"id": f"{prefix}-p{k}", "text": f"{text} ({prefix})", "lang": "sv",
             "labels": ["complaint"] if complaint else ["praise"],
             "sentiment": "negative" if complaint else "positive"}
        )  # fmt: skip
    posts.append({"id": f"{prefix}-n", "text": f"vädret idag ({prefix})", "lang": "sv",
                  "labels": [], "sentiment": "neutral"})  # fmt: skip
    return posts


def test_a_reply_is_a_complaint_under_a_complaint_and_not_under_thanks(tiny_backbone, tmp_path):
    files = {}
    for split, copies in (("train", 40), ("validation", 4), ("test", 1)):
        files[split] = tmp_path / f"{split}.jsonl"
        rows = thread_posts(split, copies)
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model_dir = tmp_path / "model"
    # Plain F1 thresholds: the shipped recall weighting would let a tiny model's doubt
    # about "samma här" under thanks pass as a complaint.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"threshold_betas": dict.fromkeys(INTENTS, 1.0)}))
    args = ["train", "--config", str(config), "--base-model", str(tiny_backbone)]
    args += ["--output", str(model_dir)]
    args += ["--epochs", "20", "--patience", "20", "--max-length", "48", "--learning-rate", "3e-3"]
    args += ["--no-register", "--no-labelled-rounds", "--no-freeze-embeddings"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0

    predictor = Predictor(model_dir)
    posts = [
        IncomingPost(text="samma här", lang="sv", parent_text=COMPLAINTS[0]),
        IncomingPost(text="samma här", lang="sv", parent_text=THANKS[0]),
    ]
    under_complaint, under_thanks = classify_posts(predictor, posts)
    assert "complaint" in under_complaint.labels and "complaint" not in under_thanks.labels
    assert under_complaint.intents["complaint"] > under_thanks.intents["complaint"] + 0.3
    assert under_complaint.sentiment.label == "negative"
    assert under_thanks.sentiment.label == "positive"


def test_a_long_parent_loses_its_beginning_and_the_reply_is_never_cut(tiny_backbone):
    from transformers import AutoTokenizer

    from socialcare.runtime.tokens import TokenBatcher

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    batcher = TokenBatcher(tokenizer, prefix="", max_length=16)
    parent = "tack " * 20 + "ingen svarar"  # 22 words: far more than 16 tokens
    reply = "samma här"
    long_reply = "har väntat sju veckor på besked om min skada " * 3
    (pair, alone, long), truncated = batcher.encode(
        [reply, reply, long_reply], [parent, None, parent]
    )
    tokens = tokenizer.convert_ids_to_tokens(pair)
    assert len(pair) == 16
    # [CLS] <the end of the parent> [SEP] <the whole reply> [SEP]
    assert tokens[-4:] == ["[SEP]", "samma", "har", "[SEP]"]
    assert tokens[-7:-4] == ["ingen", "svar", "##ar"] and tokens[1] == "tack"
    assert tokenizer.convert_ids_to_tokens(alone) == ["[CLS]", "samma", "har", "[SEP]"]
    # A reply with no room for its parent is read alone, cut like any long post.
    assert long == batcher.encode([long_reply])[0][0]
    assert truncated.tolist() == [False, False, True]
