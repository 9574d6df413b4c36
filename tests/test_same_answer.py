"""The same post gets the same answer from every entry point: `socialcare predict`,
`POST /predict` and the reviewers' suggestions all call socialcare.runtime.classify."""

import json

import pytest

from socialcare.cli import main
from socialcare.review.items import Item, suggest
from socialcare.runtime.resolver import load_predictor

# Swedish, Italian, other languages and posts too short to tell; most without ``lang``
# (detected), two with it given, one reply read with its parent.
POSTS = [
    {"id": "sv-given", "lang": "sv",
     "text": "Jag har väntat tre veckor på besked om min skada, helt oacceptabelt!"},
    {"id": "sv-1", "text": "Varför har ingen svarat på min skadeanmälan?"},
    {"id": "sv-2", "text": "Hur gör jag för att byta betalningsdag på min hemförsäkring?"},
    {"id": "it-given", "lang": "it", "text": "Grazie mille, servizio impeccabile e velocissimo!"},
    {"id": "it-1", "text": "Ma che scherzo è questo? Aspetto il rimborso da due mesi."},
    {"id": "en-1", "text": "Why has nobody answered my claim yet? This is ridiculous."},
    {"id": "de-1", "text": "Warum hat sich noch niemand wegen meines Schadens gemeldet?"},
    {"id": "und-1", "text": "ok"},
    {"id": "und-2", "text": "👍👍"},
]  # fmt: skip
LANGS = {"sv-given": "sv", "sv-1": "sv", "sv-2": "sv", "it-given": "it", "it-1": "it",
         "en-1": "en", "de-1": "de", "und-1": None, "und-2": None}  # fmt: skip
REPLY = {
    "id": "sv-reply",
    "text": "Samma här, ingen har hört av sig.",
    "parent_text": "Varför har ingen svarat på min skadeanmälan?",
}
PUBLIC = ("id", "lang", "labels", "intents", "sentiment")


@pytest.fixture(scope="module")
def from_cli(baseline_model, tmp_path_factory) -> dict[str, dict]:
    """`socialcare predict` on the model directory: answers by post id."""
    directory = tmp_path_factory.mktemp("same-answer")
    posts, answers = directory / "posts.jsonl", directory / "answers.jsonl"
    lines = [json.dumps(post, ensure_ascii=False) for post in [*POSTS, REPLY]]
    posts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["predict", "--input", str(posts), "--output", str(answers)]
    assert main([*args, "--model", str(baseline_model)]) == 0
    records = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    return {record["id"]: record for record in records}


@pytest.fixture(scope="module")
def from_http(service_client) -> dict[str, dict]:
    """`POST /predict` of the in-process service, serving the same model (registered)."""
    response = service_client.post("/predict", json={"posts": [*POSTS, REPLY]})
    assert response.status_code == 200, response.text
    return {p["id"]: {name: p[name] for name in PUBLIC} for p in response.json()["predictions"]}


def test_cli_and_http_give_the_same_answer(from_cli, from_http):
    assert from_cli == from_http
    assert {post_id: answer["lang"] for post_id, answer in from_cli.items()} == {
        **LANGS,
        "sv-reply": "sv",
    }


def test_reviewers_suggestions_are_the_same_answer(baseline_model, from_cli):
    items = [
        Item(
            post_id=post["id"],
            text=post["text"],
            lang=post.get("lang"),
            source="test",
            parent_text=post.get("parent_text"),
        )
        for post in [*POSTS, REPLY]
    ]
    suggest(items, load_predictor(baseline_model), "baseline")
    for item in items:
        expected = from_cli[item.post_id]
        assert item.suggestion.labels == expected["labels"]
        assert item.suggestion.intents == expected["intents"]
        assert item.suggestion.sentiment_label == expected["sentiment"]["label"]
        assert item.suggestion.sentiment == expected["sentiment"]["scores"]
        assert item.suggestion.lang == expected["lang"]
    # The thresholds show which language's were used: a detected language's, as when given,
    # and the pooled ones for other or undetermined languages.
    thresholds = {item.post_id: item.suggestion.thresholds for item in items}
    assert thresholds["sv-1"] == thresholds["sv-given"] != thresholds["und-1"]
    assert thresholds["it-1"] == thresholds["it-given"] != thresholds["und-1"]
    assert thresholds["en-1"] == thresholds["de-1"] == thresholds["und-2"] == thresholds["und-1"]
